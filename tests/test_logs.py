"""Log lines: one per event, JSON when asked, with the ids of what they are about, and no secret.

The pipeline test runs a real worker at DEBUG with ``DISPATCHER_LOG_FORMAT=json`` and beat, Redis,
PostgreSQL and the IT Cloud simulator, through a vendor error (whose body echoes the token) and
a retry; the unit tests pin the filters and formatters it relies on.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select

from dispatcher.logs import bind_ids, clear_ids, formatter, prepare_handler
from dispatcher.models import Batch, Message
from tasks.flower import PoolApplyFilter
from tests.conftest import REDIS_URL
from tests.workers import OPS_TOKEN as TOKEN
from tests.workers import ROOT, itcloud_stack, wait_for

PHONES = ["+573001112233", "+573004445566", "+573007778899"]
TEXT = "Clave privada para {name}"
#: what Celery prints past its logging when the worker stops (``safe_say`` to stdout): the only
#: plain text lines of a JSON worker, excluded by name
CELERY_PRINTS = {"", "worker: Warm shutdown (MainProcess)"}


def _log(log_format: str, secrets: list[str], **extra: Any) -> str:
    """Log one warning through a handler prepared as the worker's are; return what it wrote."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    prepare_handler(handler, secrets, log_format)
    logger = logging.getLogger("dispatcher.test-logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("vendor said: token=tok-unit-998877 is wrong")
        except RuntimeError:
            logger.warning("reply was %s", "tok-unit-998877", exc_info=True, extra=extra)
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


def test_a_json_line_is_one_object_with_ids_and_no_secret_anywhere() -> None:
    # Given a job and a batch bound, and a secret in the message, an extra and the traceback
    bind_ids(job="job-1", batch=7)
    try:
        written = _log("json", ["tok-unit-998877"], request={"url": "https://x/?token=tok-unit-998877"})
    finally:
        clear_ids()
    # Then it is one line of JSON carrying the ids, the traceback, and masks where the secret was
    assert written.count("\n") == 1
    line = json.loads(written)
    assert (line["level"], line["logger"], line["job"], line["batch"]) == (
        "WARNING",
        "dispatcher.test-logs",
        "job-1",
        7,
    )
    assert line["message"] == "reply was ***" and line["request"] == {"url": "https://x/?token=***"}
    assert "RuntimeError: vendor said: token=*** is wrong" in line["exc_info"]
    assert "tok-unit-998877" not in written


def test_an_id_passed_with_the_line_wins_over_a_bound_one_and_text_lines_show_them() -> None:
    bind_ids(job="job-1", batch=7)
    try:
        written = _log("text", [], batch=8, message_id=41)
    finally:
        clear_ids()
    first = written.splitlines()[0]
    assert first == "WARNING dispatcher.test-logs: reply was tok-unit-998877 [job=job-1 batch=8 message_id=41]"


def test_the_worker_debug_line_of_a_submit_request_withholds_the_job() -> None:
    # Given Celery's DEBUG line about a submit request with short ids (nothing pushes the job past the cut)
    job = {"account": "co-main", "text": TEXT, "recipients": PHONES}
    record = logging.LogRecord(
        "celery.pool", logging.DEBUG, __file__, 1, "TaskPool: Apply %s (args:%s kwargs:%s)",
        ("<trace>", repr(("dispatcher.submit", "j1", {"args": (job,)}, b"")), "{}"), None,
    )  # fmt: skip
    # When the pool filter has seen it
    PoolApplyFilter().filter(record)
    # Then it names the task and its id, and nothing of the job
    assert record.getMessage() == (
        "TaskPool: Apply <trace> (args:('dispatcher.submit', 'j1', <request and job withheld>) kwargs:{})"
    )


def test_the_command_line_writes_json_lines_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / "accounts.toml").write_text(
        '[accounts.co-main]\nvendor = "itcloud"\nuser = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\n'
    )
    env = {**os.environ, "DISPATCHER_LOG_FORMAT": "json", "DISPATCHER_ACCOUNTS": str(tmp_path / "accounts.toml"),
           "ITCLOUD_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}  # fmt: skip
    code = (
        "import logging; from dispatcher.logs import configure_cli, bind_ids; configure_cli(); "
        f"bind_ids(job='j-9'); logging.getLogger('dispatcher.cli').warning('token %s', {TOKEN!r})"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(done.stderr) | {"time": None} == {
        "level": "WARNING", "logger": "dispatcher.cli", "message": "token ***", "job": "j-9", "time": None,
    }  # fmt: skip


def test_the_text_format_stays_the_default() -> None:
    assert isinstance(formatter("text"), logging.Formatter) and _log("text", []).startswith("WARNING ")


@pytest.mark.worker
def test_a_json_worker_at_debug_writes_json_lines_with_ids_and_no_secret(tmp_path: Path) -> None:
    env = {"DISPATCHER_LOG_FORMAT": "json"}
    with itcloud_stack(tmp_path, env, ("--include=tests.log_probe",), loglevel="DEBUG") as stack:
        # Given the vendor's first answer is an error page that echoes the request, token included
        stack.sim.script({"status": 500, "body": f"error in user=ops@example.com&token={TOKEN}"})
        producer = Celery(broker=REDIS_URL)
        people = [{"phone": phone, "vars": {"name": f"P{i}"}} for i, phone in enumerate(PHONES)]
        job_id = producer.send_task(
            "dispatcher.submit", args=[{"account": "co-main", "text": TEXT, "recipients": people}], queue="jobs"
        ).id
        # When the job is sent after a retry, and a line carrying the token is logged
        wait_for(lambda: stack.states(job_id).get("sent") == 3, 60, "the job sent")
        probe = producer.send_task("tests.log_probe", queue="jobs").id
        wait_for(lambda: f"tests.log_probe[{probe}] raised" in stack.worker_log.read_text(), 30, "the probe")
        with stack.engine.connect() as conn:
            batches = set(conn.execute(select(Batch.id).where(Batch.job_id == job_id)).scalars())
            messages = set(conn.execute(select(Message.id).where(Message.job_id == job_id)).scalars())
    # (the worker has stopped: its log is complete)
    text = stack.worker_log.read_text()
    # Then no secret, phone or text appears anywhere in it
    leaks = [word for word in (TOKEN, *PHONES, *(p[1:] for p in PHONES), "Clave privada") if word in text]
    assert leaks == [], f"the worker's log shows {leaks}"
    # And every line is one JSON object, but for what Celery prints to stdout when it stops
    lines = [json.loads(line) for line in text.splitlines() if line not in CELERY_PRINTS]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert {line["level"] for line in lines} >= {"DEBUG", "INFO", "WARNING", "ERROR"}
    # And the secret was there to mask: the probe's lines and the vendor's echo carry masks
    assert any(line.get("task_name") == "tests.log_probe" and "***" in json.dumps(line) for line in lines)
    # And each line about the send names its job, batch, task and messages
    sends = [line for line in lines if line["logger"] in ("dispatcher.sending", "dispatcher.transport")]
    requests = [line for line in sends if line["message"] == "sent request"]
    # (each recipient's text differs, so each is a request of its own; the first failed and was retried)
    assert sorted(json.dumps(line["outcomes"]) for line in requests) == ['{"pending": 1}'] + ['{"sent": 1}'] * 3
    assert any(line["message"].startswith("vendor request failed: HTTP 500") for line in sends)
    for line in sends:
        assert line["job"] == job_id and line["batch"] in batches, line
        assert line["task_name"] == "dispatcher.send_batch" and line["task_id"], line
    assert {m for line in requests for m in line["messages"]} == messages
    # And Celery's own lines about the job's tasks carry their task ids, the submit's its job
    received = [line for line in lines if line["message"].startswith("Task dispatcher.submit[")]
    assert received and all(line["task_id"] == job_id for line in received)
    assert any(line.get("job") == job_id and line["logger"] == "celery.app.trace" for line in received)


def test_a_database_error_does_not_repeat_the_rows_it_was_given(engine) -> None:  # type: ignore[no-untyped-def]
    # Given a statement that fails with a phone and a text among its parameters
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
        conn.execute(text("INSERT INTO no_such_table (phone, text) VALUES (:phone, :text)"),
                     {"phone": PHONES[0], "text": TEXT})  # fmt: skip
    # Then its text, which a failed task's log line and Flower show, names neither
    assert PHONES[0] not in str(failed.value) and "Clave privada" not in str(failed.value)
    assert "parameters hidden" in str(failed.value)
