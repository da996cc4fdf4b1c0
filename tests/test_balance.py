"""A paused account resumes when its balance check passes (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from dispatcher.balance import resume_paused
from dispatcher.models import AccountState, Message
from dispatcher.release import release_due
from dispatcher.sending import send_batch
from tests.test_sending import context, run_until_settled, sends, submit


def paused(engine: Engine) -> AccountState | None:
    with engine.connect() as conn:
        return conn.execute(select(AccountState)).first()


def test_no_credit_pauses_then_a_passing_balance_check_resumes(engine: Engine, sandbox) -> None:
    # Given an account that ran out of credit mid-job
    ctx = context(engine, sandbox, balance_url=sandbox.url("itcloud") + "/query.php")
    sandbox.sim.customers["ops@example.com"].credit = 0
    job_id, queued = submit(ctx, 3)
    send_batch(ctx, queued[0])
    assert paused(engine).paused_until is not None
    # When the balance check runs while there is still no credit, the pause holds and says why
    assert resume_paused(ctx, ctx.clock.now()) == []
    assert "no credit left (balance 0)" in paused(engine).pause_reason
    # When credit is added and the check runs again
    sandbox.sim.customers["ops@example.com"].credit = 100
    assert resume_paused(ctx, ctx.clock.now()) == ["co-main"]
    assert paused(engine).paused_until is None
    # Then the waiting rows go out at their next release, none of them failed
    ctx.clock.advance(ctx.accounts["co-main"].policy.pause_seconds + 1)
    again: list[int] = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda batch, _p: again.append(batch))
    for batch in again:
        run_until_settled(ctx, batch)
    with engine.connect() as conn:
        assert set(conn.execute(select(Message.state).where(Message.job_id == job_id)).scalars()) == {"sent"}
    assert sends(sandbox) == 2


def test_a_failing_balance_check_keeps_the_pause_without_leaking_the_token(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox, balance_url=sandbox.url("itcloud") + "/query.php")
    sandbox.sim.customers["ops@example.com"].credit = 0
    _, queued = submit(ctx, 1)
    send_batch(ctx, queued[0])
    sandbox.sim.script({"status": 502, "body": "bad gateway for s3cr3t-token-xyz"})
    assert resume_paused(ctx, ctx.clock.now()) == []
    reason = paused(engine).pause_reason
    assert "balance check failed: HTTP 502" in reason and "s3cr3t-token-xyz" not in reason


def test_a_resumed_account_sends_its_waiting_messages_at_once(engine: Engine, sandbox) -> None:
    # Given an account paused for no credit, its messages waiting for the pause to end
    ctx = context(engine, sandbox, balance_url=sandbox.url("itcloud") + "/query.php")
    sandbox.sim.customers["ops@example.com"].credit = 0
    job_id, queued = submit(ctx, 3)
    send_batch(ctx, queued[0])
    pause_end = paused(engine).paused_until
    # When credit is added and the balance check resumes it, long before the pause would end
    sandbox.sim.customers["ops@example.com"].credit = 100
    ctx.clock.advance(60)
    assert resume_paused(ctx, ctx.clock.now()) == ["co-main"]
    assert ctx.clock.now() < pause_end
    # Then the sweep at that same moment releases its batch, and the messages go out
    again: list[int] = []
    release_due(engine, ctx.settings, ctx.clock.now(), lambda batch, _p: again.append(batch))
    assert again == queued
    for batch in again:
        run_until_settled(ctx, batch)
    with engine.connect() as conn:
        assert set(conn.execute(select(Message.state).where(Message.job_id == job_id)).scalars()) == {"sent"}
    assert sends(sandbox) == 2
