"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, Table, exc, inspect, select

from dispatcher.db import MIGRATIONS, make_engine, migrate
from dispatcher.models import Base
from tests.conftest import fresh_pg_database

#: the revision before messages.phone became messages.address
BEFORE_ADDRESS = "0006"
WHEN = datetime(2026, 12, 1, 15, 0)
#: the messages stored before the rename: a phone, an email, a rejected recipient
STORED = [("+573001234567", "pending"), ("ana@example.com", "sent"), ("x", "rejected")]


def test_the_migrated_schema_is_the_models_schema(engine: Engine) -> None:
    # Given a database migrated to the head revision (the engine fixture does it)
    # When Alembic compares it with the models
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # Then nothing differs: no column, index or key is missing from either side
    assert differences == []


@pytest.fixture(params=["sqlite", "postgresql"])
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own (it migrates down and up), at the head revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'own.db'}"
        migrate(url)
        yield url
    else:
        with fresh_pg_database() as url:
            yield url


def test_the_address_rename_keeps_every_message_its_unique_key_and_goes_back(own_url: str) -> None:
    # Given a database before the rename holding a job's messages to a phone and to an email,
    # one with its history
    downgrade(own_url, BEFORE_ADDRESS)
    engine = make_engine(own_url)
    try:
        with engine.begin() as conn:
            store_before_rename(conn)
        # When it is migrated to the head revision
        migrate(own_url)
        # Then every row holds its address under the new name and the schema is the models'
        with engine.connect() as conn:
            assert addresses(conn, "address") == [address for address, _ in STORED]
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        # And a job still holds one pending-or-later row per address, rejected rows aside
        with pytest.raises(exc.IntegrityError), engine.begin() as conn:
            conn.execute(table(conn, "messages").insert().values(address="ana@example.com", **same("pending")))
        with engine.begin() as conn:
            conn.execute(table(conn, "messages").insert().values(address="x", **same("rejected")))
        # When it is migrated back
        downgrade(own_url, BEFORE_ADDRESS)
        # Then the rows hold their phone or email under the old name, with the old index names
        with engine.connect() as conn:
            assert addresses(conn, "phone") == [*(address for address, _ in STORED), "x"]
            names = {index["name"] for index in inspect(conn).get_indexes("messages")}
        assert {"uq_messages_job_phone", "ix_messages_account_phone"} <= names
        assert not {"uq_messages_job_address", "ix_messages_account_address"} & names
    finally:
        engine.dispose()


def store_before_rename(conn: Any) -> None:
    """Job j1 with a message to a phone, one to an email (with its history) and a rejected one."""
    conn.execute(
        table(conn, "jobs")
        .insert()
        .values(id="j1", state="accepted", priority="bulk", recipients=3, created_at=WHEN)
    )
    rows = [{"phone": phone, **same(state)} for phone, state in STORED]
    messages = table(conn, "messages")
    ids = conn.execute(messages.insert().returning(messages.c.id), rows).scalars().all()
    event = {"message_id": ids[1], "from_state": "sending", "to_state": "sent", "at": WHEN}
    conn.execute(table(conn, "message_events").insert().values(**event))


def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` down to ``revision``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    command.downgrade(config, revision)


def table(conn: Any, name: str) -> Table:
    """The table as the database has it now, not as the models describe it."""
    return Table(name, MetaData(), autoload_with=conn)


def same(state: str) -> dict[str, Any]:
    """The columns of a message of job j1 that are the same under either revision."""
    return {
        "job_id": "j1",
        "account": "co-main",
        "state": state,
        "attempts": 0,
        "created_at": WHEN,
        "updated_at": WHEN,
    }


def addresses(conn: Any, column: str) -> list[str]:
    """Every message's phone or email, read from ``column``, in the order stored."""
    messages = table(conn, "messages")
    return list(conn.execute(select(messages.c[column]).order_by(messages.c.id)).scalars())
