"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from dispatcher.models import Base


def test_the_migrated_schema_is_the_models_schema(engine: Engine) -> None:
    # Given a database migrated to the head revision (the engine fixture does it)
    # When Alembic compares it with the models
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # Then nothing differs: no column, index or key is missing from either side
    assert differences == []
