"""Beat's sweep: messages nobody will claim expire at their deadline; two sweeps queue a batch once."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine, event, select

from dispatcher import release
from dispatcher.config import Settings
from dispatcher.db import make_engine
from dispatcher.jobs import ingest_job
from dispatcher.models import Batch, Message, MessageEvent
from dispatcher.release import release_due
from dispatcher.sending import send_batch
from tests.test_send_loop import set_deadline
from tests.test_sending import context, sends, submit

PREFIX = "expired before it could be sent: "


def expired(engine: Engine, job_id: str) -> list[tuple[str, str | None, list[tuple[str, str]]]]:
    """Each message's state and reason, with its pending→expired history."""
    with engine.connect() as conn:
        rows = conn.execute(select(Message.id, Message.state, Message.reason).where(Message.job_id == job_id))
        found = []
        for row in rows.all():
            events = conn.execute(
                select(MessageEvent.from_state, MessageEvent.to_state).where(MessageEvent.message_id == row.id)
            ).all()
            found.append((row.state, row.reason, [tuple(e) for e in events if e.to_state == "expired"]))
        return found


def test_messages_of_a_paused_account_expire_at_their_deadline(engine: Engine, sandbox) -> None:
    # Given an account paused for no credit, its two messages waiting, due to expire in a minute
    ctx = context(engine, sandbox)
    sandbox.sim.customers["ops@example.com"].credit = 0
    job_id, queued = submit(ctx, 2)
    send_batch(ctx, queued[0])
    set_deadline(engine, ctx.clock.now() + timedelta(seconds=60))
    assert release.expire_overdue(engine, ctx.clock.now(), ctx.accounts) == 0
    # When the sweep runs past the deadline
    ctx.clock.advance(61)
    assert release.expire_overdue(engine, ctx.clock.now(), ctx.accounts) == 2
    # Then both are expired, saying the account was paused and why, with their history
    for state, reason, history in expired(engine, job_id):
        assert state == "expired" and reason.startswith(PREFIX + "the account is paused") and "balance" in reason
        assert history == [("pending", "expired")]
    assert sends(sandbox) == 1  # only the request that found no credit


def test_messages_waiting_for_a_closed_window_expire_and_are_never_sent(engine: Engine, sandbox) -> None:
    # Given a job at 21:30 in Bogota whose messages must go before 23:00
    ctx = context(engine, sandbox)
    sandbox.clock.when = sandbox.clock.when.replace(hour=2, minute=30) + timedelta(days=1)
    job_id, queued = submit(ctx, 3)
    assert queued == []
    set_deadline(engine, ctx.clock.now() + timedelta(minutes=90))
    # When the sweep runs after the deadline, then again when the window opens
    ctx.clock.advance(91 * 60)
    assert release.expire_overdue(engine, ctx.clock.now(), ctx.accounts) == 3
    sandbox.clock.when = sandbox.clock.when.replace(hour=13, minute=0, second=1)
    opened: list[int] = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda b, _p: opened.append(b))
    for batch in opened:
        send_batch(ctx, batch)
    # Then they are expired for the window, and nothing was sent
    for state, reason, history in expired(engine, job_id):
        assert state == "expired" and reason == PREFIX + "its sending window or send time had not come"
        assert history == [("pending", "expired")]
    assert sends(sandbox) == 0


def test_messages_of_an_account_no_longer_configured_expire(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    job_id, _ = submit(ctx, 2)
    set_deadline(engine, ctx.clock.now() + timedelta(seconds=10))
    ctx.clock.advance(11)
    assert release.expire_overdue(engine, ctx.clock.now(), {}) == 2
    for state, reason, _history in expired(engine, job_id):
        assert state == "expired" and reason == PREFIX + "the account 'co-main' is not configured"


def test_the_sweep_expires_a_bounded_number_per_run_and_leaves_others(engine: Engine, sandbox) -> None:
    # Given five overdue messages, one not yet due, one without a deadline (NULL: no deadline)
    ctx = context(engine, sandbox)
    job_id, _ = submit(ctx, 7)
    with engine.connect() as conn:
        ids = conn.execute(select(Message.id).where(Message.job_id == job_id).order_by(Message.id)).scalars().all()
    now = ctx.clock.now()
    set_deadline(engine, now - timedelta(seconds=1), ids[:5])
    set_deadline(engine, now + timedelta(seconds=1), ids[5:6])
    # When sweeps run with room for two each
    runs = [release.expire_overdue(engine, now, ctx.accounts, limit=2) for _ in range(4)]
    # Then five expire over three runs, the other two stay pending
    assert runs == [2, 2, 1, 0]
    with engine.connect() as conn:
        left = conn.execute(select(Message.id).where(Message.state == "pending")).scalars().all()
    assert sorted(left) == ids[5:]


def test_two_sweeps_at_once_queue_each_batch_exactly_once(pg_url: str, pg_engine: Engine, sandbox) -> None:
    # Given three due batches on PostgreSQL, and two sweeps, each with its own connection, that
    # both read the due batches before either marks one queued
    ctx = context(pg_engine, sandbox)
    job = {"account": "co-main", "text": "Hola", "recipients": ["+573001234567"]}
    for _ in range(3):
        ingest_job(pg_engine, ctx.accounts, job, ctx.clock.now())
    with pg_engine.connect() as conn:
        batches = sorted(conn.execute(select(Batch.id)).scalars())
    assert len(batches) == 3
    both_read = threading.Barrier(2, timeout=20)
    engines = [make_engine(pg_url) for _ in range(2)]
    seen = threading.local()

    def meet(_conn, _cursor, statement: str, *_: object) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE BATCHES") and not getattr(seen, "met", False):
            seen.met = True
            both_read.wait()

    for eng in engines:
        event.listen(eng, "before_cursor_execute", meet)
    queued: list[int] = []
    lock = threading.Lock()

    def enqueue(batch: int, _priority: str) -> None:
        with lock:
            queued.append(batch)

    errors: list[BaseException] = []

    def sweep(eng: Engine) -> None:
        try:
            release_due(eng, ctx.settings, ctx.clock.now(), enqueue)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(eng,)) for eng in engines]
    # When both run at once
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for eng in engines:
        eng.dispose()
    # Then each batch was queued exactly once
    assert errors == []
    assert sorted(queued) == batches


def test_an_otp_batch_is_queued_while_bulk_batches_fill_the_accounts_room(engine: Engine, sandbox) -> None:
    # Given an account whose broker room (one batch) is taken by a bulk campaign of three batches
    ctx = replace(context(engine, sandbox), settings=Settings(DATABASE_URL="sqlite://", MAX_QUEUED_BATCHES=1))
    _, bulk = submit(ctx, 3000)
    assert len(bulk) == 1
    # When an OTP job is stored and the sweep runs
    ingest_job(
        engine,
        ctx.accounts,
        {"account": "co-main", "text": "Su codigo es 4821", "recipients": ["+573009999999"], "priority": "otp"},
        ctx.clock.now(),
    )
    queued: list[tuple[int, str]] = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda batch, priority: queued.append((batch, priority)))
    # Then the OTP batch goes to the broker at once, and no second bulk batch does
    assert [priority for _, priority in queued] == ["otp"]
