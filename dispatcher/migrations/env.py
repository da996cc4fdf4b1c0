"""Alembic environment: the URL comes from the caller (``dispatcher migrate``)."""

from __future__ import annotations

from alembic import context

from dispatcher.config import Settings
from dispatcher.db import make_engine
from dispatcher.models import Base

config = context.config
url = config.attributes.get("database_url") or Settings().database_url
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
