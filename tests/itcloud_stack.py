"""A small real stack for operations tests: one worker, beat, Redis, PostgreSQL, the IT Cloud simulator.

The worker's and beat's output go to files the test reads; the environment can add settings
(``DISPATCHER_LOG_FORMAT``) and the worker extra arguments (``--loglevel=DEBUG``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from dispatcher.clock import FileClock
from dispatcher.db import make_engine
from dispatcher.models import Message
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from tests.conftest import BOGOTA_10AM, REDIS_URL, fresh_pg_database, unavailable, wipe_redis
from tests.test_pipeline import wait_for

ROOT = Path(__file__).resolve().parent.parent
#: the account's secret; no log line, event or Flower answer may show it
TOKEN = "tok-ops-7f3a9c21"


@dataclass
class ItCloudStack:
    """Handles on the running stack."""

    engine: Engine
    sim: ItCloudSim
    ledger: Ledger
    clock: FileClock
    env: dict[str, str]
    worker_log: Path
    tmp: Path

    def states(self, job_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Message.state, func.count()).where(Message.job_id == job_id).group_by(Message.state)
            )
            return dict(rows.all())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a process of the project (cwd: the checkout), its output in ``log``."""
    return subprocess.Popen(list(args), cwd=ROOT, env=dict(env), stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(*procs: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL whatever has not left after 15 s."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def itcloud_stack(
    tmp: Path,
    env_extra: Mapping[str, str] | None = None,
    worker_args: Sequence[str] = ("--loglevel=INFO",),
    account_extra: str = "",
) -> Iterator[ItCloudStack]:
    """Run a worker (one process) and beat against this run's Redis and a fresh PostgreSQL database.

    ``account_extra`` adds lines to the account's table; ``{url}`` in it is the simulator's base URL.
    """
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    wipe_redis(client)
    clock = FileClock(tmp / "clock")
    clock.set(BOGOTA_10AM)
    ledger = Ledger()
    sim = ItCloudSim(ledger, clock)
    sim.add_user("ops@example.com", TOKEN)
    server = SandboxServer({"itcloud": sim}).start()
    (tmp / "accounts.toml").write_text(
        f'[accounts.co-main]\nvendor = "itcloud"\nbase_url = "{server.url("itcloud")}"\n'
        'user = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\nretry_base = 0.2\nretry_max = 1.0\n'
        + account_extra.replace("{url}", server.url("itcloud"))
    )
    with fresh_pg_database() as db_url:
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "REDIS_URL": REDIS_URL,
            "DISPATCHER_ACCOUNTS": str(tmp / "accounts.toml"),
            "DISPATCHER_CLOCK_FILE": str(clock.path),
            "DISPATCHER_SWEEP_SECONDS": "0.5",
            "ITCLOUD_TOKEN": TOKEN,
            "PYTHONPATH": str(ROOT),
            **(env_extra or {}),
        }
        celery = [sys.executable, "-m", "celery", "-A", "tasks"]
        worker_log = tmp / "worker.log"
        worker = start(
            [*celery, "worker", "--concurrency=1", "-Q", "jobs,send,poll", "--without-mingle",
             "--without-gossip", "-n", "ops@%h", *worker_args],
            env, worker_log,
        )  # fmt: skip
        beat = start([*celery, "beat", "--schedule", str(tmp / "beat-schedule")], env, tmp / "beat.log")
        engine = make_engine(db_url)
        try:
            wait_for(lambda: "ready." in worker_log.read_text(), 30, "the worker to start")
            yield ItCloudStack(engine, sim, ledger, clock, env, worker_log, tmp)
        finally:
            stop(worker, beat)
            engine.dispose()
            server.stop()
            wipe_redis(client)
