"""One vendor request: claim exactly its rows, send it, read the answer, record every recipient's outcome.

The batch loop (``dispatcher.sending``) decides when a request may start (the account's slot, the
task's budget, the rows due); this module runs it. The claim (``pending → sending``) is
conditional, so a redelivered task claims nothing. An exception after the claim (the soft time
limit mid-request among them) declares that request's rows ``unknown`` at once: the vendor may
have it, so it is never resent blindly. A vendor's answer that the database cannot take at once is
stored again for a while rather than lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

import httpx
from sqlalchemy import ARRAY, BigInteger, Connection, any_, bindparam, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from dispatcher import metrics, release
from dispatcher.config import AccountConfig
from dispatcher.db import is_postgres, transaction
from dispatcher.errors import VendorError
from dispatcher.models import AccountState, Message, MessageState
from dispatcher.outcomes import Claimed, record
from dispatcher.redaction import scrub
from dispatcher.services import Services
from dispatcher.vendors import base as vendor_base

# The send's lines keep the one logger name they have always had: log filters and alerts use it.
log = logging.getLogger("dispatcher.sending")

#: seconds before the first new try to store a vendor's answer while the database is away
RECORD_RETRY_FIRST = 0.5
#: seconds spent at most trying to store one answer (then its rows are left to become unknown);
#: with the send budget (180 s) and the longest request (35 s) it stays inside the soft limit (240 s)
RECORD_RETRY_SECONDS = 20.0


@dataclass
class Flight:
    """What one round did: whether a vendor request started (the vendor's pause follows from that
    alone), and whether it left rows of the batch unsettled (not claimed, a closed window, back
    to pending), so the batch loop reads the batch again before its next request."""

    started: bool = False
    unsettled: bool = False


def send_one(
    ctx: Services,
    config: AccountConfig,
    adapter: vendor_base.Adapter,
    planned: vendor_base.SendRequest,
    options: Mapping[str, Any],
    flight: Flight,
) -> int:
    """Claim the rows of one planned request, send it, record the outcomes; return requests sent."""
    now = ctx.clock.now()
    wanted = planned.recipients
    window = config.policy.window
    if any(opening > now for opening in window.next_openings(now, [r.address for r in wanted])):
        # The window closed since the batch was read: reading it again moves those rows on.
        flight.unsettled = True
        return 0
    ids = [r.message_id for r in wanted]
    claimed = transaction(ctx.engine, lambda conn: claim(conn, ids, now, config.key))
    if len(claimed) < len(wanted):
        flight.unsettled = True
    if not claimed:
        return 0
    try:
        if len(claimed) == len(wanted):
            requests: Sequence[vendor_base.SendRequest] = [planned]
        else:
            # Some rows went elsewhere (another task, a cancel, a deadline): send exactly the rows won.
            mine = [r for r in wanted if r.message_id in claimed]
            requests = adapter.build_send(config.account, vendor_base.Outgoing(mine, options))
        sent = 0
        for request in requests:
            flight.started = True
            results, retry_after = _send_request(ctx, config, adapter, request)
            sent += 1
            counts = _record_answer(ctx, config, claimed, results, retry_after)
            if sum(counts.values()) < len(results) or MessageState.PENDING.value in counts:
                flight.unsettled = True
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
    which = Message.id.in_(ids)
    unknown = partial(release.transition, which=which, old=MessageState.SENDING, new=MessageState.UNKNOWN)
    try:
        transaction(ctx.engine, partial(unknown, reason=reason, now=ctx.clock.now()))
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
            return transaction(
                ctx.engine, partial(_record, config, claimed, results, ctx.clock.now(), retry_after)
            )
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


def _record(
    config: AccountConfig,
    claimed: dict[int, Claimed],
    results: list[vendor_base.Result],
    now: datetime,
    retry_after: float | None,
    conn: Connection,
) -> dict[str, int]:
    return record(conn, config, claimed, results, now, retry_after)


def refuse(
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

    def reject(conn: Connection) -> None:
        claimed = claim(conn, [i for i, why in refused.items() if why], now)
        results = [
            vendor_base.Result(i, vendor_base.Outcome.REJECTED, reason=f"not sent: {refused[i]}") for i in claimed
        ]
        record(conn, config, claimed, results, now)

    transaction(ctx.engine, reject)


def claim(conn: Connection, ids: Sequence[int], now: datetime, account: str | None = None) -> dict[int, Claimed]:
    """pending → sending for these ids; returns only the rows this call won.

    A row past its deadline is not claimed (the batch loop expires it). With ``account``, nothing
    is claimed while that account is paused. On PostgreSQL the rows are picked by primary key
    (``id = ANY(:ids)``, one array parameter) and locked with SKIP LOCKED in a CTE joined to the
    update, a plan that stays an index lookup whatever the table's statistics say.
    """
    if not ids:
        return {}
    guards = [
        Message.state == MessageState.PENDING.value,
        Message.deadline.is_(None) | (Message.deadline > now),
    ]
    if account is not None:
        paused = select(AccountState.account).where(
            AccountState.account == account, AccountState.paused_until > now
        )
        guards.append(~paused.exists())
    returned = (Message.id, Message.address, Message.attempts, Message.created_at)
    values = {"state": MessageState.SENDING.value, "attempts": Message.attempts + 1, "updated_at": now}
    if is_postgres(conn.engine):
        by_id = Message.id == any_(bindparam("ids", list(ids), type_=ARRAY(BigInteger)))
        picked = select(Message.id).where(by_id, *guards).with_for_update(skip_locked=True).cte("picked")
        statement = update(Message).where(by_id, Message.id == picked.c.id)
    else:
        statement = update(Message).where(Message.id.in_(ids), *guards)
    rows = conn.execute(statement.values(**values).returning(*returned)).all()
    return {r.id: Claimed(r.id, r.address, r.attempts, r.created_at) for r in rows}


def _send_request(
    ctx: Services, config: AccountConfig, adapter: vendor_base.Adapter, request: vendor_base.SendRequest
) -> tuple[list[vendor_base.Result], float | None]:
    """Run one request; every failure becomes an outcome for each of its recipients."""
    policy = config.policy
    timer = metrics.RequestTimer(config.key, config.vendor)
    try:
        response: httpx.Response | VendorError = ctx.transport.send(
            request.request, policy.connect_timeout, policy.read_timeout
        )
    except VendorError as exc:
        response = exc
    return read_reply(config, adapter, request, response, timer)


def read_reply(
    config: AccountConfig,
    adapter: vendor_base.Adapter,
    request: vendor_base.SendRequest,
    response: httpx.Response | VendorError,
    timer: metrics.RequestTimer,
) -> tuple[list[vendor_base.Result], float | None]:
    """Each recipient's result from the vendor's response, or from the transport's error instead of one."""
    secrets = config.account.secrets()
    try:
        if isinstance(response, VendorError):
            raise response
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
