"""One-number vendors send a batch's requests concurrently, within the account's cap, each claimed once.

The SMSClick and Ogangi simulators on loopback count the requests they answer at once; worker
processes are forked, each with its own engine, HTTP client and the one Redis that holds the
account's flights. The promises: never more than ``max_in_flight`` requests of an account at the
vendor at once, whatever the number of processes; each row claimed once and each number sent
once; a worker killed mid-request leaves its rows ``unknown`` (not resent) and its places come
back when their leases run out; a cancel stops a running batch; the soft time limit leaves the
requests in the air ``unknown`` and the rest pending.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine, select

from dispatcher.config import AccountConfig, Settings, parse_accounts
from dispatcher.db import make_engine
from dispatcher.jobs import ingest_job
from dispatcher.models import Batch, Message, MessageEvent
from dispatcher.operator import cancel_job
from dispatcher.ratelimit import MemoryLimiter, RedisLimiter
from dispatcher.release import expire_stale_sending, release_due
from dispatcher.sandbox.core import Faults, Ledger, SandboxServer
from dispatcher.sandbox.world import SIMULATORS
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from tests.conftest import FakeClock, redis_url
from tests.test_send_loop import soft_limit  # noqa: F401 - the fixture

#: 10:00 in Mexico City and in Caracas' neighbourhood: inside every default window
MORNING = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
#: worker processes racing on one account
PROCESSES = 3
#: seconds a test waits for something that should take far less
PATIENCE = 60.0


@dataclass
class Vendor:
    """A one-number vendor's simulator on loopback, and the account that reaches it."""

    key: str
    server: SandboxServer
    ledger: Ledger
    clock: FakeClock
    sim: Any

    def accounts(self, **policy: object) -> dict[str, AccountConfig]:
        customer = self.sim.sandbox
        spec = {"vendor": self.key, "base_url": self.server.url(self.key), **customer.fields, **policy}
        return parse_accounts({"accounts": {customer.account: spec}}, {customer.secret_env: customer.secret})

    @property
    def account(self) -> str:
        return str(self.sim.sandbox.account)

    def sends(self) -> int:
        return sum(self.ledger.sends.values())


@pytest.fixture(params=["smsclick", "ogangi"])
def vendor(request: pytest.FixtureRequest) -> Iterator[Vendor]:
    yield from _vendor(request.param, latency=0.1)


@pytest.fixture
def slow_smsclick() -> Iterator[Vendor]:
    yield from _vendor("smsclick", latency=3.0)


def _vendor(key: str, latency: float) -> Iterator[Vendor]:
    ledger, clock = Ledger(), FakeClock(MORNING)
    sim = SIMULATORS[key](ledger, clock, faults=Faults(latency=latency))
    sim.join_sandbox("")
    server = SandboxServer({key: sim}).start()
    yield Vendor(key, server, ledger, clock, sim)
    server.stop()


def submit(
    engine: Engine, vendor: Vendor, accounts: Mapping[str, AccountConfig], count: int
) -> tuple[str, list[int]]:
    """Ingest the vendor's sample job with ``count`` recipients; return its id and batches."""
    job = vendor.sim.sandbox.sample.job(vendor.account, count)
    job_id = ingest_job(engine, accounts, job, MORNING).job_id
    with engine.connect() as conn:
        batches = conn.execute(select(Batch.id).where(Batch.job_id == job_id).order_by(Batch.id)).scalars()
        return job_id, list(batches)


def services(engine: Engine, accounts: Mapping[str, AccountConfig], clock: FakeClock, limiter: Any) -> Services:
    return Services(engine, accounts, limiter, Transport(), Settings(DATABASE_URL="sqlite://"), clock)


def _worker(url: str, accounts: Any, when: datetime, batches: list[int], start: Any, done: Any) -> None:
    """One forked worker process: its own engine, client and Redis connection; every batch in turn."""
    import redis

    engine = make_engine(url)
    ctx = services(engine, accounts, FakeClock(when), RedisLimiter(redis.Redis.from_url(redis_url())))
    start.wait(PATIENCE)
    requests = 0
    for batch in batches:
        requests += send_batch(ctx, batch).requests
    done.put(requests)


def fork_workers(engine: Engine, accounts: Any, batches: list[int], count: int) -> tuple[list[Any], Any]:
    engine.dispose()  # no pooled connection of ours crosses the fork
    mp = multiprocessing.get_context("fork")
    done, start = mp.Queue(), mp.Barrier(count)
    url = engine.url.render_as_string(hide_password=False)
    # Each process starts at another batch, as workers taking queued batches do: they overlap for sure.
    procs = [
        mp.Process(target=_worker, args=(url, accounts, MORNING, batches[i:] + batches[:i], start, done))
        for i in range(count)
    ]
    for p in procs:
        p.start()
    return procs, done


def rows(engine: Engine, job_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(Message.id, Message.state, Message.attempts).where(Message.job_id == job_id))
        )


def history(engine: Engine, job_id: str) -> Counter[tuple[str, str]]:
    with engine.connect() as conn:
        events = conn.execute(
            select(MessageEvent.from_state, MessageEvent.to_state)
            .join(Message, Message.id == MessageEvent.message_id)
            .where(Message.job_id == job_id)
        )
        return Counter((e.from_state, e.to_state) for e in events)


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        assert time.monotonic() < deadline, f"no {what} after {PATIENCE} s"
        time.sleep(0.01)


def test_processes_never_exceed_the_accounts_flights(pg_engine: Engine, vendor: Vendor, redis_client) -> None:  # type: ignore[no-untyped-def]
    # Given an account that allows 4 requests in flight and a job of 120 numbers
    accounts = vendor.accounts(max_in_flight=4)
    job_id, batches = submit(pg_engine, vendor, accounts, 120)
    # When three worker processes send every batch at the same time
    procs, done = fork_workers(pg_engine, accounts, batches, PROCESSES)
    for p in procs:
        p.join(PATIENCE)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    requests = sum(done.get(timeout=5) for _ in procs)
    # Then the vendor never answered more than 4 of the account's requests at once (and did answer 4)
    assert vendor.ledger.peak_in_flight[vendor.key] == 4
    # And each number went out once, each row was claimed once and is sent, with one event
    assert vendor.ledger.duplicates() == {} and vendor.sends() == requests == 120
    assert {(r.state, r.attempts) for r in rows(pg_engine, job_id)} == {("sent", 1)}
    assert history(pg_engine, job_id) == {("sending", "sent"): 120}


def test_one_task_keeps_its_own_cap_without_redis(engine: Engine, vendor: Vendor) -> None:
    # Given an account with 3 places and the in-process limiter of the embedded default
    accounts = vendor.accounts(max_in_flight=3)
    job_id, batches = submit(engine, vendor, accounts, 30)
    ctx = services(engine, accounts, vendor.clock, MemoryLimiter())
    # When its batches are sent
    requests = sum(send_batch(ctx, batch).requests for batch in batches)
    # Then at most 3 were in flight, and every number went out once
    assert vendor.ledger.peak_in_flight[vendor.key] == 3
    assert requests == vendor.sends() == 30 and vendor.ledger.duplicates() == {}
    assert {r.state for r in rows(engine, job_id)} == {"sent"}


def test_a_killed_worker_leaves_unknown_and_its_places_come_back(
    pg_engine: Engine, slow_smsclick: Vendor, redis_client
) -> None:  # type: ignore[no-untyped-def]
    vendor = slow_smsclick
    # Given a worker process sending a batch, its vendor holding each reply for 3 s
    accounts = vendor.accounts(max_in_flight=4, connect_timeout=0.5, read_timeout=1.0)
    job_id, batches = submit(pg_engine, vendor, accounts, 10)
    (proc,), _ = fork_workers(pg_engine, accounts, batches[:1], 1)
    wait_for(lambda: vendor.ledger.in_flight[vendor.key] == 4, "four requests at the vendor")
    # When the process is killed mid-request
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(PATIENCE)
    limiter = RedisLimiter(redis_client)
    # Then its four places stay taken until their leases run out (connect + read + 5 s)
    assert limiter.take_flight(vendor.account, 4, 1.0) is None
    wait_for(lambda: limiter.take_flight(vendor.account, 4, 1.0) is not None, "a place back")
    # And the stale sweep declares its four claimed rows unknown; sending again resends none of them
    settings = Settings(DATABASE_URL="sqlite://")
    vendor.clock.advance(settings.sending_timeout + 1)
    assert expire_stale_sending(pg_engine, settings, vendor.clock.now()) == 4
    vendor.sim.faults.latency = 0.01  # the vendor is quick again, for the rest of the batch
    ctx = services(pg_engine, vendor.accounts(max_in_flight=4), vendor.clock, MemoryLimiter())
    queued: list[int] = []
    release_due(pg_engine, settings, vendor.clock.now(), lambda batch, _p: queued.append(batch))
    for batch in queued:
        send_batch(ctx, batch)
    assert Counter(r.state for r in rows(pg_engine, job_id)) == {"unknown": 4, "sent": 6}
    assert vendor.ledger.duplicates() == {} and vendor.sends() == 10


def test_a_cancel_stops_a_running_batch(engine: Engine, vendor: Vendor) -> None:
    # Given a batch of 20 going out two at a time
    accounts = vendor.accounts(max_in_flight=2)
    job_id, (batch, *_) = submit(engine, vendor, accounts, 20)
    ctx = services(engine, accounts, vendor.clock, MemoryLimiter())
    task = threading.Thread(target=send_batch, args=(ctx, batch))
    task.start()
    # When the job is canceled once a few requests went out
    wait_for(lambda: vendor.sends() >= 2, "a request")
    cancel_job(engine, job_id, vendor.clock.now())
    task.join(PATIENCE)
    # Then the task ended without sending the rest: the ones in the air when it came are sent,
    # every other row is canceled, and nothing went out twice
    states = Counter(r.state for r in rows(engine, job_id))
    assert not task.is_alive()
    assert set(states) == {"sent", "canceled"} and states["sent"] == vendor.sends() <= 6
    assert vendor.ledger.duplicates() == {}


def test_the_soft_limit_leaves_the_requests_in_the_air_unknown(
    engine: Engine,
    slow_smsclick: Vendor,
    soft_limit: Callable[[float], None],  # noqa: F811 - the fixture
) -> None:
    vendor = slow_smsclick
    # Given a batch of 10 going out 3 at a time, the vendor holding each reply for 3 s
    accounts = vendor.accounts(max_in_flight=3, read_timeout=10.0)
    job_id, (batch,) = submit(engine, vendor, accounts, 10)
    ctx = services(engine, accounts, vendor.clock, MemoryLimiter())

    # When the soft time limit fires while the first three are in flight
    def fire_when_three_are_in_flight() -> None:
        wait_for(lambda: vendor.ledger.in_flight[vendor.key] == 3, "three requests at the vendor")
        soft_limit(0.01)

    threading.Thread(target=fire_when_three_are_in_flight, daemon=True).start()
    with pytest.raises(SoftTimeLimitExceeded):
        send_batch(ctx, batch)
    # Then those three rows are unknown at once, with their history; the other seven wait, unclaimed
    assert Counter((r.state, r.attempts) for r in rows(engine, job_id)) == {("unknown", 1): 3, ("pending", 0): 7}
    assert history(engine, job_id) == {("sending", "unknown"): 3}
    assert vendor.sends() == 3
