"""A worker process killed mid-request (SIGKILL) leaves its rows unknown, never resent.

A real Celery worker (one prefork process), beat, Redis, PostgreSQL and the IT Cloud simulator,
which holds its reply long enough for the test to kill the process that sent the request.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import func, select

from dispatcher.models import Message, MessageEvent
from tests.conftest import REDIS_URL
from tests.workers import children, itcloud_vendor, wait_for, worker_stack

pytestmark = pytest.mark.worker


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with itcloud_vendor(tmp_path, "tok-crash-123456") as vendor, worker_stack(tmp_path, vendor.env) as stack:
        worker = stack.worker("crash")
        stack.beat("beat", "--loglevel=INFO")
        stack.ready()
        yield {
            "engine": stack.engine, "sim": vendor.sim, "ledger": vendor.ledger, "clock": vendor.clock,
            "worker": worker, "log": stack.worker_log,
        }  # fmt: skip


def test_a_worker_killed_mid_request_leaves_unknown_and_sends_nothing_twice(crashable: dict[str, Any]) -> None:
    engine, sim, ledger, clock = crashable["engine"], crashable["sim"], crashable["ledger"], crashable["clock"]
    # Given the vendor holds its reply for 20 s
    sim.script({"delay": 20.0})
    job_id = (
        Celery(broker=REDIS_URL)
        .send_task(
            "dispatcher.submit",
            args=[{"account": "co-main", "text": "Hola", "recipients": ["+573001234567"]}],
            queue="jobs",
        )
        .id
    )

    def state() -> str | None:
        with engine.connect() as conn:
            return conn.execute(select(Message.state).where(Message.job_id == job_id)).scalar()

    wait_for(lambda: state() == "sending" and len(ledger.of("itcloud", "/api/sendsms")) == 1, 30, "the request")
    # When the pool process that sent it is killed, mid-request
    (child,) = children(crashable["worker"].pid)
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: "WorkerLostError" in crashable["log"].read_text(), 30, "the worker to notice")
    # Then the task comes back (reject on worker lost) and a new process claims nothing
    wait_for(lambda: len(children(crashable["worker"].pid)) == 1, 30, "a new pool process")
    time.sleep(3)
    assert state() == "sending" and len(ledger.of("itcloud", "/api/sendsms")) == 1
    # And once the sending timeout has passed, the sweep declares the row unknown, not resent
    clock.set(clock.now() + timedelta(minutes=11))
    wait_for(lambda: state() == "unknown", 30, "the row declared unknown")
    time.sleep(2)
    assert len(ledger.of("itcloud", "/api/sendsms")) == 1 and ledger.duplicates() == {}
    with engine.connect() as conn:
        reasons = (
            conn.execute(select(MessageEvent.reason).where(MessageEvent.to_state == "unknown")).scalars().all()
        )
        attempts = conn.execute(select(func.max(Message.attempts))).scalar()
    assert reasons and "worker may have died" in reasons[0] and attempts == 1
