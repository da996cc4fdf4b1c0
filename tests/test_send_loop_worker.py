"""The send loop in a real worker: the soft limit mid-request, and beat expiring late messages.

A real Celery worker (one prefork process) with a 2 s soft limit, beat, Redis, PostgreSQL and the
IT Cloud simulator, which can hold its reply far longer than that. Time moves through the clock file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select, update

from dispatcher.clock import FileClock
from dispatcher.db import make_engine
from dispatcher.models import Batch, Message, MessageEvent
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from tests.conftest import BOGOTA_10AM, BOGOTA_2130, REDIS_URL, fresh_pg_database, unavailable, wipe_redis
from tests.test_pipeline import wait_for

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-soft-limit-1234"


@pytest.fixture
def short_limit(tmp_path: Path) -> Iterator[dict[str, Any]]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    wipe_redis(client)
    clock = FileClock(tmp_path / "clock")
    clock.set(BOGOTA_10AM)
    ledger = Ledger()
    sim = ItCloudSim(ledger, clock)
    sim.add_user("ops@example.com", TOKEN)
    server = SandboxServer({"itcloud": sim}).start()
    (tmp_path / "accounts.toml").write_text(
        f'[accounts.co-main]\nvendor = "itcloud"\nbase_url = "{server.url("itcloud")}"\n'
        'user = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\nread_timeout = 30\n'
    )
    with fresh_pg_database() as db_url:
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "REDIS_URL": REDIS_URL,
            "DISPATCHER_ACCOUNTS": str(tmp_path / "accounts.toml"),
            "DISPATCHER_CLOCK_FILE": str(clock.path),
            "DISPATCHER_SWEEP_SECONDS": "0.5",
            "DISPATCHER_SOFT_TIME_LIMIT": "2",
            "DISPATCHER_SEND_BUDGET": "1",
            "ITCLOUD_TOKEN": TOKEN,
            "PYTHONPATH": str(ROOT),
        }
        celery = [sys.executable, "-m", "celery", "-A", "tasks"]
        log = tmp_path / "worker.log"
        procs = [
            subprocess.Popen(
                [*celery, "worker", "--concurrency=1", "-Q", "jobs,send,poll", "--loglevel=INFO",
                 "--without-mingle", "--without-gossip", "-n", "soft@%h"],
                cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [*celery, "beat", "--schedule", str(tmp_path / "beat-schedule"), "--loglevel=INFO"],
                cwd=ROOT, env=env, stdout=(tmp_path / "beat.log").open("w"), stderr=subprocess.STDOUT,
            ),
        ]  # fmt: skip
        engine = make_engine(db_url)
        try:
            wait_for(lambda: "ready." in log.read_text(), 30, "the worker to start")
            yield {"engine": engine, "sim": sim, "ledger": ledger, "log": log, "clock": clock}
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            engine.dispose()
            server.stop()
            wipe_redis(client)


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
