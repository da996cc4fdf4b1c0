"""The fault suite's stack, shared by every scenario of a module (starting it costs seconds)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict

import pytest
from sqlalchemy.engine import make_url

from dispatcher.clock import FileClock
from dispatcher.db import make_engine
from dispatcher.sandbox.core import Faults
from dispatcher.sandbox.messages import Progress
from dispatcher.sandbox.world import ACCOUNT_KEYS, SECRETS, build_world
from tests.conftest import BOGOTA_10AM, fresh_pg_database, unavailable
from tests.faults import report
from tests.faults.processes import ROOT, RedisServer, Supervised
from tests.faults.proxy import PgProxy
from tests.faults.stack import FaultStack
from tests.workers import wait_for

#: seconds each simulated vendor takes to answer, outside a latency storm
BASE_LATENCY = 0.05
#: worker pool processes
CONCURRENCY = 2
#: each account's policy: quick retries (in seconds), plenty of them, a read timeout storms can pass
POLICY = {"retry_base": 0.05, "retry_max": 0.5, "max_attempts": 100, "read_timeout": 3.0,
          "connect_timeout": 1.0, "pause_seconds": 5.0}  # fmt: skip


@pytest.fixture(scope="module")
def faults_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    """Worker, beat, our own Redis, PostgreSQL behind a proxy, and the five vendors, running."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server", FileNotFoundError("redis-server is not installed"))
    tmp = tmp_path_factory.mktemp("faults")
    redis_server = RedisServer(tmp).start()
    clock = FileClock(tmp / "clock")
    clock.set(BOGOTA_10AM)
    progress = Progress(to_sent=1, to_final=2, reply_rate=0.0)
    world = build_world(clock, progress, faults={v: Faults(latency=BASE_LATENCY) for v in ACCOUNT_KEYS})
    accounts = tmp / "accounts.toml"
    accounts.write_text(world.accounts_toml(**dict.fromkeys(ACCOUNT_KEYS.values(), POLICY)))
    try:
        with fresh_pg_database() as db_url:
            proxy = PgProxy(make_url(db_url).port or 5432).start()
            env = {
                **os.environ,
                "DATABASE_URL": make_url(db_url).set(port=proxy.port).render_as_string(hide_password=False),
                "REDIS_URL": redis_server.url,
                "DISPATCHER_ACCOUNTS": str(accounts),
                "DISPATCHER_CLOCK_FILE": str(clock.path),
                # Sweeps are what recovers after a fault; every 2 s (5 s by default) keeps settling
                # quick without a pool process spending much of its time in the sweep's lock.
                "DISPATCHER_SWEEP_SECONDS": "2",
                "DISPATCHER_POLL_SECONDS": "2",
                **SECRETS,
                "PYTHONPATH": str(ROOT),
            }
            celery = [sys.executable, "-m", "celery", "-A", "tasks"]
            options = ["--loglevel=INFO", "--without-mingle", "--without-gossip", "-n", "faults@%h"]
            queues = ["-Q", "jobs,send,poll", f"--concurrency={CONCURRENCY}"]
            worker = Supervised("worker", [*celery, "worker", *queues, *options], env, tmp / "worker.log")
            schedule = ["--schedule", str(tmp / "beat-schedule"), "--loglevel=INFO"]
            beat = Supervised("beat", [*celery, "beat", *schedule], env, tmp / "beat.log")
            engine = make_engine(db_url)
            stack = FaultStack(engine, world, clock, redis_server, proxy, worker, beat)
            worker.start()
            beat.start()
            try:
                wait_for(worker.ready, 60, "the worker to start")
                stack.start_supervisor()
                yield stack
            finally:
                stack.stop_supervisor()
                worker.stop()
                beat.stop()
                engine.dispose()
                proxy.stop()
                if os.environ.get("SMSD_SHOW_WORKER_LOG"):
                    print(worker.log.read_text(errors="replace")[-30000:])
    finally:
        world.stop()
        redis_server.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker, hand this process's scenario rows to the controller's summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and report.RESULTS:
        workeroutput["fault_scenarios"] = json.dumps([asdict(r) for r in report.RESULTS])
