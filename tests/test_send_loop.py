"""The send loop never stalls, never spins, never overruns (SQLite and PostgreSQL, loopback vendors).

Rows held by another task make no batch due; a task that waits for the account's slot stays
counted as in flight; a task stops starting requests when its time budget is spent; an exception
after a claim leaves exactly that request's rows ``unknown`` and keeps the vendor's pause;
messages past their deadline end ``expired`` instead of being sent.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine, select, update

from dispatcher.config import Settings, parse_accounts
from dispatcher.jobs import ingest_job
from dispatcher.models import Batch, Message, MessageEvent
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import expire_stale_sending, release_due
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.smsclick import SmsclickSim
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from tests.conftest import BOGOTA_10AM, FakeClock
from tests.test_sending import context, sends, states, submit

APIKEY = "click-key-0123456789"


def batch_row(engine: Engine, batch_id: int):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(
            select(Batch.state, Batch.not_before, Batch.enqueued_at).where(Batch.id == batch_id)
        ).one()


def release(ctx: Services) -> list[int]:
    queued: list[int] = []
    release_due(ctx.engine, ctx.settings, ctx.clock.now(), lambda batch, _p: queued.append(batch))
    return queued


# Item 2: rows held by another task


@pytest.mark.parametrize("held_not_before", [None, -30.0], ids=["fresh", "retried"])
def test_rows_held_by_another_task_do_not_make_the_batch_due(
    engine: Engine, sandbox, held_not_before: float | None
) -> None:
    # Given a batch of two rows, one of them claimed by a task that then died (a retried row
    # carries a not_before already past)
    ctx = context(engine, sandbox)
    job_id, queued = submit(ctx, 2)
    now = ctx.clock.now()
    with engine.begin() as conn:
        held = conn.execute(select(Message.id).where(Message.job_id == job_id).order_by(Message.id)).scalar()
        not_before = None if held_not_before is None else now + timedelta(seconds=held_not_before)
        conn.execute(
            update(Message)
            .where(Message.id == held)
            .values(state="sending", not_before=not_before, updated_at=now)
        )
    # When the batch's task sends the other row
    report = send_batch(ctx, queued[0])
    # Then it does not come back at once for the held row, nor does the next sweep queue it
    assert report.requests == 1 and report.again_in is None, report
    assert batch_row(engine, queued[0]).state == "waiting"
    ctx.clock.advance(ctx.settings.sweep_seconds)
    assert release(ctx) == []
    # And once the sending timeout has passed, the stale sweep declares the row unknown and the
    # batch is queued once more, to end done; nothing was sent twice
    ctx.clock.advance(ctx.settings.sending_timeout)
    assert expire_stale_sending(engine, ctx.settings, ctx.clock.now()) == 1
    assert release(ctx) == queued
    assert send_batch(ctx, queued[0]).state == "done"
    assert sorted(s for s, _ in states(engine, job_id)) == ["sent", "unknown"] and sends(sandbox) == 1


# Item 4: a time budget per task


class SlowVendorTransport(Transport):
    """Real HTTP to the simulator; each request takes ``seconds`` on the injected clock."""

    def __init__(self, clock: FakeClock, seconds: float):
        super().__init__()
        self.clock, self.seconds = clock, seconds
        self.spans: list[tuple[datetime, datetime]] = []
        #: called while each request is in flight (a sweep running meanwhile)
        self.during: Callable[[], object] = lambda: None

    def send(self, request: httpx.Request, connect_timeout: float, read_timeout: float) -> httpx.Response:
        started = self.clock.now()
        response = super().send(request, connect_timeout, read_timeout)
        self.clock.advance(self.seconds)
        self.during()
        self.spans.append((started, self.clock.now()))
        return response


@pytest.fixture
def smsclick() -> Iterator[tuple[SandboxServer, SmsclickSim]]:
    ledger = Ledger()
    sim = SmsclickSim(ledger, FakeClock(BOGOTA_10AM))
    sim.add_customer("mx-click", APIKEY, credit=10_000)
    server = SandboxServer({"smsclick": sim}).start()
    yield server, sim
    server.stop()


def test_a_task_waiting_for_the_slot_is_not_queued_again_by_the_sweep(engine: Engine, sandbox) -> None:
    # Given a batch queued at T0 whose task starts late, sends one request of two (30 s), then
    # finds the account's slot taken (the vendor's 2 s pause)
    ctx = context(engine, sandbox)
    ctx.transport = SlowVendorTransport(ctx.clock, 30.0)
    recipients = [{"phone": f"+57300{i:07d}", "vars": {"n": str(i)}} for i in range(2)]
    job_id, queued = submit(ctx, 0, text="Hola {n}", recipients=recipients)
    ctx.clock.advance(ctx.settings.requeue_after - 50)
    report = send_batch(ctx, queued[0])
    assert report.requests == 1 and report.again_in is not None
    # Then the task, re-queuing itself, refreshed the batch's enqueued_at
    row = batch_row(engine, queued[0])
    assert (row.state, row.enqueued_at) == ("queued", ctx.clock.now())
    # And past requeue_after from T0 the sweep does not take it for lost
    ctx.clock.advance(25)
    assert release(ctx) == []


def test_a_running_task_is_not_queued_again_by_the_sweep(engine: Engine, smsclick) -> None:
    # Given a batch queued at T0 whose task starts late and sends for its whole budget
    server, sim = smsclick
    clock = FakeClock(BOGOTA_10AM)
    # one request after another (the concurrent sender has its own tests: tests/test_concurrent.py)
    spec = {"vendor": "smsclick", "base_url": server.url("smsclick"), "apikey": APIKEY, "max_in_flight": 1}
    accounts = parse_accounts({"accounts": {"mx-click": spec}}, {})
    ctx = Services(
        engine,
        accounts,
        MemoryLimiter(),
        SlowVendorTransport(clock, 30.0),
        Settings(DATABASE_URL="sqlite://"),
        clock,
    )
    recipients = [{"phone": f"+52552663{i:04d}"} for i in range(20)]
    ingest_job(engine, accounts, {"account": "mx-click", "text": "Hola", "recipients": recipients}, clock.now())
    (batch,) = release(ctx)
    clock.advance(ctx.settings.requeue_after - 60)
    # When beat's sweep runs during each of its requests
    swept: list[int] = []
    ctx.transport.during = lambda: release_due(engine, ctx.settings, clock.now(), lambda b, _p: swept.append(b))
    send_batch(ctx, batch)
    # Then the sweep never queued the batch a second time while its task ran
    assert len(ctx.transport.spans) > 2 and swept == []


def test_a_task_stops_starting_requests_when_its_budget_is_spent(engine: Engine, smsclick) -> None:
    # Given a one-number-a-request vendor that takes 30 s per request (connect + read is 35 s)
    server, sim = smsclick
    clock = FakeClock(BOGOTA_10AM)
    # one request after another (the concurrent sender has its own tests: tests/test_concurrent.py)
    spec = {"vendor": "smsclick", "base_url": server.url("smsclick"), "apikey": APIKEY, "max_in_flight": 1}
    accounts = parse_accounts({"accounts": {"mx-click": spec}}, {})
    transport = SlowVendorTransport(clock, 30.0)
    settings = Settings(DATABASE_URL="sqlite://")
    ctx = Services(engine, accounts, MemoryLimiter(), transport, settings, clock)
    recipients = [{"phone": f"+52552663{i:04d}"} for i in range(20)]
    job = ingest_job(
        engine, accounts, {"account": "mx-click", "text": "Hola", "recipients": recipients}, clock.now()
    )
    (batch,) = release(ctx)
    # When the batch's task runs
    started = clock.now()
    report = send_batch(ctx, batch)
    # Then it started requests only within its budget, ended well before the soft limit,
    # and handed the rest to a follow-up task (queued now, enqueued_at fresh)
    policy = accounts["mx-click"].policy
    assert 0 < report.requests < len(recipients)
    assert all((start - started).total_seconds() < settings.send_budget for start, _ in transport.spans)
    longest = policy.connect_timeout + policy.read_timeout
    assert (transport.spans[-1][0] - started).total_seconds() + longest < settings.soft_time_limit
    assert report.again_in == 0 and report.state == "queued"
    assert batch_row(engine, batch).enqueued_at == clock.now()
    # And the follow-up tasks send the rest, each number once
    for _ in range(len(recipients)):
        if report.again_in is None:
            break
        report = send_batch(ctx, batch)
    assert {s for s, _ in states(engine, job.job_id)} == {"sent"}
    assert len(sim.ledger.of("smsclick", "sendMsg.json")) == len(recipients) and sim.ledger.duplicates() == {}


# Items 4 and 5: an exception after the claim


@pytest.fixture
def soft_limit() -> Iterator[Callable[[float], None]]:
    """Arm Celery's SoftTimeLimitExceeded to fire in this thread after so many seconds, as a worker does."""

    def fire(_signum: int, _frame: object) -> None:
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, fire)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def history(engine: Engine, job_id: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(MessageEvent.from_state, MessageEvent.to_state)
            .join(Message, Message.id == MessageEvent.message_id)
            .where(Message.job_id == job_id)
        )
        return [tuple(r) for r in rows]


def test_the_soft_limit_mid_request_leaves_that_request_unknown(engine: Engine, sandbox, soft_limit) -> None:
    # Given the vendor holds its reply past the task's soft time limit
    ctx = context(engine, sandbox, read_timeout=10.0)
    sandbox.sim.script({"delay": 5.0})
    job_id, queued = submit(ctx, 2)
    # When the soft limit fires inside the HTTP call, the task's exception goes on up
    soft_limit(1.0)
    with pytest.raises(SoftTimeLimitExceeded):
        send_batch(ctx, queued[0])
    # Then the request's rows are unknown (the vendor may have sent them), with their history
    assert [s for s, _ in states(engine, job_id)] == ["unknown", "unknown"]
    assert history(engine, job_id) == [("sending", "unknown")] * 2
    assert sends(sandbox) == 1


def test_the_vendor_pause_holds_after_a_request_that_raised(engine: Engine, sandbox, soft_limit) -> None:
    # Given a request that went out and then raised (the soft limit, mid-reply)
    ctx = context(engine, sandbox, read_timeout=10.0)
    sandbox.sim.script({"delay": 5.0})
    _, queued = submit(ctx, 1)
    soft_limit(1.0)
    with pytest.raises(SoftTimeLimitExceeded):
        send_batch(ctx, queued[0])
    # Then the next request of the account still waits the vendor's pause (2 s for IT Cloud)
    token, wait = ctx.limiter.acquire("co-main", 60)
    assert token is None and wait > 1.0


# Item 9: deadlines in the claim path


def set_deadline(engine: Engine, when: datetime, ids: list[int] | None = None) -> None:
    with engine.begin() as conn:
        statement = update(Message).values(deadline=when)
        if ids is not None:
            statement = statement.where(Message.id.in_(ids))
        conn.execute(statement)


def test_a_message_past_its_deadline_expires_instead_of_being_sent(engine: Engine, sandbox) -> None:
    # Given a batch of three where one message's deadline has passed
    ctx = context(engine, sandbox)
    job_id, queued = submit(ctx, 3)
    with engine.connect() as conn:
        late = conn.execute(select(Message.id, Message.address).where(Message.job_id == job_id)).first()
    set_deadline(engine, ctx.clock.now() - timedelta(seconds=1), [late.id])
    # When the batch is sent
    send_batch(ctx, queued[0])
    # Then that one ends expired with the reason and its history, the others are sent, it is not
    with engine.connect() as conn:
        row = conn.execute(select(Message.state, Message.reason).where(Message.id == late.id)).one()
        events = conn.execute(
            select(MessageEvent.from_state, MessageEvent.to_state, MessageEvent.reason).where(
                MessageEvent.message_id == late.id
            )
        ).all()
    assert row.state == "expired" and row.reason.startswith("expired before it could be sent: ")
    assert [tuple(e) for e in events] == [("pending", "expired", row.reason)]
    assert sorted(s for s, _ in states(engine, job_id)) == ["expired", "sent", "sent"]
    assert late.address not in sandbox.ledger.sends and len(sandbox.ledger.sends) == 2
