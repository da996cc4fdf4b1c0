"""The send loop in a real worker: the soft limit mid-request, and beat expiring late messages.

A real Celery worker (one prefork process) with a 2 s soft limit, beat, Redis, PostgreSQL and the
IT Cloud simulator, which can hold its reply far longer than that. Time moves through the clock file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select, update

from dispatcher.models import Batch, Message, MessageEvent
from tests.conftest import BOGOTA_10AM, BOGOTA_2130, REDIS_URL
from tests.workers import itcloud_vendor, wait_for, worker_stack

pytestmark = pytest.mark.worker
TOKEN = "tok-soft-limit-1234"


@pytest.fixture
def short_limit(tmp_path: Path) -> Iterator[dict[str, Any]]:
    limits = {"DISPATCHER_SOFT_TIME_LIMIT": "2", "DISPATCHER_SEND_BUDGET": "1"}
    with itcloud_vendor(tmp_path, TOKEN) as vendor, worker_stack(tmp_path, {**vendor.env, **limits}) as stack:
        stack.worker("soft")
        stack.beat("beat", "--loglevel=INFO")
        stack.ready()
        yield {
            "engine": stack.engine, "sim": vendor.sim, "ledger": vendor.ledger, "log": stack.worker_log,
            "clock": vendor.clock,
        }  # fmt: skip


def test_the_soft_limit_mid_request_leaves_unknown_in_a_real_worker(short_limit: dict[str, Any]) -> None:
    engine, sim, ledger = short_limit["engine"], short_limit["sim"], short_limit["ledger"]
    # Given the vendor holds its reply for 10 s, and the worker's soft limit is 2 s
    sim.script({"delay": 10.0})
    job = {"account": "co-main", "text": "Hola", "recipients": ["+573001234567"]}
    job_id = Celery(broker=REDIS_URL).send_task("dispatcher.submit", args=[job], queue="jobs").id

    def state() -> str | None:
        with engine.connect() as conn:
            return conn.execute(select(Message.state).where(Message.job_id == job_id)).scalar()

    # When the soft limit fires while the request waits for its reply
    wait_for(lambda: len(ledger.of("itcloud", "/api/sendsms")) == 1, 30, "the request")
    # Then the row ends unknown (had the task waited for the reply, it would be sent), with its history
    assert wait_for(lambda: state() in ("unknown", "sent") and state(), 30, "the row to settle") == "unknown"
    # (the row is marked before the exception reaches Celery, which logs it a moment later)
    wait_for(lambda: "SoftTimeLimitExceeded" in short_limit["log"].read_text(), 30, "the soft limit logged")
    with engine.connect() as conn:
        events = conn.execute(select(MessageEvent.from_state, MessageEvent.to_state, MessageEvent.reason)).all()
    assert [(e.from_state, e.to_state) for e in events] == [("sending", "unknown")]
    assert "SoftTimeLimitExceeded" in events[0].reason
    assert len(ledger.of("itcloud", "/api/sendsms")) == 1 and ledger.duplicates() == {}


def test_beat_expires_a_message_waiting_for_a_closed_window(short_limit: dict[str, Any]) -> None:
    engine, ledger, clock = short_limit["engine"], short_limit["ledger"], short_limit["clock"]
    # Given a job at 21:30 in Bogota (window closed), its message due to expire in a minute
    clock.set(BOGOTA_2130)
    job = {"account": "co-main", "text": "Hola", "recipients": ["+573001234567"]}
    job_id = Celery(broker=REDIS_URL).send_task("dispatcher.submit", args=[job], queue="jobs").id

    def row() -> Any:
        with engine.connect() as conn:
            return conn.execute(select(Message.state, Message.reason).where(Message.job_id == job_id)).first()

    wait_for(lambda: row() is not None and row().state == "pending", 30, "the job to be stored")
    with engine.begin() as conn:
        conn.execute(update(Message).values(deadline=clock.now() + timedelta(seconds=60)))
    # When the clock passes the deadline, then the window opens
    clock.set(clock.now() + timedelta(seconds=61))
    wait_for(lambda: row().state != "pending", 30, "beat's sweep")
    assert row().state == "expired" and "window" in row().reason
    clock.set(BOGOTA_10AM + timedelta(days=1))

    def batch_state() -> str | None:
        with engine.connect() as conn:
            return conn.execute(select(Batch.state).where(Batch.job_id == job_id)).scalar()

    wait_for(lambda: batch_state() == "done", 30, "the batch released at the opening to end done")
    # Then beat's sweep expired it, saying why, and nothing was sent, then or at the opening
    with engine.connect() as conn:
        assert conn.execute(select(MessageEvent.to_state)).scalars().all() == ["expired"]
    assert ledger.of("itcloud", "/api/sendsms") == []
