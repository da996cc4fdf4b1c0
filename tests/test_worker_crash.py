"""A worker process killed mid-request (SIGKILL) leaves its rows unknown, never resent.

A real Celery worker (one prefork process), beat, Redis, PostgreSQL and the IT Cloud simulator,
which holds its reply long enough for the test to kill the process that sent the request.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import func, select

from dispatcher.clock import FileClock
from dispatcher.db import make_engine
from dispatcher.models import Message, MessageEvent
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from tests.conftest import BOGOTA_10AM, REDIS_URL, fresh_pg_database, unavailable, wipe_redis
from tests.test_pipeline import wait_for

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[dict[str, Any]]:
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
    sim.add_user("ops@example.com", "tok-crash-123456")
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
            "ITCLOUD_TOKEN": "tok-crash-123456",
            "PYTHONPATH": str(ROOT),
        }
        celery = [sys.executable, "-m", "celery", "-A", "tasks"]
        log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            [*celery, "worker", "--concurrency=1", "-Q", "jobs,send,poll", "--loglevel=INFO",
             "--without-mingle", "--without-gossip", "-n", "crash@%h"],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        beat = subprocess.Popen(
            [*celery, "beat", "--schedule", str(tmp_path / "beat-schedule"), "--loglevel=INFO"],
            cwd=ROOT, env=env, stdout=(tmp_path / "beat.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        engine = make_engine(db_url)
        try:
            wait_for(lambda: "ready." in log.read_text(), 30, "the worker to start")
            yield {"engine": engine, "sim": sim, "ledger": ledger, "clock": clock, "worker": worker, "log": log}
        finally:
            for proc in (worker, beat):
                proc.send_signal(signal.SIGTERM)
            for proc in (worker, beat):
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            engine.dispose()
            server.stop()
            wipe_redis(client)


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


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
