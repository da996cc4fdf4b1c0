"""Real Celery worker processes for the tests: the IT Cloud simulator, a fresh PostgreSQL
database, this run's Redis database, and a worker (or the ``dispatcher worker`` supervisor)
started as a child process the way an operator starts it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from dispatcher.clock import FileClock
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from tests.conftest import BOGOTA_10AM, REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-worker-123456"
WORKER_ARGS = [
    "--concurrency=1", "-Q", "jobs,send,poll", "--loglevel=INFO", "--without-mingle", "--without-gossip",
]  # fmt: skip


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``check`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Vendor:
    """The IT Cloud simulator and the accounts file that points at it."""

    sim: ItCloudSim
    ledger: Ledger
    clock: FileClock
    server: Any
    accounts: Path
    env: dict[str, str] = field(default_factory=dict)


@contextmanager
def itcloud_vendor(tmp_path: Path) -> Iterator[Vendor]:
    """The IT Cloud simulator on loopback at 10:00 in Bogota, and an account ``co-main`` on it."""
    clock = FileClock(tmp_path / "clock")
    clock.set(BOGOTA_10AM)
    ledger = Ledger()
    sim = ItCloudSim(ledger, clock)
    sim.add_user("ops@example.com", TOKEN)
    server = SandboxServer({"itcloud": sim}).start()
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f'[accounts.co-main]\nvendor = "itcloud"\nbase_url = "{server.url("itcloud")}"\n'
        'user = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\nread_timeout = 30\n'
    )
    env = {
        "REDIS_URL": REDIS_URL,
        "DISPATCHER_ACCOUNTS": str(accounts),
        "DISPATCHER_CLOCK_FILE": str(clock.path),
        "DISPATCHER_SWEEP_SECONDS": "0.5",
        "ITCLOUD_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT),
    }
    try:
        yield Vendor(sim, ledger, clock, server, accounts, env)
    finally:
        server.stop()


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a child process of the project with ``env`` added, its output in ``log``."""
    return subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def celery_worker(env: dict[str, str], log: Path, name: str, *extra: str) -> subprocess.Popen[bytes]:
    """A prefork worker on the three queues (one pool process unless ``extra`` says otherwise)."""
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", *WORKER_ARGS, *extra, "-n", f"{name}@%h"]
    return start(command, env, log)


def celery_beat(env: dict[str, str], log: Path, schedule: Path) -> subprocess.Popen[bytes]:
    """Beat, releasing due batches every ``DISPATCHER_SWEEP_SECONDS``."""
    return start([sys.executable, "-m", "celery", "-A", "tasks", "beat", "--schedule", str(schedule)], env, log)


def stop(*procs: subprocess.Popen[bytes]) -> None:
    """SIGTERM each process, then SIGKILL what is still there after 20 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def producer() -> Celery:
    """A producer as any other system would have: only the broker URL."""
    return Celery(broker=REDIS_URL)


def submit(app: Celery, job: Any) -> str:
    """Drop a job on queue ``jobs``; return its task id (the job id)."""
    return app.send_task("dispatcher.submit", args=[job], queue="jobs").id


def children(pid: int) -> list[int]:
    """The pids of a process's children."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]
