"""The engines: a failed statement never carries its parameters into errors or logs; a runaway one is stopped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import IntegrityError, OperationalError

from dispatcher.config import Settings
from dispatcher.db import make_engine
from dispatcher.models import Job

SECRET_TEXT = "Hola Ana, su clave es 7731-ZQX"


def test_a_failing_insert_logs_no_parameters(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    # Given a job stored once
    now = datetime.now(UTC)
    row = {"id": "job-1", "state": "accepted", "text": SECRET_TEXT, "recipients": 0, "created_at": now}
    with engine.begin() as conn:
        conn.execute(insert(Job).values(row))
    # When the same row is inserted again and the failure is logged the way a task logs it
    with pytest.raises(IntegrityError) as failure, engine.begin() as conn:
        conn.execute(insert(Job).values(row))
    logging.getLogger("tasks.dispatch").error("job could not be stored", exc_info=failure.value)
    # Then neither the error nor the log line holds the text (the statement is still named)
    assert "INSERT INTO jobs" in str(failure.value)
    assert SECRET_TEXT not in str(failure.value) and SECRET_TEXT not in caplog.text
    assert "hidden due to hide_parameters" in str(failure.value)


def test_a_statement_longer_than_the_timeout_is_stopped_by_the_server(pg_url: str) -> None:
    # Given an engine made with a statement timeout of half a second
    engine = make_engine(pg_url, statement_timeout=0.5)
    try:
        # When a statement runs longer
        with pytest.raises(OperationalError) as stopped, engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(3)"))
        # Then the server cancels it, and the connection is usable for the next statement
        assert "statement timeout" in str(stopped.value)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_a_worker_engine_has_the_settings_statement_timeout_below_the_soft_limit(pg_url: str) -> None:
    # Given the settings a worker reads, with their defaults
    settings = Settings(DATABASE_URL=pg_url)
    assert 0 < settings.statement_timeout < settings.soft_time_limit
    # When a worker opens its database the way its runtime does
    engine = make_engine(settings.database_url, statement_timeout=settings.statement_timeout)
    try:
        with engine.connect() as conn:
            # Then PostgreSQL applies that timeout to its statements
            shown = conn.execute(text("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")).scalar()
            assert shown == str(int(settings.statement_timeout * 1000))  # milliseconds
    finally:
        engine.dispose()
