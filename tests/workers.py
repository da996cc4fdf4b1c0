"""Real Celery worker processes for the tests: this run's Redis database, a fresh PostgreSQL
database, the IT Cloud simulator (or the sandbox world) and an accounts file, and workers, beats
(or the ``dispatcher worker`` supervisor) started as child processes the way an operator starts them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import Engine, func, select

from dispatcher.clock import FileClock
from dispatcher.db import make_engine
from dispatcher.models import Message
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from tests.conftest import BOGOTA_10AM, REDIS_URL, empty_redis, fresh_pg_database, wipe_redis

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-worker-123456"
#: the operations stack's secret; no log line, event or Flower answer may show it
OPS_TOKEN = "tok-ops-7f3a9c21"
WORKER_ARGS = [
    "--concurrency=1", "-Q", "jobs,send,poll", "--loglevel=INFO", "--without-mingle", "--without-gossip",
]  # fmt: skip
#: how the worker reads accounts by default: a read timeout longer than any scripted delay
READ_TIMEOUT = "read_timeout = 30\n"


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


def children(pid: int) -> list[int]:
    """The pids of a process's children."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def itcloud_account(key: str, url: str, user: str, env_var: str = "ITCLOUD_TOKEN", settings: str = "") -> str:
    """One IT Cloud account's table; its token is read from the environment variable ``env_var``."""
    return (
        f'[accounts.{key}]\nvendor = "itcloud"\nbase_url = "{url}"\nuser = "{user}"\n'
        f'token = "${{{env_var}}}"\n{settings}'
    )


def accounts_env(accounts: Path, clock: FileClock) -> dict[str, str]:
    """The settings pointing processes at an accounts file and a clock file, sweeping every 0.5 s."""
    return {
        "DISPATCHER_ACCOUNTS": str(accounts),
        "DISPATCHER_CLOCK_FILE": str(clock.path),
        "DISPATCHER_SWEEP_SECONDS": "0.5",
    }


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
def itcloud_vendor(
    tmp_path: Path,
    token: str = TOKEN,
    settings: str = READ_TIMEOUT,
    extra: str = "",
    users: Mapping[str, tuple[str, str, str]] | None = None,
) -> Iterator[Vendor]:
    """The IT Cloud simulator on loopback at 10:00 in Bogota, and an account ``co-main`` on it.

    ``users`` (account key → IT Cloud user, token variable, token) replaces ``co-main``; each
    account gets ``settings``, and ``extra`` follows them, ``{url}`` in it the simulator's base URL.
    """
    users = users or {"co-main": ("ops@example.com", "ITCLOUD_TOKEN", token)}
    clock = FileClock(tmp_path / "clock")
    clock.set(BOGOTA_10AM)
    ledger = Ledger()
    sim = ItCloudSim(ledger, clock)
    for user, _, secret in users.values():
        sim.add_customer(user, secret)
    server = SandboxServer({"itcloud": sim}).start()
    url = server.url("itcloud")
    accounts = tmp_path / "accounts.toml"
    tables = [itcloud_account(key, url, user, var, settings) for key, (user, var, _) in users.items()]
    accounts.write_text("".join(tables) + extra.replace("{url}", url))
    env = {
        "REDIS_URL": REDIS_URL,
        **accounts_env(accounts, clock),
        **{var: secret for _, var, secret in users.values()},
        "PYTHONPATH": str(ROOT),
    }
    try:
        yield Vendor(sim, ledger, clock, server, accounts, env)
    finally:
        server.stop()


def start(
    command: list[str], env: Mapping[str, str], log: Path, unset: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Start a child process of the project with ``env`` added (``unset`` removed), its output in ``log``."""
    inherited = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.Popen(
        command, cwd=ROOT, env={**inherited, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def celery_worker(
    env: Mapping[str, str],
    log: Path,
    name: str,
    *extra: str,
    concurrency: int = 1,
    queues: str = "jobs,send,poll",
    loglevel: str = "INFO",
    unset: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """A prefork worker node ``name`` on ``queues``, ``concurrency`` pool processes."""
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", f"--concurrency={concurrency}", "-Q", queues,
        f"--loglevel={loglevel}", "--without-mingle", "--without-gossip", "-n", f"{name}@%h", *extra,
    ]  # fmt: skip
    return start(command, env, log, unset)


def celery_beat(
    env: Mapping[str, str], log: Path, schedule: Path, *extra: str, unset: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Beat, releasing due batches every ``DISPATCHER_SWEEP_SECONDS``."""
    command = [sys.executable, "-m", "celery", "-A", "tasks", "beat", "--schedule", str(schedule), *extra]
    return start(command, env, log, unset)


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


@dataclass
class Stack:
    """Handles on a running stack: its database, the environment its processes share, their logs."""

    engine: Engine
    #: the whole environment of the stack's processes (``os.environ`` and the stack's settings)
    env: dict[str, str]
    tmp: Path
    #: variables of ``os.environ`` the processes must not inherit
    unset: tuple[str, ...] = ()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: the IT Cloud simulator, when the stack runs one (``itcloud_stack``)
    vendor: Vendor | None = None

    @property
    def sim(self) -> ItCloudSim:
        """The IT Cloud simulator."""
        assert self.vendor is not None
        return self.vendor.sim

    @property
    def ledger(self) -> Ledger:
        """The simulator's record of requests."""
        assert self.vendor is not None
        return self.vendor.ledger

    @property
    def clock(self) -> FileClock:
        """The clock file every process reads."""
        assert self.vendor is not None
        return self.vendor.clock

    def log(self, name: str) -> Path:
        """The output file of process ``name``."""
        return self.tmp / f"{name}.log"

    @property
    def worker_log(self) -> Path:
        """The output of the process named ``worker``."""
        return self.log("worker")

    def worker(self, node: str, *extra: str, name: str = "worker", **options: Any) -> subprocess.Popen[bytes]:
        """Start worker node ``node`` as process ``name`` (options as for ``celery_worker``)."""
        self.procs[name] = celery_worker(self.env, self.log(name), node, *extra, unset=self.unset, **options)
        return self.procs[name]

    def beat(self, name: str = "beat", *extra: str) -> subprocess.Popen[bytes]:
        """Start beat as process ``name``, its schedule file its own."""
        schedule = self.tmp / f"{name}-schedule"
        self.procs[name] = celery_beat(self.env, self.log(name), schedule, *extra, unset=self.unset)
        return self.procs[name]

    def ready(self, name: str = "worker", timeout: float = 30, what: str = "the worker to start") -> None:
        """Wait until worker process ``name`` says it is ready."""
        wait_for(lambda: "ready." in self.log(name).read_text(), timeout, what)

    def states(self, job_id: str) -> dict[str, int]:
        """Message state → count, for one job."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Message.state, func.count()).where(Message.job_id == job_id).group_by(Message.state)
            )
            return dict(rows.all())


@contextmanager
def worker_stack(tmp: Path, env: Mapping[str, str], unset: Sequence[str] = ()) -> Iterator[Stack]:
    """This run's Redis (emptied before and after) and a fresh PostgreSQL database, with ``env``.

    Processes started on the stack are stopped when it is left.
    """
    client = empty_redis()
    with fresh_pg_database() as db_url:
        full = {k: v for k, v in os.environ.items() if k not in unset}
        full.update({"REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT), **env, "DATABASE_URL": db_url})
        stack = Stack(make_engine(db_url), full, tmp, tuple(unset))
        try:
            yield stack
        finally:
            stop(*stack.procs.values())
            stack.engine.dispose()
            wipe_redis(client)


@contextmanager
def itcloud_stack(
    tmp: Path,
    env_extra: Mapping[str, str] | None = None,
    worker_args: Sequence[str] = (),
    account_extra: str = "",
    loglevel: str = "INFO",
) -> Iterator[Stack]:
    """A worker (one process) named ``ops`` and beat on the IT Cloud simulator, ready.

    ``account_extra`` adds lines to the account's table; ``{url}`` in it is the simulator's base URL.
    """
    settings = "retry_base = 0.2\nretry_max = 1.0\n"
    with itcloud_vendor(tmp, OPS_TOKEN, settings, account_extra) as vendor:
        with worker_stack(tmp, {**vendor.env, **(env_extra or {})}) as stack:
            stack.vendor = vendor
            stack.worker("ops", *worker_args, loglevel=loglevel)
            stack.beat()
            stack.ready()
            yield stack
