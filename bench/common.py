"""What every benchmark of ``bench/`` starts and measures with. Its names are a stable API.

Databases and brokers of their own (nothing shared is ever flushed or dropped)::

    with pg_database() as db_url: ...        # fresh PostgreSQL database smsd_bench_<hex>, migrated
                                             # with the project's migrate, dropped (FORCE) after
    with redis_database() as redis_url: ...  # a Redis database number that was empty when claimed
                                             # (marked with BENCH_OWNER_KEY); emptied after, only
                                             # while the mark is still ours

A fake vendor fast enough not to be the limit, with a latency knob::

    with fake_vendor(tmp, latency=0.2) as vendor:   # the project's sandbox simulators on loopback
        vendor.account("smsclouds")                 # the sandbox customer's account key
        vendor.accounts_file                        # accounts file pointing at the simulators
        vendor.env                                  # secrets, accounts file, clock file
        vendor.config("smsclouds")                  # its AccountConfig, as a worker reads it
        vendor.sends("smsclouds", since=0)          # [Seen(at, body, query, params)] its sends;
                                                    # ``at`` is time.monotonic() on arrival
        vendor.count("smsclouds"), vendor.violations(), vendor.duplicates(), vendor.reset()
        vendor_capacity(vendor, in_flight=16)       # requests/s it serves at latency 0

    The simulators run in a process of their own (spawned), so a client loop here never shares
    an interpreter lock with them.

    ``account_settings={"mx-smsclick": {"max_in_flight": 8}}`` adds lines to an account's table.
    Accounts poll reports and replies every 60 s (the policy's default), not the sandbox's 5 s.
    The clock file stands at ``NOW`` (10:00 in Mexico City) moving in real time, inside every
    default sending window; workers and simulators read the same file.

Real worker processes of the project, started as an operator starts them::

    with stack(tmp, latency=0.2, workers=2) as s:   # the three above, plus one ``celery -A tasks
                                                    # worker --concurrency=N`` node and beat
        s.env, s.db_url, s.engine, s.vendor, s.workers.pids(), s.workers.rss_mb()
        job_id = s.submit_cli(job)                  # ``dispatcher submit job.json``
        job_id = s.submit_celery(job)               # the Celery door: task dispatcher.submit
        s.wait_sent(job_id, n, timeout)             # seconds until n rows are sent (sent_at set;
                                                    # a report may have moved them on) or none is
                                                    # left pending/sending
        s.run_until(job_id, n, cap, started)        # the same, stopped at a cap: (seconds, sent)
        s.cancel(job_id), s.states(job_id), s.sent_count(job_id)
    with workers(env, tmp, n=2) as w: ...           # the worker node (and beat) alone

Figures::

    repeat(fn, n) -> Figures(values, min, median)   # fn() returns one float per run
    record(name, {"ratio": 0.81, ...})              # appends a row to docs/benchmarks.md:
                                                    # date, commit (+dirty), machine, figures
    rate(count, seconds), fmt(figures)

Set ``SMSD_BENCH_PG`` (admin URL) and ``SMSD_BENCH_REDIS`` (server URL) to use other servers.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from dispatcher.clock import FileClock
from dispatcher.config import AccountConfig, parse_accounts
from dispatcher.db import make_engine, migrate
from dispatcher.models import Message
from dispatcher.sandbox.core import Faults, SimRequest
from dispatcher.sandbox.world import ACCOUNT_KEYS, SECRETS, SandboxWorld, build_world
from dispatcher.vendors import VENDORS
from dispatcher.vendors.base import Outgoing, Recipient

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("SMSD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = os.environ.get("SMSD_BENCH_REDIS", "redis://127.0.0.1:6379").rstrip("/")
#: the key that marks a Redis database as this benchmark run's
BENCH_OWNER_KEY = "smsdispatch:bench-run-owner"
#: 10:00 in Mexico City, 11:00 in Bogota: inside every default sending window
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
DOCS = ROOT / "docs" / "benchmarks.md"
#: the ``dispatcher`` command of this environment
_SCRIPT = Path(sys.executable).parent / "dispatcher"
DISPATCHER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dispatcher.cli"]
#: seconds a worker node may take to start (a loaded machine needs far more than an idle one)
WORKER_START = 300
#: seconds between two looks at a job's progress (one count query each)
POLL = 0.25
#: report and reply polls as often as an account polls by default (``AccountPolicy``)
POLL_DEFAULTS = {"status_poll_seconds": 60.0, "reply_poll_seconds": 60.0}
#: connections the fake vendor's listening socket queues
LISTEN_BACKLOG = 1024
#: phones of the sandbox customers' countries, i-th of a run
PHONE = {"smsclouds": "+5255{:08d}", "smsclick": "+5255{:08d}", "itcloud": "+57300{:07d}"}


def phones(vendor: str, n: int, start: int = 0) -> list[str]:
    """``n`` distinct valid phones of the vendor's sandbox country."""
    return [PHONE[vendor].format(i) for i in range(start, start + n)]


# --- databases -----------------------------------------------------------------------------------


@contextmanager
def pg_database(admin_url: str = PG_ADMIN) -> Iterator[str]:
    """A fresh PostgreSQL database ``smsd_bench_<hex>``, migrated; dropped when left."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"smsd_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_WIPE = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('FLUSHDB') return 1 end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"


@contextmanager
def redis_database(server: str = REDIS_SERVER, ttl: int = 600) -> Iterator[str]:
    """A Redis database number that was empty when claimed, ours by a mark; emptied when left.

    The mark is set with NX on an empty database and renewed while we hold it; the database is
    flushed at the end only if the mark is still ours. Nothing else is ever flushed.
    """
    import redis

    owner = secrets.token_hex(8)
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{server}/{number}")
        if client.dbsize() == 0 and client.set(BENCH_OWNER_KEY, owner, nx=True, ex=ttl):
            if client.dbsize() == 1:
                break
            client.delete(BENCH_OWNER_KEY)  # someone else's keys arrived meanwhile
        client.close()
    else:
        raise RuntimeError(f"no empty Redis database left on {server}")
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 4):
            client.eval(_RENEW, 1, BENCH_OWNER_KEY, owner, ttl)

    threading.Thread(target=renew, name="bench-redis-claim", daemon=True).start()
    try:
        yield f"{server}/{number}"
    finally:
        stop.set()
        client.eval(_WIPE, 1, BENCH_OWNER_KEY, owner)
        client.close()


# --- the fake vendor -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One send request as the fake vendor saw it."""

    #: ``time.monotonic()`` on arrival (the system's monotonic clock: comparable across processes)
    at: float
    body: bytes
    #: query and form fields, joined ``k=v&...`` unescaped (for reading, not parsing)
    query: str
    #: query and form fields (form wins)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeVendor:
    """The sandbox simulators, served by a process of their own, and the accounts file pointing at them."""

    conn: Any
    urls: dict[str, str]
    send_paths: dict[str, str]
    clock: FileClock
    accounts_file: Path
    env: dict[str, str]

    def _ask(self, *command: Any) -> Any:
        self.conn.send(command)
        return self.conn.recv()

    def account(self, vendor: str) -> str:
        """The sandbox customer's account key for ``vendor``."""
        return ACCOUNT_KEYS[vendor]

    def url(self, vendor: str) -> str:
        return self.urls[vendor]

    def config(self, vendor: str) -> AccountConfig:
        """The account as a worker reads it from the accounts file."""
        accounts = parse_accounts(tomllib.loads(self.accounts_file.read_text()), SECRETS)
        return accounts[self.account(vendor)]

    def sends(self, vendor: str, since: int = 0) -> list[Seen]:
        """The send requests ``vendor`` got, in order of arrival, from the ``since``-th on."""
        result: list[Seen] = self._ask("sends", vendor, since)
        return result

    def count(self, vendor: str) -> int:
        """How many send requests ``vendor`` got."""
        result: int = self._ask("count", vendor)
        return result

    def violations(self) -> list[str]:
        """Limit violations the simulators saw (IT Cloud's pause and batch size)."""
        result: list[str] = self._ask("violations")
        return result

    def duplicates(self) -> dict[str, int]:
        """Phones a simulator accepted more than once."""
        result: dict[str, int] = self._ask("duplicates")
        return result

    def reset(self) -> None:
        """Forget the requests seen so far (between two runs on the same simulators)."""
        self._ask("reset")


def _send_paths(world: SandboxWorld, accounts_file: Path) -> dict[str, str]:
    """Vendor -> the path of its send requests as its adapter builds them (under its base URL).

    For the vendors the benchmarks send to (those of ``PHONE``).
    """
    import httpx

    accounts = parse_accounts(tomllib.loads(accounts_file.read_text()), SECRETS)
    paths = {}
    for vendor, phone in PHONE.items():
        config = accounts[ACCOUNT_KEYS[vendor]]
        built = VENDORS[vendor].build_send(config.account, Outgoing([Recipient(1, phone.format(1), "x")]))
        paths[vendor] = built[0].request.url.path.removeprefix(httpx.URL(world.url(vendor)).path)
    return paths


def _serve_vendor(conn: Any, clock_file: str, accounts_file: str, latency: float, settings: Any) -> None:
    """The fake vendor's process: start the world, write the accounts file, answer questions."""
    clock = FileClock(clock_file)
    world = build_world(clock, faults={vendor: Faults(latency=latency) for vendor in VENDORS})
    # socketserver listens with a backlog of 5: more clients connecting at once than that lose
    # their SYN and wait a second to retry. Widen the queue of the listening socket.
    world.server.httpd.socket.listen(LISTEN_BACKLOG)
    # Poll reports at the project's default pace, not the sandbox's few seconds: the benchmarks
    # time sending, and a poll of every sent message every 5 s competes with it for the workers.
    paced = {key: {**POLL_DEFAULTS, **settings.get(key, {})} for key in ACCOUNT_KEYS.values()}
    Path(accounts_file).write_text(world.accounts_toml(**paced))
    paths = _send_paths(world, Path(accounts_file))
    ledger = world.ledger
    conn.send(({vendor: world.url(vendor) for vendor in VENDORS}, paths))

    def sends(vendor: str) -> list[SimRequest]:
        with ledger.lock:
            return [r for v, r in ledger.requests if v == vendor and r.path.endswith(paths[vendor])]

    try:
        while True:
            command, *args = conn.recv()
            if command == "stop":
                break
            if command == "sends":
                answer: Any = [
                    Seen(r.at, r.body, "&".join(f"{k}={v}" for k, v in r.params().items()), r.params())
                    for r in sends(args[0])[args[1] :]
                ]
            elif command == "count":
                answer = len(sends(args[0]))
            elif command == "violations":
                with ledger.lock:
                    answer = list(ledger.violations)
            elif command == "duplicates":
                answer = ledger.duplicates()
            elif command == "reset":
                with ledger.lock:
                    ledger.requests.clear()
                    ledger.sends.clear()
                    ledger.violations.clear()
                answer = None
            else:
                answer = ValueError(command)
            conn.send(answer)
    finally:
        world.stop()
        conn.send(None)


@contextmanager
def fake_vendor(
    tmp: Path,
    latency: float = 0.0,
    account_settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[FakeVendor]:
    """Every sandbox simulator on one loopback server, in a process of its own, answering after ``latency`` s.

    Its own process: a client in this process (a ceiling loop) does not share an interpreter
    lock with the server it measures.
    """
    import multiprocessing

    clock = FileClock(tmp / "clock")
    clock.set(NOW)
    accounts = tmp / "accounts.toml"
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    settings = {k: dict(v) for k, v in (account_settings or {}).items()}
    proc = ctx.Process(
        target=_serve_vendor, args=(theirs, str(clock.path), str(accounts), latency, settings), daemon=True
    )
    proc.start()
    try:
        _wait(lambda: ours.poll(0.1) or not proc.is_alive(), 60, "the fake vendor to start")
        if not proc.is_alive():
            raise RuntimeError(f"the fake vendor's process died (exit {proc.exitcode})")
        urls, paths = ours.recv()
        env = {**SECRETS, "DISPATCHER_ACCOUNTS": str(accounts), "DISPATCHER_CLOCK_FILE": str(clock.path)}
        yield FakeVendor(ours, urls, paths, clock, accounts, env)
    finally:
        if proc.is_alive():
            ours.send(("stop",))
            proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def vendor_capacity(vendor: FakeVendor, in_flight: int = 16, seconds: float = 3.0) -> float:
    """Requests/s the fake vendor serves: ``in_flight`` smsclouds sends at once from one async client."""
    import asyncio

    import httpx

    config = vendor.config("smsclouds")
    built = (
        VENDORS["smsclouds"]
        .build_send(config.account, Outgoing([Recipient(1, phones("smsclouds", 1)[0], "Aviso")]))[0]
        .request
    )
    body = built.read()

    async def run() -> float:
        done = 0
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            deadline = time.monotonic() + seconds

            async def one() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    await http.request(built.method, built.url, headers=built.headers, content=body)
                    done += 1

            started = time.monotonic()
            await asyncio.gather(*(one() for _ in range(in_flight)))
            return done / (time.monotonic() - started)

    return asyncio.run(run())


# --- worker processes ----------------------------------------------------------------------------


@dataclass
class Workers:
    """One worker node (main process + pool children) and beat, running."""

    node: subprocess.Popen[bytes]
    beat: subprocess.Popen[bytes] | None
    log: Path

    def pids(self) -> list[int]:
        """The worker node's main process first, then its pool processes."""
        found = subprocess.run(["pgrep", "-P", str(self.node.pid)], capture_output=True, text=True).stdout
        return [self.node.pid, *(int(p) for p in found.split())]

    def rss_mb(self) -> dict[int, float]:
        """Resident memory in MB of each of ``pids()``."""
        out: dict[int, float] = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1]) / 1024
            except FileNotFoundError:
                pass
        return out


def _stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        if proc is None:
            continue
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def workers(
    env: Mapping[str, str], tmp: Path, n: int = 2, beat: bool = True, loglevel: str = "WARNING"
) -> Iterator[Workers]:
    """``celery -A tasks worker --concurrency=n`` on queues jobs, send, poll (and beat), ready."""
    log = tmp / "worker.log"
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    node_name = f"bench-{uuid.uuid4().hex[:6]}@%h"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", f"--concurrency={n}", "-Q", "jobs,send,poll",
        f"--loglevel={loglevel}", "--without-mingle", "--without-gossip", "-n", node_name,
    ]  # fmt: skip
    with log.open("ab") as out:
        node = subprocess.Popen(command, cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)
    beat_proc = None
    try:
        if beat:
            beat_cmd = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tasks",
                "beat",
                "--schedule",
                str(tmp / "beat-schedule"),
            ]
            with (tmp / "beat.log").open("ab") as out:
                beat_proc = subprocess.Popen(beat_cmd, cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)
        handle = Workers(node, beat_proc, log)
        _wait(lambda: len(handle.pids()) >= n + 1 and _ready(full, node_name), WORKER_START, "the worker to start")
        yield handle
    finally:
        _stop(node, beat_proc)


def producer(redis_url: str) -> Any:
    """A Celery client of the broker with the project's transport options (its key separator)."""
    from celery import Celery

    import celeryconfig

    app = Celery(broker=redis_url)
    app.conf.broker_transport_options = dict(celeryconfig.broker_transport_options)
    app.conf.task_queues = celeryconfig.task_queues
    return app


def _ready(env: Mapping[str, str], node_name: str) -> bool:
    """The node answers a ping through the broker."""
    app = producer(env["REDIS_URL"])
    try:
        replies = app.control.ping(timeout=0.5)
    finally:
        app.close()
    return any(name.startswith(node_name.split("@")[0]) for reply in replies for name in reply)


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Stack:
    """PostgreSQL, Redis, the fake vendor and the workers of one benchmark run."""

    db_url: str
    redis_url: str
    vendor: FakeVendor
    workers: Workers
    env: dict[str, str]
    tmp: Path
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(self.db_url)

    def submit_cli(self, job: Mapping[str, Any]) -> str:
        """``dispatcher submit job.json`` as an operator runs it; the job id it prints."""
        path = self.tmp / f"job-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(job))
        done = subprocess.run(
            [*DISPATCHER, "submit", str(path)],
            cwd=ROOT, env={**os.environ, **self.env}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"dispatcher submit failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return done.stdout.split()[-1]

    def submit_celery(self, job: Mapping[str, Any]) -> str:
        """Drop the job on queue ``jobs`` (task ``dispatcher.submit``) as a producer does; its id."""
        app = producer(self.redis_url)
        try:
            return str(app.send_task("dispatcher.submit", args=[dict(job)], queue="jobs").id)
        finally:
            app.close()

    def states(self, job_id: str | None = None) -> dict[str, int]:
        """Message state -> count, of one job or of all."""
        query = select(Message.state, func.count()).group_by(Message.state)
        if job_id is not None:
            query = query.where(Message.job_id == job_id)
        with self.engine.connect() as conn:
            return {state: count for state, count in conn.execute(query).all()}

    def sent_count(self, job_id: str | None = None) -> int:
        """Rows the vendor took (``sent_at`` set): sent, or moved on since by a report."""
        query = select(func.count()).select_from(Message).where(Message.sent_at.is_not(None))
        if job_id is not None:
            query = query.where(Message.job_id == job_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def open_count(self, job_id: str) -> int:
        """Rows of the job still pending or sending."""
        query = select(func.count()).where(Message.job_id == job_id, Message.state.in_(("pending", "sending")))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def progress(self, job_id: str) -> tuple[int, int, int]:
        """(rows, rows the vendor took, rows still pending or sending) of a job, in one query."""
        query = select(
            func.count(),
            func.count().filter(Message.sent_at.is_not(None)),
            func.count().filter(Message.state.in_(("pending", "sending"))),
        ).where(Message.job_id == job_id)
        with self.engine.connect() as conn:
            total, sent, left = conn.execute(query).one()
        return int(total), int(sent), int(left)

    def wait_sent(self, job_id: str, n: int, timeout: float, started: float | None = None) -> float:
        """Seconds (from ``started``, a perf_counter; default now) until the job is done sending.

        Done: ``n`` rows taken by the vendor, or none left pending or sending (then some were
        refused; ``states`` says how many). Raises TimeoutError with the job's counts when
        ``timeout`` passes first.
        """
        started = time.perf_counter() if started is None else started
        deadline = started + timeout
        while time.perf_counter() < deadline:
            total, sent, left = self.progress(job_id)
            if sent >= n or (total and not left):
                return time.perf_counter() - started
            time.sleep(POLL)
        raise TimeoutError(f"job {job_id}: {self.states(job_id)} after {timeout:.0f} s")

    def run_until(self, job_id: str, n: int, cap: float, started: float) -> tuple[float, int]:
        """Wait until the job is done sending (as ``wait_sent``) or ``cap`` s from ``started`` passed.

        Returns (seconds from ``started``, rows sent then): a rate for a job longer than the cap.
        """
        while True:
            total, sent, left = self.progress(job_id)
            elapsed = time.perf_counter() - started
            if sent >= n or elapsed >= cap or (total and not left):
                return elapsed, sent
            time.sleep(POLL)

    def cancel(self, job_id: str, timeout: float = 60) -> None:
        """``dispatcher cancel JOB``, then wait until none of its rows is in flight."""
        subprocess.run(
            [*DISPATCHER, "cancel", job_id],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            check=False,
        )
        _wait(lambda: self.states(job_id).get("sending", 0) == 0, timeout, f"job {job_id} to settle")


@contextmanager
def stack(
    tmp: Path | None = None,
    latency: float = 0.0,
    workers_n: int = 2,
    account_settings: Mapping[str, Mapping[str, Any]] | None = None,
    beat: bool = True,
) -> Iterator[Stack]:
    """A fresh database, an own Redis database, the fake vendor and ``workers_n`` worker processes."""
    own_tmp = tmp is None
    tmp = Path(tempfile.mkdtemp(prefix="smsd-bench-")) if tmp is None else tmp
    try:
        with pg_database() as db_url, redis_database() as redis_url:
            with fake_vendor(tmp, latency, account_settings) as vendor:
                env = {
                    **vendor.env,
                    "DATABASE_URL": db_url,
                    "REDIS_URL": redis_url,
                    "DISPATCHER_SWEEP_SECONDS": "0.5",
                    "DISPATCHER_METRICS_PORT": "0",
                    "DISPATCHER_LOG_LEVEL": "WARNING",
                }
                with workers(env, tmp, workers_n, beat) as running:
                    s = Stack(db_url, redis_url, vendor, running, env, tmp)
                    try:
                        yield s
                    finally:
                        s.engine.dispose()
    finally:
        if own_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


# --- figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """The values of repeated runs, with their min and median."""

    values: list[float]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def repeat(fn: Callable[[], float], n: int) -> Figures:
    """Run ``fn`` ``n`` times; its return values with their min and median."""
    return Figures([fn() for _ in range(n)])


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarise(runs: list[Mapping[str, float]], keys: list[str] | None = None) -> dict[str, float]:
    """``<key> min`` and ``<key> median`` over runs, for each key (all keys of the first run by default)."""
    out: dict[str, float] = {}
    for key in keys or list(runs[0]):
        values = [run[key] for run in runs]
        out[f"{key} min"] = min(values)
        out[f"{key} median"] = statistics.median(values)
    return out


# --- ceilings: the same requests without the project ---------------------------------------------


def built_requests(vendor: FakeVendor, key: str, recipients: list[Recipient]) -> Iterator[Any]:
    """The adapter's send requests for ``recipients``, cut to the vendor's batch size, lazily."""
    config = vendor.config(key)
    adapter = VENDORS[key]
    size = adapter.limits.batch_size
    for at in range(0, len(recipients), size):
        for sent in adapter.build_send(config.account, Outgoing(recipients[at : at + size])):
            yield sent.request


def bare_sequential(vendor: FakeVendor, key: str, recipients: list[Recipient]) -> float:
    """Seconds a plain ``httpx.Client`` loop takes to post the adapter's requests one after another.

    The requests are built before the clock starts: the loop times the wire alone.
    """
    import httpx

    requests = list(built_requests(vendor, key, recipients))
    started = time.perf_counter()
    with httpx.Client(timeout=60) as http:
        for request in requests:
            http.send(request).raise_for_status()
    return time.perf_counter() - started


def bare_async(
    vendor: FakeVendor, key: str, recipients: list[Recipient], in_flight: int, cap: float
) -> tuple[float, int]:
    """A plain ``httpx.AsyncClient`` loop, ``in_flight`` requests at once, stopped after ``cap`` s.

    The requests are built before the clock starts. Returns (seconds, recipients sent).
    """
    import asyncio

    import httpx

    requests = list(built_requests(vendor, key, recipients))
    per_request = max(1, len(recipients) // max(1, len(requests)))

    async def run() -> tuple[float, int]:
        done = 0
        queue = iter(requests)
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            started = time.perf_counter()

            async def lane() -> None:
                nonlocal done
                for request in queue:
                    if time.perf_counter() - started >= cap:
                        return
                    (await http.send(request)).raise_for_status()
                    done += per_request

            await asyncio.gather(*(lane() for _ in range(in_flight)))
            return time.perf_counter() - started, done

    return asyncio.run(run())


def machine() -> str:
    """CPU model and cores of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def commit() -> str:
    """``git rev-parse --short HEAD``, plus ``dirty`` when the tree has changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    return head.stdout.strip() + (" dirty" if dirty.stdout.strip() else "")


def fmt(figures: Mapping[str, Any]) -> str:
    """``name value; ...`` with floats rounded for reading."""
    parts = []
    for name, value in figures.items():
        if isinstance(value, float):
            value = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
        parts.append(f"{name} {value}")
    return "; ".join(parts)


def publish(name: str, figures: Mapping[str, object], no_record: bool = False, note: str = "") -> None:
    """Print a benchmark's figures (with ``note``), and record them unless told not to."""
    print(f"{name}: {fmt(figures)}{' ' + note if note else ''}", flush=True)
    if not no_record:
        record(name, figures)


def record(name: str, figures: Mapping[str, Any], path: Path = DOCS) -> str:
    """Append one row (date, commit, machine, benchmark, figures) to the runs table; return it."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    row = f"| {date} | {commit()} | {machine()} | {name} | {fmt(figures).replace('|', '/')} |\n"
    with path.open("a", encoding="utf-8") as out:
        out.write(row)
    return row
