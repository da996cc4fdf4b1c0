"""Engines and migrations for PostgreSQL (production) and SQLite (the embedded default)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).with_name("migrations")
T = TypeVar("T")

log = logging.getLogger("dispatcher.db")


def make_engine(url: str, statement_timeout: float | None = None, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions.

    On PostgreSQL, ``statement_timeout`` (seconds) makes the server stop a statement that runs
    longer, rather than keep running it after the task that sent it gave up. The pool does not
    ping a connection at each checkout (a round trip per transaction, the cost of a whole claim):
    a connection the server dropped fails at its first statement, the pool then discards every
    connection as old as it, and ``transaction`` runs the work once more on a fresh one.
    """
    # A failed statement's error (and so every log line and stored reason made from it) would
    # otherwise carry its parameters: phones, texts, variables.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # A database error's text goes to logs, task events and Flower: without its parameters
    # (a job's phones and texts), which SQLAlchemy would otherwise print in it.
    kwargs.setdefault("hide_parameters", True)
    if not url.startswith("sqlite"):
        if statement_timeout:
            options = f"-c statement_timeout={int(statement_timeout * 1000)}"
            kwargs["connect_args"] = {"options": options, **kwargs.get("connect_args", {})}
        return create_engine(url, **kwargs)
    engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE below is used.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A transaction that reads then writes fails with 'database is locked' under several
        # writer processes unless it takes the write lock up front.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction; once more on a fresh connection if the pooled one was dead.

    Only a failure before COMMIT is tried again (nothing was written then); a connection lost at
    COMMIT may have committed, so that error is raised.
    """
    for attempt in (1, 2):
        committing = False
        try:
            with engine.begin() as conn:
                result = work(conn)
                committing = True
            return result
        except DBAPIError as exc:
            if committing or attempt == 2 or not exc.connection_invalidated:
                raise
            log.warning("the database dropped a pooled connection (%s); trying on a fresh one", type(exc).__name__)
    raise AssertionError("unreachable")


def is_postgres(engine: Engine) -> bool:
    """Say whether the engine talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` with Alembic."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    command.upgrade(config, revision)
