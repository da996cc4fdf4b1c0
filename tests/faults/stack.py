"""The stack every fault scenario runs on, and how a scenario settles and is judged.

Real processes throughout: a supervised Celery worker (prefork) and beat, a Redis server of our
own (append-only), the shared PostgreSQL behind a proxy that can go down, and the five vendor
simulators on loopback in this process, where their faults can be changed while they serve.
The witnesses are the simulators' ledger (sends per phone) and the database.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from celery import Celery
from sqlalchemy import Engine, func, select

from dispatcher.clock import FileClock
from dispatcher.models import Job, Message, MessageState
from dispatcher.sandbox.world import OGANGI_CODE, VOIP_NUMBER, SandboxWorld
from tests.faults.processes import RedisServer, Supervised
from tests.faults.proxy import PgProxy

#: recipients of each scenario's job per account: one job per vendor, 3,000 in all
WORKLOAD = {"co-itcloud": 1500, "mx-smsclouds": 1000, "us-voipcomms": 400, "mx-smsclick": 50, "ve-ogangi": 50}
#: job options per account
OPTIONS = {"us-voipcomms": {"from": VOIP_NUMBER}, "ve-ogangi": {"from": OGANGI_CODE}}
#: seconds the clock jumps when nothing moves: past the requeue (300 s) and sending (600 s) timeouts
CLOCK_STEP = 660.0
#: seconds without any change before the clock is moved
STILL_FOR = 3.0
#: clock moves in a row that changed nothing before a scenario counts as settled
FRUITLESS_MOVES = 3
#: the Redis lock beat's release sweep takes (tasks/dispatch.py)
SWEEP_LOCK = "smsdispatch:lock:release"
#: seconds left on the sweep lock below which nobody alive holds it (a sweep takes milliseconds)
STUCK_LOCK_TTL = 115.0
LIVE = (MessageState.PENDING.value, MessageState.SENDING.value)


def phones(account: str, scenario: int, count: int) -> list[str]:
    """Numbers no other scenario uses, valid for the account's vendor."""
    k = f"{scenario:02d}"
    pattern = {
        "co-itcloud": lambda i: f"+57300{k}{i:05d}",
        "mx-smsclouds": lambda i: f"+52449{k}{i:05d}",
        "mx-smsclick": lambda i: f"+5255{k}{i:06d}",
        "us-voipcomms": lambda i: f"+1281{300 + scenario}{i:04d}",
        "ve-ogangi": lambda i: f"+58414{k}{i:05d}",
    }[account]
    return [pattern(i) for i in range(count)]


@dataclass
class Submitted:
    """The jobs of one scenario and what was put in them."""

    jobs: dict[str, int] = field(default_factory=dict)  #: job id -> recipients given
    phones: set[str] = field(default_factory=set)


class FaultStack:
    """Handles on the running stack; the supervisor thread restarts a worker or beat that exits."""

    def __init__(
        self,
        engine: Engine,
        world: SandboxWorld,
        clock: FileClock,
        redis_server: RedisServer,
        proxy: PgProxy,
        worker: Supervised,
        beat: Supervised,
    ):
        self.engine, self.world, self.clock = engine, world, clock
        self.redis_server, self.proxy, self.worker, self.beat = redis_server, proxy, worker, beat
        self.producer = Celery(broker=redis_server.url)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self.clock_moves = 0
        #: whether a settle had to wait for a dead process's sweep lock to time out
        self.waited_for_lock = False

    def start_supervisor(self) -> None:
        self._thread.start()

    def stop_supervisor(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                self.worker.keep_up()
                self.beat.keep_up()

    def restarts(self) -> int:
        """Times the worker exited on its own and had to be started again."""
        return self.worker.restarts

    def submit(self, job: Any) -> str:
        """Drop a job on the ``jobs`` queue as any producer would; the task id is the job id."""
        return self.producer.send_task("dispatcher.submit", args=[job], queue="jobs", argsrepr="(job)").id

    def submit_workload(self, scenario: int, text: str = "Aviso de prueba") -> Submitted:
        """One job per vendor, 3,000 recipients in all, numbers of this scenario only."""
        out = Submitted()
        for account, count in WORKLOAD.items():
            numbers = phones(account, scenario, count)
            job = {"account": account, "text": text, "recipients": numbers, "options": OPTIONS.get(account, {})}
            out.jobs[self.submit(job)] = count
            out.phones.update(numbers)
        return out

    def rows(self, job_ids: Iterable[str]) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(
                select(Message.id, Message.job_id, Message.address, Message.state, Message.vendor_id).where(
                    Message.job_id.in_(list(job_ids))
                )
            ).all()

    def states(self, job_ids: Iterable[str]) -> Counter[str]:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(Message.state, func.count())
                .where(Message.job_id.in_(list(job_ids)))
                .group_by(Message.state)
            )
            return Counter(dict(found.all()))

    def jobs_stored(self, job_ids: Iterable[str]) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(Job.id).where(Job.id.in_(list(job_ids)))).scalars())

    def jobs_refused(self, job_ids: Iterable[str]) -> dict[str, str]:
        """Jobs stored as rejected at the door with no rows (reason by id): refused, not lost."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Job.id, Job.reason).where(
                    Job.id.in_(list(job_ids)),
                    Job.state == "rejected",
                    Job.reason.is_not(None),
                    Job.recipients == 0,
                )
            ).all()
        return {row.id: row.reason for row in rows}

    def in_flight(self) -> set[int]:
        """Ids of the rows claimed right now (their request may be on the wire)."""
        with self.engine.connect() as conn:
            return set(
                conn.execute(select(Message.id).where(Message.state == MessageState.SENDING.value)).scalars()
            )

    def sweep_lock_ttl(self) -> float:
        """Seconds the release sweep's lock still has (0 when nobody holds it)."""
        client = redis.Redis.from_url(self.redis_server.url)
        try:
            return max(0.0, client.pttl(SWEEP_LOCK) / 1000)
        except redis.RedisError:
            return 0.0
        finally:
            client.close()

    def in_broker(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these tasks' messages Redis still holds (queued, or unacknowledged)."""
        client = redis.Redis.from_url(self.redis_server.url)
        found: set[str] = set()
        try:
            blobs = [b for k in client.scan_iter("*") for b in _messages(client, k)]
        finally:
            client.close()
        for task_id in task_ids:
            if any(task_id.encode() in blob for blob in blobs):
                found.add(task_id)
        return found

    def move_clock(self, seconds: float = CLOCK_STEP) -> None:
        """Move every process's clock on (sweeps requeue lost batches, expire stale claims)."""
        self.clock.set(self.clock.now() + timedelta(seconds=seconds))
        self.clock_moves += 1

    def settle(
        self, submitted: Submitted, timeout: float = 150.0, give_up: Callable[[], bool] | None = None
    ) -> None:
        """Wait until no recipient is pending or sending; move the clock only when nothing moves."""
        expected = sum(submitted.jobs.values())
        deadline = time.monotonic() + timeout
        last: tuple[Any, ...] = ()
        still_since, fruitless = time.monotonic(), 0
        while time.monotonic() < deadline and fruitless < FRUITLESS_MOVES and not (give_up and give_up()):
            states = self.states(submitted.jobs)
            if sum(states.values()) == expected and not any(states[s] for s in LIVE):
                return
            seen = tuple(sorted(states.items()))
            if seen != last:
                last, still_since, fruitless = seen, time.monotonic(), 0
            elif time.monotonic() - still_since > STILL_FOR:
                if 0 < self.sweep_lock_ttl() < STUCK_LOCK_TTL:
                    # A process killed mid-sweep holds the sweep's lock until it times out (in
                    # real seconds): moving the clock would only run the sending window out.
                    self.waited_for_lock = True
                    still_since = time.monotonic()
                else:
                    self.move_clock()
                    still_since, fruitless = time.monotonic(), fruitless + 1
            time.sleep(0.2)

    def serves_next_job(self, scenario: int, timeout: float = 45.0) -> bool:
        """Say whether a fresh small job is sent after the fault (the worker carries on)."""
        numbers = [f"+1281{300 + scenario}{9000 + i}" for i in range(5)]
        job_id = self.submit({"account": "us-voipcomms", "text": "Probe", "recipients": numbers,
                              "options": OPTIONS["us-voipcomms"]})  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.states([job_id]).get(MessageState.SENT.value, 0) == len(numbers):
                return True
            time.sleep(0.2)
        return False


def _messages(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key)
    if kind == b"list":
        return client.lrange(key, 0, -1)
    if kind == b"hash":
        return list(client.hgetall(key).values())
    return []


class FlightRecorder:
    """Every row seen claimed while a fault lasts: what a fault cut short can only be among these."""

    def __init__(self, stack: FaultStack, every: float = 0.1):
        self.stack, self.every = stack, every
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen |= self.stack.in_flight()
            self._stop.wait(self.every)

    def __enter__(self) -> FlightRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        self.seen |= self.stack.in_flight()
