"""Claim → send → record, for one batch.

A batch is sent one vendor request at a time: take the account's slot (the Redis pause shared
by every worker), claim exactly the rows of that request (``pending → sending``, conditional, so
a redelivered task claims nothing), send, parse, and store every recipient's outcome. A worker
that dies between the claim and the record leaves rows ``sending``; the release sweep declares
them ``unknown`` (they are never resent blindly). An exception after the claim (the soft time
limit mid-request among them) declares that request's rows ``unknown`` at once.

A task starts requests only within ``send_budget`` and hands the rest to a follow-up task, so it
ends well inside its time limit; rows past their ``deadline`` end ``expired`` instead of going out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from dispatcher import account_state, metrics, operator, release
from dispatcher.config import AccountConfig
from dispatcher.db import is_postgres
from dispatcher.errors import VendorError
from dispatcher.logs import bind_ids
from dispatcher.models import Batch, BatchState, Job, Message, MessageState
from dispatcher.outcomes import Claimed, record
from dispatcher.redaction import scrub
from dispatcher.services import Services
from dispatcher.vendors import adapter_for
from dispatcher.vendors import base as vendor_base

log = logging.getLogger("dispatcher.sending")

#: seconds before the first new try to store a vendor's answer while the database is away
RECORD_RETRY_FIRST = 0.5
#: seconds spent at most trying to store one answer (then its rows are left to become unknown);
#: with the send budget (180 s) and the longest request (35 s) it stays inside the soft limit (240 s)
RECORD_RETRY_SECONDS = 20.0


@dataclass
class SendReport:
    """What happened to a batch, and whether the task should run again soon."""

    batch_id: int
    account: str | None = None
    requests: int = 0
    #: run this batch again after so many seconds (a slot wait or a short backoff)
    again_in: float | None = None
    state: str = BatchState.DONE.value


@dataclass
class _Flight:
    """Whether this round started a vendor request: the vendor's pause follows from that alone."""

    started: bool = False


def send_batch(ctx: Services, batch_id: int) -> SendReport:
    """Send the due recipients of a batch, one vendor request at a time, within the task's budget."""
    report = SendReport(batch_id)
    started = ctx.clock.now()
    with ctx.engine.begin() as conn:
        batch = conn.execute(select(Batch).where(Batch.id == batch_id)).first()
        job = conn.execute(select(Job.options).where(Job.id == batch.job_id)).first() if batch else None
        if batch is not None and batch.state == BatchState.QUEUED:
            # A batch whose task runs is not lost: the sweep must not queue it a second time.
            release.mark_queued(conn, batch_id, started)
    if batch is None or batch.state == BatchState.DONE:
        return report
    report.account = batch.account
    bind_ids(job=batch.job_id, batch=batch_id)  # every line of this send names its job and batch
    config = ctx.accounts.get(batch.account)
    if config is None:
        log.error("batch %s names account %r, which is not configured; it waits", batch_id, batch.account)
        return _settle(ctx, batch_id, report, hold=ctx.settings.requeue_after)
    options = (job.options if job else None) or {}
    while True:
        now = ctx.clock.now()
        with ctx.engine.begin() as conn:
            until = account_state.paused_until(conn, config.key, now)
            due = [] if until else _due_rows(conn, config, batch_id, now)
        if until or not due:
            return _settle(ctx, batch_id, report, hold=None)
        if report.requests and not _budget_left(ctx, config, started, now):
            # Whatever is left goes to a follow-up task, before the soft time limit can cut a request.
            return _settle(ctx, batch_id, report, hold=0.0)
        adapter = adapter_for(config.vendor)
        try:
            first = adapter.build_send(config.account, vendor_base.Outgoing(due, options))[0]
        except ValueError as exc:
            # A row the adapter cannot carry (it passed ingest under other rules): fail it, not the batch.
            _refuse(ctx, config, adapter, due, options, str(exc))
            continue
        limits = adapter.limits
        token = None
        if limits.min_interval > 0:
            lease = limits.min_interval + config.policy.connect_timeout + config.policy.read_timeout + 5
            token, wait = ctx.limiter.acquire(config.key, lease)
            if token is None:
                metrics.count_slot_wait(config.key, config.vendor)
                # While a request is in flight the lease is long; look again after one pause.
                report.again_in = min(wait, limits.min_interval) + random.uniform(0, 0.1)
                report.state = BatchState.QUEUED.value
                with ctx.engine.begin() as conn:
                    release.mark_queued(conn, batch_id, now)
                return report
        flight = _Flight()
        try:
            report.requests += _send_one(ctx, config, adapter, first, options, flight)
        finally:
            if token is not None:
                # The pause runs from the end of our request, whether it returned or raised.
                ctx.limiter.release(config.key, token, limits.min_interval if flight.started else 0)


def _budget_left(ctx: Services, config: AccountConfig, started: datetime, now: datetime) -> bool:
    """Whether one more request may start: inside the send budget, and able to end before the soft limit."""
    elapsed = (now - started).total_seconds()
    longest = config.policy.connect_timeout + config.policy.read_timeout
    return elapsed < ctx.settings.send_budget and elapsed + longest < ctx.settings.soft_time_limit


def _due_rows(
    conn: Connection, config: AccountConfig, batch_id: int, now: datetime
) -> list[vendor_base.Recipient]:
    """Pending rows of the batch whose time has come; late rows expire, closed-window rows move on."""
    if operator.cancel_stragglers(conn, batch_id, now):
        return []  # its job was canceled: rows back from a request in flight are canceled too
    rows = conn.execute(
        select(Message.id, Message.address, Message.text, Message.vars, Message.deadline)
        .where(
            Message.batch_id == batch_id,
            Message.state == MessageState.PENDING.value,
            Message.not_before.is_(None) | (Message.not_before <= now) | (Message.deadline <= now),
        )
        .order_by(Message.id)
    ).all()
    overdue = {row.id for row in rows if row.deadline is not None and row.deadline <= now}
    if overdue:
        release.expire(conn, now, Message.id.in_(overdue))
        rows = [row for row in rows if row.id not in overdue]
    window = config.policy.window
    due, waiting = [], []
    for row in rows:
        opening = window.next_opening(now, row.address)
        if opening > now:
            waiting.append({"b_id": row.id, "b_not_before": opening})
        else:
            due.append(vendor_base.Recipient(row.id, row.address, row.text or "", row.vars or {}))
    if waiting:
        conn.execute(
            update(Message)
            .where(Message.id == bindparam("b_id"), Message.state == MessageState.PENDING.value)
            .values(not_before=bindparam("b_not_before"), updated_at=now),
            waiting,
        )
    return due


def _send_one(
    ctx: Services,
    config: AccountConfig,
    adapter: vendor_base.Adapter,
    planned: vendor_base.SendRequest,
    options: Mapping[str, Any],
    flight: _Flight,
) -> int:
    """Claim the rows of one request, send it, record the outcomes; return requests sent."""
    now = ctx.clock.now()
    with ctx.engine.begin() as conn:
        claimed = _claim(conn, [r.message_id for r in planned.recipients], now)
    if not claimed:
        return 0
    try:
        recipients = [r for r in planned.recipients if r.message_id in claimed]
        sent = 0
        for request in adapter.build_send(config.account, vendor_base.Outgoing(recipients, options)):
            flight.started = True
            results, retry_after = _exchange(ctx, config, adapter, request)
            sent += 1
            counts = _record_answer(ctx, config, claimed, results, retry_after)
            log.info(
                "sent request",
                extra={
                    "account": config.key,
                    "recipients": len(request.recipients),
                    "outcomes": counts,
                    "messages": [r.message_id for r in request.recipients],
                },
            )
        return sent
    except BaseException as exc:
        # Whatever broke after the claim (the soft time limit mid-request, a bug, the database),
        # the vendor may have the request: its rows are unknown, never resent blindly.
        _abandon(ctx, config, list(claimed), exc)
        raise


def _abandon(ctx: Services, config: AccountConfig, ids: list[int], exc: BaseException) -> None:
    """Claimed rows still 'sending' become 'unknown' at once; the stale sweep does it if this fails."""
    reason = f"the task stopped mid-request ({type(exc).__name__}): the vendor may have it (not resent)"
    try:
        with ctx.engine.begin() as conn:
            which = Message.id.in_(ids)
            release.transition(conn, which, MessageState.SENDING, MessageState.UNKNOWN, reason, ctx.clock.now())
    except Exception:  # noqa: BLE001 - the original exception is the one to raise
        log.exception(
            "could not mark %d rows unknown; the stale sweep will", len(ids), extra={"account": config.key}
        )


def _record_answer(
    ctx: Services,
    config: AccountConfig,
    claimed: dict[int, Claimed],
    results: list[vendor_base.Result],
    retry_after: float | None,
) -> dict[str, int]:
    """Store a vendor's answer, trying again for a while if the database is away.

    The answer is known and the request is done: storing it later beats declaring its rows
    unknown. ``record`` is guarded (``state = 'sending'``), so a second try changes nothing twice.
    """
    delay, waited = RECORD_RETRY_FIRST, 0.0
    while True:
        try:
            with ctx.engine.begin() as conn:
                return record(conn, config, claimed, results, ctx.clock.now(), retry_after)
        except (OperationalError, InterfaceError) as exc:
            if waited + delay > RECORD_RETRY_SECONDS:
                raise
            log.warning(
                "could not store a vendor's answer (%s); trying again in %.1f s",
                type(exc).__name__,
                delay,
                extra={"account": config.key},
            )
            time.sleep(delay)  # a real wait for the database, not the dispatcher's clock
            waited, delay = waited + delay, min(delay * 2, 8.0)


def _refuse(
    ctx: Services,
    config: AccountConfig,
    adapter: vendor_base.Adapter,
    due: Sequence[vendor_base.Recipient],
    options: Mapping[str, Any],
    fallback: str,
) -> None:
    """Fail, without a request, the due rows the adapter refuses (all of them if it names none)."""
    refused = {r.message_id: adapter.check_recipient(r, options) for r in due}
    if not any(refused.values()):
        refused = dict.fromkeys(refused, fallback)
    now = ctx.clock.now()
    with ctx.engine.begin() as conn:
        claimed = _claim(conn, [i for i, why in refused.items() if why], now)
        results = [
            vendor_base.Result(i, vendor_base.Outcome.REJECTED, reason=f"not sent: {refused[i]}") for i in claimed
        ]
        record(conn, config, claimed, results, now)


def _claim(conn: Connection, ids: Sequence[int], now: datetime) -> dict[int, Claimed]:
    """pending → sending for these ids; returns only the rows this call won."""
    candidates = select(Message.id).where(Message.id.in_(ids), Message.state == MessageState.PENDING.value)
    if is_postgres(conn.engine):
        candidates = candidates.with_for_update(skip_locked=True)
    rows = conn.execute(
        update(Message)
        .where(Message.id.in_(candidates.scalar_subquery()), Message.state == MessageState.PENDING.value)
        .values(state=MessageState.SENDING.value, attempts=Message.attempts + 1, updated_at=now)
        .returning(Message.id, Message.address, Message.attempts, Message.created_at)
    ).all()
    return {r.id: Claimed(r.id, r.address, r.attempts, r.created_at) for r in rows}


def _exchange(
    ctx: Services, config: AccountConfig, adapter: vendor_base.Adapter, request: vendor_base.SendRequest
) -> tuple[list[vendor_base.Result], float | None]:
    """Run one request; every failure becomes an outcome for each of its recipients."""
    policy = config.policy
    secrets = config.account.secrets()
    timer = metrics.RequestTimer(config.key, config.vendor)
    try:
        response = ctx.transport.send(request.request, policy.connect_timeout, policy.read_timeout)
        results = adapter.parse_send(config.account, request, response)
    except VendorError as exc:
        # The error decides what its failure means for each recipient.
        outcome = vendor_base.Outcome(exc.outcome)
        timer.done(outcome.value)
        reason = scrub(str(exc), secrets)
        log.warning("vendor request failed: %s", reason, extra={"account": config.key})
        results = [
            vendor_base.Result(r.message_id, outcome, code=exc.code, reason=reason) for r in request.recipients
        ]
        return results, exc.retry_after
    timer.done("ok")
    answered = {r.message_id for r in results}
    results = [replace(r, reason=scrub(r.reason, secrets)) for r in results]
    for r in request.recipients:
        if r.message_id not in answered:
            results.append(
                vendor_base.Result(r.message_id, vendor_base.Outcome.UNKNOWN, reason="the reply did not cover it")
            )
    return results, None


def _settle(ctx: Services, batch_id: int, report: SendReport, hold: float | None) -> SendReport:
    """Mark the batch done, or waiting until its next pending row is due (queued if that is soon)."""
    report.state, report.again_in = release.settle(
        ctx.engine, ctx.settings, batch_id, report.account or "", ctx.clock.now(), hold
    )
    return report
