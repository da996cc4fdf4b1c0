"""The engines: a failed statement never carries its parameters into errors or logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

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
