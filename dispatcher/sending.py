"""Claim → send → record, for one batch.

A batch is sent one vendor request at a time. Each pass reads the batch's due rows once and has
the adapter build all their requests once; then, for each request in turn: take the account's
slot (the Redis pause shared by every worker), claim exactly the rows of that request
(``pending → sending``, conditional, so a redelivered task claims nothing; nothing while the
account is paused), send, parse, and store every recipient's outcome. That one request is
``dispatcher.exchange``, this module is the loop around it. The batch is read again only when a
request leaves rows unsettled (a window that closed, rows another task took, rows back to
pending). A worker that dies between the claim and the record leaves rows ``sending``; the
release sweep declares them ``unknown`` (they are never resent blindly). An exception after the
claim (the soft time limit mid-request among them) declares that request's rows ``unknown`` at once.

A task starts requests only within ``send_budget`` and hands the rest to a follow-up task, so it
ends well inside its time limit; rows past their ``deadline`` end ``expired`` instead of going out.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from dispatcher import account_state, concurrent, exchange, metrics, operator, release
from dispatcher.config import AccountConfig
from dispatcher.db import transaction
from dispatcher.logs import bind_ids
from dispatcher.models import Batch, BatchState, Job, Message, MessageState
from dispatcher.services import Services
from dispatcher.vendors import adapter_for
from dispatcher.vendors import base as vendor_base

log = logging.getLogger("dispatcher.sending")


@dataclass
class SendReport:
    """What happened to a batch, and whether the task should run again soon."""

    batch_id: int
    account: str | None = None
    #: the batch's lane: "otp" overtakes "bulk" at the account's slot
    priority: str | None = None
    requests: int = 0
    #: run this batch again after so many seconds (a slot wait or a short backoff)
    again_in: float | None = None
    state: str = BatchState.DONE.value


def send_batch(ctx: Services, batch_id: int) -> SendReport:
    """Send the due recipients of a batch, one vendor request at a time, within the task's budget."""
    report = SendReport(batch_id)
    started = ctx.clock.now()
    batch, job = transaction(ctx.engine, partial(_start, batch_id, started))
    if batch is None or batch.state == BatchState.DONE:
        return report
    report.account = batch.account
    report.priority = batch.priority
    bind_ids(job=batch.job_id, batch=batch_id)  # every line of this send names its job and batch
    config = ctx.accounts.get(batch.account)
    if config is None:
        log.error("batch %s names account %r, which is not configured; it waits", batch_id, batch.account)
        return _settle(ctx, batch_id, report, hold=ctx.settings.requeue_after)
    options = (job.options if job else None) or {}
    if concurrent.applies(config):
        return concurrent.send_batch(ctx, config, batch_id, options, report, started)
    adapter = adapter_for(config.vendor)
    while True:
        now = ctx.clock.now()
        until, due = transaction(ctx.engine, partial(_pass_rows, config, batch_id, now, job.text if job else None))
        if until or not due:
            return _settle(ctx, batch_id, report, hold=None)
        try:
            # The pass's requests are built once and sent in turn; the rows are read again only
            # when a request leaves some of them unsettled (see ``exchange.Flight``).
            planned = adapter.build_send(config.account, vendor_base.Outgoing(due, options))
        except ValueError as exc:
            # A row the adapter cannot carry (it passed ingest under other rules): fail it, not the batch.
            exchange.refuse(ctx, config, adapter, due, options, str(exc))
            continue
        for request in planned:
            if report.requests and not _budget_left(ctx, config, started, ctx.clock.now()):
                # Whatever is left goes to a follow-up task, before the soft time limit can cut a request.
                return _settle(ctx, batch_id, report, hold=0.0)
            flight = exchange.Flight()
            if not _send_in_slot(ctx, config, adapter, batch_id, report, request, options, flight):
                return report
            if flight.unsettled:
                break  # read the batch again: a pause, a window, a retry or another task changed it


def _send_in_slot(
    ctx: Services,
    config: AccountConfig,
    adapter: vendor_base.Adapter,
    batch_id: int,
    report: SendReport,
    request: vendor_base.SendRequest,
    options: Mapping[str, Any],
    flight: exchange.Flight,
) -> bool:
    """Send one planned request within the account's slot; False when the slot is taken (the task comes back)."""
    limits = adapter.limits
    token = None
    if limits.min_interval > 0:
        lease = limits.min_interval + config.policy.connect_timeout + config.policy.read_timeout + 5
        # An OTP batch that finds the slot taken keeps bulk off it: it takes the next free slot.
        urgent = report.priority == "otp"
        token, wait = ctx.limiter.acquire(config.key, lease, urgent=urgent, pause=limits.min_interval)
        if token is None:
            metrics.count_slot_wait(config.key, config.vendor)
            # While a request is in flight the lease is long; look again after one pause.
            report.again_in = min(wait, limits.min_interval) + random.uniform(0, 0.1)
            report.state = BatchState.QUEUED.value
            transaction(ctx.engine, partial(release.mark_queued, batch_id=batch_id, now=ctx.clock.now()))
            return False
    try:
        report.requests += exchange.send_one(ctx, config, adapter, request, options, flight)
    finally:
        if token is not None:
            # The pause runs from the end of our request, whether it returned or raised.
            ctx.limiter.release(config.key, token, limits.min_interval if flight.started else 0)
    return True


def _start(batch_id: int, started: datetime, conn: Connection) -> tuple[Any, Any]:
    """The batch and its job's options; a queued batch is marked in flight."""
    batch = conn.execute(select(Batch).where(Batch.id == batch_id)).first()
    job = conn.execute(select(Job.options, Job.text).where(Job.id == batch.job_id)).first() if batch else None
    if batch is not None and batch.state == BatchState.QUEUED:
        # A batch whose task runs is not lost: the sweep must not queue it a second time.
        release.mark_queued(conn, batch_id, started)
    return batch, job


def _pass_rows(
    config: AccountConfig, batch_id: int, now: datetime, template: str | None, conn: Connection
) -> tuple[datetime | None, list[vendor_base.Recipient]]:
    """Until when the account is paused, else the batch's due rows (each knowing the job's template)."""
    until = account_state.paused_until(conn, config.key, now)
    return until, [] if until else _due_rows(conn, config, batch_id, now, template)


def _budget_left(ctx: Services, config: AccountConfig, started: datetime, now: datetime) -> bool:
    """Whether one more request may start: inside the send budget, and able to end before the soft limit."""
    elapsed = (now - started).total_seconds()
    longest = config.policy.connect_timeout + config.policy.read_timeout
    return elapsed < ctx.settings.send_budget and elapsed + longest < ctx.settings.soft_time_limit


def _due_rows(
    conn: Connection, config: AccountConfig, batch_id: int, now: datetime, template: str | None = None
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
    for row, opening in zip(rows, window.next_openings(now, [row.address for row in rows]), strict=True):
        if opening > now:
            waiting.append({"b_id": row.id, "b_not_before": opening})
        else:
            due.append(vendor_base.Recipient(row.id, row.address, row.text or "", row.vars or {}, template))
    if waiting:
        conn.execute(
            update(Message)
            .where(Message.id == bindparam("b_id"), Message.state == MessageState.PENDING.value)
            .values(not_before=bindparam("b_not_before"), updated_at=now),
            waiting,
        )
    return due


def _settle(ctx: Services, batch_id: int, report: SendReport, hold: float | None) -> SendReport:
    """Mark the batch done, or waiting until its next pending row is due (queued if that is soon)."""
    report.state, report.again_in = release.settle(
        ctx.engine, ctx.settings, batch_id, report.account or "", ctx.clock.now(), hold
    )
    return report
