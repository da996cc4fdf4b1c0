"""Claim → send → record against the IT Cloud simulator on loopback (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.exc import OperationalError

from dispatcher import exchange
from dispatcher.config import Settings
from dispatcher.jobs import ingest_job
from dispatcher.models import AccountState, Batch, Message, MessageEvent, OptOut
from dispatcher.outcomes import Claimed, record
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import expire_stale_sending, release_due
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from dispatcher.vendors.base import Outcome, Result
from tests.conftest import make_accounts

TOKEN = "s3cr3t-token-xyz"


def context(engine: Engine, sandbox, **policy: object) -> Services:  # type: ignore[no-untyped-def]
    accounts = make_accounts(sandbox.url("itcloud"), **policy)
    return Services(
        engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL="sqlite://"), sandbox.clock
    )


def submit(ctx: Services, count: int = 3, **fields: object) -> tuple[str, list[int]]:
    """Ingest a job and return its id and the batches release_due queued."""
    recipients = [{"phone": f"+57300{i:07d}"} for i in range(count)]
    result = ingest_job(
        ctx.engine,
        ctx.accounts,
        {"account": "co-main", "text": "Hola", "recipients": recipients, **fields},
        ctx.clock.now(),
    )
    queued: list[int] = []
    release_due(ctx.engine, ctx.settings, ctx.clock.now(), lambda batch, _priority: queued.append(batch))
    return result.job_id, queued


def states(engine: Engine, job_id: str) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.state, Message.vendor_id).where(Message.job_id == job_id).order_by(Message.id)
        )
        return [(r.state, r.vendor_id) for r in rows]


def sends(sandbox) -> int:  # type: ignore[no-untyped-def]
    return len(sandbox.ledger.of("itcloud", "/api/sendsms"))


def test_every_recipient_is_sent_once_with_its_acceptance_id(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    job_id, queued = submit(ctx, 3)
    report = send_batch(ctx, queued[0])
    assert (report.requests, report.state) == (1, "done")
    got = states(engine, job_id)
    assert [s for s, _ in got] == ["sent"] * 3
    assert all(vendor_id and int(vendor_id) > 0 for _, vendor_id in got)
    assert sandbox.ledger.duplicates() == {} and sends(sandbox) == 1


def test_a_redelivered_task_sends_nothing_twice(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    _, queued = submit(ctx, 5)
    send_batch(ctx, queued[0])
    again = send_batch(ctx, queued[0])
    assert again.requests == 0 and sends(sandbox) == 1


def test_two_workers_on_one_batch_send_it_once(engine: Engine, sandbox) -> None:
    # Given two workers that got the same batch task at the same moment
    ctx = context(engine, sandbox)
    job_id, queued = submit(ctx, 50)
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(send_batch(ctx, queued[0]))) for _ in range(2)]
    # When both run
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one request went out, every row is sent once
    assert sum(r.requests for r in reports) == 1 and sends(sandbox) == 1
    assert {s for s, _ in states(engine, job_id)} == {"sent"}


def test_outside_the_window_nothing_is_sent_until_it_opens(engine: Engine, sandbox) -> None:
    # Given the job arrives at 21:30 in Bogota
    ctx = context(engine, sandbox)
    sandbox.clock.when = sandbox.clock.when.replace(hour=2, minute=30) + timedelta(days=1)
    job_id, queued = submit(ctx, 3)
    # Then nothing is queued or sent, the rows wait for 08:00
    assert queued == [] and sends(sandbox) == 0
    assert {s for s, _ in states(engine, job_id)} == {"pending"}
    # When the clock reaches 08:00 Bogota (13:00 UTC)
    sandbox.clock.when = sandbox.clock.when.replace(hour=13, minute=0, second=1)
    queued = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda batch, _p: queued.append(batch))
    for batch in queued:
        send_batch(ctx, batch)
    # Then it is sent
    assert {s for s, _ in states(engine, job_id)} == {"sent"} and sends(sandbox) == 1


def test_a_batch_queued_just_before_closing_waits_instead_of_sending(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    job_id, queued = submit(ctx, 2)
    sandbox.clock.when = sandbox.clock.when.replace(hour=2, minute=1) + timedelta(days=1)  # 21:01 Bogota
    report = send_batch(ctx, queued[0])
    assert report.requests == 0 and report.state == "waiting"
    assert {s for s, _ in states(engine, job_id)} == {"pending"}


def run_until_settled(ctx: Services, batch: int, rounds: int = 10) -> None:
    """Run a batch like the task would, moving the fake clock over each short wait."""
    for _ in range(rounds):
        report = send_batch(ctx, batch)
        if report.again_in is None:
            return
        ctx.clock.advance(report.again_in + 0.01)
        ctx.limiter = MemoryLimiter()  # the fake clock moved; let the real pause go too


def test_500_then_maintenance_then_success_is_sent_once(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    sandbox.sim.script({"status": 500}, {"body": "573000000000,-6"})
    job_id, queued = submit(ctx, 1)
    run_until_settled(ctx, queued[0])
    assert [s for s, _ in states(engine, job_id)] == ["sent"]
    assert sends(sandbox) == 3 and sandbox.ledger.duplicates() == {}
    with engine.connect() as conn:
        history = conn.execute(select(MessageEvent.to_state, MessageEvent.code).order_by(MessageEvent.id)).all()
        attempts = conn.execute(select(Message.attempts)).scalar()
    assert [tuple(h) for h in history] == [("pending", "500"), ("pending", "-6"), ("sent", history[-1].code)]
    assert attempts == 2  # maintenance sent nothing: it spent no attempt


def test_retries_stop_at_the_attempt_budget_with_the_reason(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox, max_attempts=2)
    sandbox.sim.script({"status": 503}, {"status": 503}, {"status": 503})
    job_id, queued = submit(ctx, 1)
    run_until_settled(ctx, queued[0])
    with engine.connect() as conn:
        row = conn.execute(select(Message.state, Message.reason)).one()
    assert row.state == "failed" and row.reason.startswith("gave up after 2 attempts: HTTP 503")
    assert sends(sandbox) == 2


def test_a_connect_error_is_retried(engine: Engine, sandbox) -> None:
    # Given the vendor cannot be reached (nothing listens on port 9)
    accounts = make_accounts("http://127.0.0.1:9/itcloud")
    ctx = Services(
        engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL="sqlite://"), sandbox.clock
    )
    job_id, queued = submit(ctx, 1)
    send_batch(ctx, queued[0])
    with engine.connect() as conn:
        row = conn.execute(select(Message.state, Message.attempts, Message.reason)).one()
    # (the request never left: no attempt spent)
    assert (row.state, row.attempts) == ("pending", 0) and "not sent: ConnectError" in row.reason
    # When it comes back
    ctx.accounts = make_accounts(sandbox.url("itcloud"))
    sandbox.clock.advance(1)
    run_until_settled(ctx, queued[0])
    # Then the message is sent
    assert [s for s, _ in states(engine, job_id)] == ["sent"] and sends(sandbox) == 1


def test_a_read_timeout_leaves_unknown_and_is_never_resent(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox, read_timeout=0.3)
    sandbox.sim.script({"delay": 1.0})
    job_id, queued = submit(ctx, 2)
    run_until_settled(ctx, queued[0])
    sandbox.clock.advance(3600)
    release_due(engine, ctx.settings, ctx.clock.now(), lambda batch, _p: send_batch(ctx, batch))
    assert [s for s, _ in states(engine, job_id)] == ["unknown", "unknown"]
    assert sends(sandbox) == 1


def test_no_credit_pauses_the_account_and_fails_nothing(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    sandbox.sim.customers["ops@example.com"].credit = 0
    job_id, queued = submit(ctx, 2)
    send_batch(ctx, queued[0])
    assert {s for s, _ in states(engine, job_id)} == {"pending"}
    with engine.connect() as conn:
        pause = conn.execute(select(AccountState)).one()
        attempts = conn.execute(select(Message.attempts)).scalars().all()
    assert pause.paused_until > ctx.clock.now() and "no balance" in pause.pause_reason
    assert attempts == [0, 0]
    # While paused the sweep queues nothing of that account
    ctx.clock.advance(60)
    assert release_due(engine, ctx.settings, ctx.clock.now(), lambda *_: None) == 0


def test_the_vendor_window_answer_waits_for_the_next_opening(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    sandbox.sim.script({"body": "573000000000,-2"})
    job_id, queued = submit(ctx, 1)
    send_batch(ctx, queued[0])
    with engine.connect() as conn:
        row = conn.execute(select(Message.state, Message.not_before, Message.attempts)).one()
    assert row.state == "pending" and row.attempts == 0 and row.not_before > ctx.clock.now()


def test_rows_left_sending_by_a_dead_worker_become_unknown(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    job_id, _ = submit(ctx, 2)
    with engine.begin() as conn:  # a worker claimed them, then died
        conn.execute(update(Message).values(state="sending", updated_at=ctx.clock.now()))
    ctx.clock.advance(ctx.settings.sending_timeout + 1)
    assert expire_stale_sending(engine, ctx.settings, ctx.clock.now()) == 2
    assert [s for s, _ in states(engine, job_id)] == ["unknown", "unknown"]


def test_no_secret_in_logs_or_stored_reasons(engine: Engine, sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ctx = context(engine, sandbox)
    sandbox.sim.script({"status": 500, "body": f"boom: token={TOKEN}"})
    job_id, queued = submit(ctx, 1)
    send_batch(ctx, queued[0])
    with engine.connect() as conn:
        reasons = " ".join(r or "" for r in conn.execute(select(Message.reason)).scalars())
        reasons += " ".join(r or "" for r in conn.execute(select(MessageEvent.reason)).scalars())
    assert "boom" in reasons
    assert TOKEN not in reasons and TOKEN not in caplog.text


def test_a_lost_task_is_queued_again_by_the_sweep(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    _, queued = submit(ctx, 1)  # queued, but the broker lost the message
    again: list[int] = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda b, _p: again.append(b))
    assert again == []  # not yet: it may still be on its way
    ctx.clock.advance(ctx.settings.requeue_after + 1)
    release_due(engine, ctx.settings, ctx.clock.now(), lambda b, _p: again.append(b))
    assert again == queued
    with engine.connect() as conn:
        assert conn.execute(select(Batch.state)).scalar() == "queued"


def history(engine: Engine) -> list[tuple[str | None, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(MessageEvent.from_state, MessageEvent.to_state, MessageEvent.code))
        return [tuple(r) for r in rows.all()]


def test_a_late_reply_after_expiry_leaves_the_row_unknown_and_its_history_true(engine: Engine, sandbox) -> None:
    # Given a row a worker claimed, then the sweep declared unknown because no reply came in time
    ctx = context(engine, sandbox)
    submit(ctx, 1)
    with engine.begin() as conn:
        row = conn.execute(select(Message.id, Message.address, Message.created_at)).one()
        conn.execute(update(Message).values(state="sending", attempts=1, updated_at=ctx.clock.now()))
    ctx.clock.advance(ctx.settings.sending_timeout + 1)
    assert expire_stale_sending(engine, ctx.settings, ctx.clock.now()) == 1
    # When the vendor's reply arrives late and is recorded
    claimed = {row.id: Claimed(row.id, row.address, 1, row.created_at)}
    late = [Result(row.id, Outcome.ACCEPTED, vendor_id="12102253", code="12102253")]
    with engine.begin() as conn:
        counts = record(conn, ctx.accounts["co-main"], claimed, late, ctx.clock.now())
    # Then the row stays unknown and its history holds no sending -> sent
    assert [s for s, _ in states(engine, _job_of(engine))] == ["unknown"]
    assert history(engine) == [("sending", "unknown", None)]
    assert counts == {}


def test_a_late_refusal_after_expiry_pauses_no_account_and_opts_no_phone_out(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox)
    submit(ctx, 2)
    with engine.begin() as conn:
        rows = conn.execute(select(Message.id, Message.address, Message.created_at).order_by(Message.id)).all()
        conn.execute(update(Message).values(state="sending", attempts=1, updated_at=ctx.clock.now()))
    ctx.clock.advance(ctx.settings.sending_timeout + 1)
    expire_stale_sending(engine, ctx.settings, ctx.clock.now())
    claimed = {r.id: Claimed(r.id, r.address, 1, r.created_at) for r in rows}
    late = [
        Result(rows[0].id, Outcome.PAUSE_ACCOUNT, code="-3", reason="no balance"),
        Result(rows[1].id, Outcome.REJECTED, code="-8", reason="blocklisted", opt_out=True),
    ]
    with engine.begin() as conn:
        record(conn, ctx.accounts["co-main"], claimed, late, ctx.clock.now())
    with engine.connect() as conn:
        assert conn.execute(select(AccountState)).all() == []
        assert conn.execute(select(OptOut)).all() == []


def _job_of(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(select(Message.job_id)).scalar_one()


def test_a_blocklisted_number_is_opted_out_and_refused_by_the_next_job(engine: Engine, sandbox) -> None:
    # Given the vendor's block list holds one of the numbers (the person answered SALIR)
    ctx = context(engine, sandbox)
    sandbox.sim.customers["ops@example.com"].blocked.add("573000000001")
    job_id, queued = submit(ctx, 3)
    # When the job is sent
    send_batch(ctx, queued[0])
    # Then that number failed with -8 and is on the account's opt-out list
    with engine.connect() as conn:
        got = conn.execute(select(Message.address, Message.state, Message.vendor_code).order_by(Message.id)).all()
        opted = conn.execute(select(OptOut.account, OptOut.phone)).all()
    assert [tuple(r) for r in got][1] == ("+573000000001", "failed", "-8")
    assert [tuple(r) for r in opted] == [("co-main", "+573000000001")]
    # And the next job refuses it at ingest, before any request
    job_id, _ = submit(ctx, 3)
    with engine.connect() as conn:
        again = conn.execute(
            select(Message.address, Message.state, Message.reason)
            .where(Message.job_id == job_id)
            .order_by(Message.id)
        ).all()
    assert [(r.address, r.state) for r in again if r.state == "rejected"] == [("+573000000001", "rejected")]


def test_too_many_numbers_goes_back_pending_without_spending_an_attempt(engine: Engine, sandbox) -> None:
    # Given the vendor answers -7 (over 5000 numbers) to a request
    ctx = context(engine, sandbox, max_attempts=1)
    sandbox.sim.script({"body": "-7"})
    job_id, queued = submit(ctx, 3)
    send_batch(ctx, queued[0])
    # Then no number failed: they wait, no attempt spent
    with engine.connect() as conn:
        rows = conn.execute(select(Message.state, Message.attempts, Message.vendor_code)).all()
    assert [tuple(r) for r in rows] == [("pending", 0, "-7")] * 3
    # And the next requests send them (the batch was split in two)
    ctx.clock.advance(ctx.accounts["co-main"].policy.retry_max + 1)
    released: list[int] = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda batch, _priority: released.append(batch))
    for batch in sorted({queued[0], *released}):
        run_until_settled(ctx, batch)
    assert {s for s, _ in states(engine, job_id)} == {"sent"} and sandbox.ledger.duplicates() == {}


def test_too_many_numbers_are_sent_again_in_smaller_requests(engine: Engine, sandbox) -> None:
    # Given the vendor answers -7 (too many numbers in one request) to a request of 8 numbers
    ctx = context(engine, sandbox)
    sandbox.sim.script({"body": "-7"})
    job_id, queued = submit(ctx, 8)
    send_batch(ctx, queued[0])
    # Then half of them move to a batch of their own: the next requests carry 4 numbers each
    with engine.connect() as conn:
        sizes = conn.execute(
            select(func.count()).select_from(Message).group_by(Message.batch_id).order_by(Message.batch_id)
        ).scalars()
        assert list(sizes) == [4, 4]
    ctx.clock.advance(ctx.accounts["co-main"].policy.retry_max + 1)
    ctx.limiter = MemoryLimiter()
    released: list[int] = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda batch, _priority: released.append(batch))
    for batch in sorted({queued[0], *released}):
        run_until_settled(ctx, batch)
    requests = sandbox.ledger.of("itcloud", "/api/sendsms")
    assert [len(r.params()["GSM"].split(",")) for r in requests] == [8, 4, 4]
    # And each number is sent once
    assert {s for s, _ in states(engine, job_id)} == {"sent"} and sandbox.ledger.duplicates() == {}


def test_maintenance_waits_without_spending_the_attempt_budget(engine: Engine, sandbox) -> None:
    # Given IT Cloud is in maintenance (-6: nothing sent or charged) for 100 s, and a budget of 2 tries
    ctx = context(engine, sandbox, max_attempts=2, retry_base=5.0, retry_max=600.0)
    sandbox.sim.faults.maintenance = True
    job_id, queued = submit(ctx, 3)
    started = ctx.clock.now()
    tries = 0
    while (ctx.clock.now() - started).total_seconds() < 100:
        report = send_batch(ctx, queued[0])
        tries += report.requests
        with engine.connect() as conn:
            next_due = conn.execute(select(func.min(Message.not_before))).scalar()
        if next_due is None:  # nothing left waiting
            break
        ctx.clock.when = max(next_due, ctx.clock.now()) + timedelta(seconds=0.01)
        ctx.limiter = MemoryLimiter()
    # Then more tries than the budget went out, and still nothing failed or spent an attempt
    with engine.connect() as conn:
        rows = conn.execute(select(Message.state, Message.attempts)).all()
    assert tries > 2 and [tuple(r) for r in rows] == [("pending", 0)] * 3
    # When maintenance ends, every number is sent once
    sandbox.sim.faults.maintenance = False
    run_until_settled(ctx, queued[0])
    assert {s for s, _ in states(engine, job_id)} == {"sent"} and sandbox.ledger.duplicates() == {}


def test_maintenance_past_the_message_age_limit_expires_it(engine: Engine, sandbox) -> None:
    # Given messages that may wait at most 60 s, and a vendor in maintenance for longer
    ctx = context(engine, sandbox, max_age=60.0)
    sandbox.sim.faults.maintenance = True
    job_id, queued = submit(ctx, 1)
    send_batch(ctx, queued[0])
    ctx.clock.advance(61)
    ctx.limiter = MemoryLimiter()
    with engine.begin() as conn:  # its backoff is over
        conn.execute(update(Message).values(not_before=None))
    send_batch(ctx, queued[0])
    # Then it ends expired with the vendor's reason, not pending forever
    with engine.connect() as conn:
        row = conn.execute(select(Message.state, Message.reason, Message.attempts)).one()
    assert row.state == "expired" and "-6" in row.reason and row.attempts == 0


def test_a_deferral_past_the_message_deadline_expires_it(engine: Engine, sandbox) -> None:
    # Given a claimed row whose deadline has passed, long before the account's max_age
    ctx = context(engine, sandbox)
    submit(ctx, 1)
    with engine.begin() as conn:
        row = conn.execute(select(Message.id, Message.address, Message.created_at)).one()
        deadline = ctx.clock.now() - timedelta(seconds=1)
        conn.execute(
            update(Message).values(state="sending", attempts=1, deadline=deadline, updated_at=ctx.clock.now())
        )
    claimed = {row.id: Claimed(row.id, row.address, 1, row.created_at)}
    # When the vendor answers 'maintenance, nothing sent'
    deferred = [Result(row.id, Outcome.DEFER, code="-6", reason="itcloud -6: maintenance")]
    with engine.begin() as conn:
        record(conn, ctx.accounts["co-main"], claimed, deferred, ctx.clock.now())
    # Then it expires instead of waiting again, its try not counted
    with engine.connect() as conn:
        got = conn.execute(select(Message.state, Message.attempts, Message.reason)).one()
    assert (got.state, got.attempts) == ("expired", 0) and "-6" in got.reason


def test_rows_deferred_together_go_out_again_in_one_request(engine: Engine, sandbox) -> None:
    # Given a request of 20 numbers answered with maintenance
    ctx = context(engine, sandbox)
    sandbox.sim.faults.maintenance = True
    job_id, queued = submit(ctx, 20)
    send_batch(ctx, queued[0])
    # Then they all wait until the same moment
    with engine.connect() as conn:
        assert conn.execute(select(func.count(func.distinct(Message.not_before)))).scalar() == 1
    # And when maintenance is over, one request sends them all
    sandbox.sim.faults.maintenance = False
    run_until_settled(ctx, queued[0])
    assert {s for s, _ in states(engine, job_id)} == {"sent"} and sends(sandbox) == 2


def test_a_429_waits_without_spending_an_attempt(engine: Engine, sandbox) -> None:
    # Given the vendor answers 'too many requests': it did nothing
    ctx = context(engine, sandbox, max_attempts=1)
    sandbox.sim.script({"status": 429})
    job_id, queued = submit(ctx, 2)
    send_batch(ctx, queued[0])
    # Then nothing failed or spent an attempt
    with engine.connect() as conn:
        rows = conn.execute(select(Message.state, Message.attempts)).all()
    assert [tuple(r) for r in rows] == [("pending", 0)] * 2
    # And later it is sent once
    run_until_settled(ctx, queued[0])
    assert {s for s, _ in states(engine, job_id)} == {"sent"} and sends(sandbox) == 2


class DatabaseAway:
    """Fails the first ``times`` statements that store a vendor's answer, as a database that went away."""

    def __init__(self, engine: Engine, times: int):
        self.engine, self.left = engine, times
        event.listen(engine, "before_cursor_execute", self)

    def __call__(self, conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if self.left and statement.lstrip().upper().startswith("UPDATE MESSAGES SET UPDATED_AT"):
            self.left -= 1
            raise OperationalError(statement[:40], None, ConnectionError("server closed the connection"))

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self)


def test_an_answer_is_stored_once_the_database_is_back(engine: Engine, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given the database goes away just as the vendor's answer is to be stored, twice in a row
    monkeypatch.setattr(exchange, "RECORD_RETRY_FIRST", 0.01)
    ctx = context(engine, sandbox)
    job_id, queued = submit(ctx, 3)
    away = DatabaseAway(engine, times=2)
    # When the batch is sent
    send_batch(ctx, queued[0])
    away.remove()
    # Then the answer the vendor gave is stored (not left unknown), from the one request
    assert [s for s, _ in states(engine, job_id)] == ["sent"] * 3
    assert sends(sandbox) == 1 and sandbox.ledger.duplicates() == {}
