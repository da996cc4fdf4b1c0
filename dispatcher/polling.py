"""Beat's polls: delivery reports (DLR) and replies (MO), read the way each vendor declares.

A status poll asks only about messages that can still change: ``sent`` (or ``unknown``) rows sent
within the account's ``status_horizon`` whose last reported state is not final for the vendor.
By ids, it walks them by (sent_at, id) from a durable cursor, so the newest are reached and no id
is asked about forever; by date range, its window starts at the oldest such message; paged, it
reads until every such message was seen. Everything read is stored through ``dispatcher.inbound``:
once, and never backwards.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Select, and_, func, or_, select

from dispatcher import cursors
from dispatcher.config import AccountConfig
from dispatcher.errors import VendorError
from dispatcher.inbound import record_replies, record_statuses
from dispatcher.models import Message, MessageState
from dispatcher.redaction import scrub
from dispatcher.services import Services
from dispatcher.vendors import abilities_of
from dispatcher.vendors.abilities import Abilities, ByDateRange, ByIds, Paged
from dispatcher.vendors.base import StatusReport

log = logging.getLogger("dispatcher.polling")

#: the polls of one account, each with its own interval, cursor and lock
KINDS = (cursors.STATUS, cursors.REPLIES)

#: messages asked about per status poll by ids; the cursor takes the next ones on the next poll
STATUS_BATCH = 1000
#: how far back a first reply poll looks; replies are stored once however often they are read
REPLY_LOOKBACK = timedelta(days=1)
#: a date window reaches this far before what it must cover (vendor dates are to the second,
#: and the vendor's clock is not ours)
MARGIN = timedelta(minutes=15)
#: a request whose fate is unknown may have gone out this long before the row was marked
UNKNOWN_MARGIN = timedelta(hours=1)
#: a date-range status query is split into windows this long
REPORT_SPAN = timedelta(hours=6)
#: sent messages a date-range report did not name, asked about one by one per poll at most
MAX_STRAGGLERS = 20
#: a message is a straggler once it was sent this long ago and no report named it
STRAGGLER_AGE = timedelta(minutes=30)


def poll_statuses(ctx: Services, config: AccountConfig) -> dict[str, int]:
    """Ask the vendor about this account's messages that can still change; return how many moved on."""
    abilities = abilities_of(config.vendor)
    query, now = abilities.status_query, ctx.clock.now()
    try:
        if isinstance(query, ByIds):
            return _by_ids(ctx, config, abilities, query, now)
        if isinstance(query, ByDateRange):
            return _by_dates(ctx, config, abilities, query, now)
        if isinstance(query, Paged):
            return _by_pages(ctx, config, abilities, query, now)
    except VendorError as exc:
        log.warning("%s: status poll failed: %s", config.key, scrub(str(exc), config.account.secrets()))
    return {}


def poll_replies(ctx: Services, config: AccountConfig) -> tuple[int, int]:
    """Read the account's replies from its cursor on; return (new replies, new opt-outs)."""
    query, now = abilities_of(config.vendor).reply_query, ctx.clock.now()
    try:
        if isinstance(query, ByDateRange):
            return _replies_by_dates(ctx, config, query, now)
        # A vendor that pushes these replies is polled only where the account asks to: a reply
        # both pushed and polled could not always be told apart.
        if isinstance(query, Paged) and (not query.pushed or config.account.params.get("poll_replies") == "true"):
            return _replies_by_pages(ctx, config, query, now)
    except VendorError as exc:
        log.warning("%s: reply poll failed: %s", config.key, scrub(str(exc), config.account.secrets()))
    return 0, 0


def poll(ctx: Services, config: AccountConfig, kind: str) -> dict[str, Any]:
    """One poll of one kind (``cursors.STATUS`` or ``cursors.REPLIES``), if its interval has passed."""
    interval = config.policy.status_poll_seconds if kind == cursors.STATUS else config.policy.reply_poll_seconds
    if not cursors.claim_turn(ctx.engine, config.key, kind, ctx.clock.now(), interval):
        return {}  # too early: another beat's tick, or a redelivered task, already ran it
    if kind == cursors.STATUS:
        return {"moved": poll_statuses(ctx, config)}
    new, opted = poll_replies(ctx, config)
    return {"replies": new, "opt_outs": opted}


def poll_account(ctx: Services, config: AccountConfig) -> dict[str, Any]:
    """Both polls for one account, each when its interval has passed since the last."""
    return {**poll(ctx, config, cursors.STATUS), **poll(ctx, config, cursors.REPLIES)}


def _open(config: AccountConfig, abilities: Abilities, now: datetime) -> Select[int, str | None, datetime | None]:
    """Sent rows of the account that can still change: within the horizon, not (settled) final for the vendor."""
    final = sorted(state.value for state in abilities.final)
    return select(Message.id, Message.vendor_id, Message.sent_at).where(
        Message.account == config.key,
        Message.state == MessageState.SENT.value,
        Message.sent_at >= now - timedelta(seconds=config.policy.status_horizon),
        or_(
            Message.report_state.is_(None),
            Message.report_state.not_in(final),
            Message.sent_at > now - abilities.settles_after,
        ),
    )


def _unknown(config: AccountConfig, now: datetime) -> Select[int, str | None, datetime]:
    """Unknown rows of the account young enough for a report to resolve."""
    return select(Message.id, Message.vendor_id, Message.updated_at).where(
        Message.account == config.key,
        Message.state == MessageState.UNKNOWN.value,
        Message.updated_at >= now - timedelta(seconds=config.policy.status_horizon),
    )


def _by_ids(
    ctx: Services, config: AccountConfig, abilities: Abilities, query: ByIds, now: datetime
) -> dict[str, int]:
    after = _decode(cursors.read(ctx.engine, config.key, cursors.STATUS))
    sent = _open(config, abilities, now).where(Message.vendor_id.is_not(None))
    if after is not None:
        at, row_id = after
        sent = sent.where(or_(Message.sent_at > at, and_(Message.sent_at == at, Message.id > row_id)))
    with ctx.engine.connect() as conn:
        rows = conn.execute(sent.order_by(Message.sent_at, Message.id).limit(STATUS_BATCH)).all()
        stored = _unknown(config, now).where(Message.vendor_id.is_not(None)).limit(query.chunk)
        unknown = [row.vendor_id for row in conn.execute(stored)]
    moved = _ask_ids(ctx, config, query, [row.vendor_id for row in rows] + unknown, now)
    # A full batch: the next poll goes on after its last row; else the walk starts over.
    last = rows[-1] if len(rows) == STATUS_BATCH else None
    cursors.write(ctx.engine, config.key, cursors.STATUS, _encode(last), now)
    return moved


def _ask_ids(ctx: Services, config: AccountConfig, query: ByIds, ids: list[str], now: datetime) -> dict[str, int]:
    reports: list[StatusReport] = []
    for start in range(0, len(ids), query.chunk):
        for request in query.build(config.account, ids[start : start + query.chunk]):
            reports += query.parse(_send(ctx, config, request))
    return record_statuses(ctx.engine, config.key, reports, now)


def _by_dates(
    ctx: Services, config: AccountConfig, abilities: Abilities, query: ByDateRange, now: datetime
) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        oldest_sent = conn.execute(select(func.min(_open(config, abilities, now).subquery().c.sent_at))).scalar()
        oldest_unknown = conn.execute(select(func.min(_unknown(config, now).subquery().c.updated_at))).scalar()
    starts = [t - MARGIN for t in [oldest_sent] if t] + [t - UNKNOWN_MARGIN for t in [oldest_unknown] if t]
    if not starts:
        cursors.write(ctx.engine, config.key, cursors.STATUS, None, now)
        return {}
    start = max(min(starts), now - timedelta(seconds=config.policy.status_horizon))
    cursors.write(ctx.engine, config.key, cursors.STATUS, start.isoformat(), now)
    reports: list[StatusReport] = []
    window = start
    while window < now + MARGIN:
        reports += query.parse(_send(ctx, config, query.build(config.account, window, window + REPORT_SPAN)))
        window += REPORT_SPAN
    moved = record_statuses(ctx.engine, config.key, reports, now)
    if abilities.stragglers is not None:
        named = {report.vendor_id for report in reports}
        _merge(moved, _stragglers(ctx, config, abilities, abilities.stragglers, named, now))
    return moved


def _stragglers(
    ctx: Services, config: AccountConfig, abilities: Abilities, query: ByIds, named: set[str], now: datetime
) -> dict[str, int]:
    """Ask one by one about a few old sent messages no report window named."""
    old = _open(config, abilities, now).where(
        Message.vendor_id.is_not(None), Message.sent_at < now - STRAGGLER_AGE
    )
    ids: list[str] = []
    with ctx.engine.connect() as conn:
        for row in conn.execute(old.order_by(Message.sent_at, Message.id).execution_options(yield_per=500)):
            if row.vendor_id not in named:
                ids.append(row.vendor_id)
                if len(ids) == MAX_STRAGGLERS:
                    break
    return _ask_ids(ctx, config, query, ids, now) if ids else {}


def _by_pages(
    ctx: Services, config: AccountConfig, abilities: Abilities, query: Paged, now: datetime
) -> dict[str, int]:
    with ctx.engine.connect() as conn:
        waiting = {row.vendor_id for row in conn.execute(_open(config, abilities, now)) if row.vendor_id}
        unresolved = conn.execute(_unknown(config, now).limit(1)).first() is not None
    if not waiting and not unresolved:
        cursors.write(ctx.engine, config.key, cursors.STATUS, None, now)
        return {}
    first = int(cursors.read(ctx.engine, config.key, cursors.STATUS) or 0)
    reports: list[StatusReport] = []
    resume: int | None = first + query.max_pages
    for page in range(first, first + query.max_pages):
        items = query.parse(_send(ctx, config, query.build(config.account, page)))
        reports += items
        waiting -= {report.vendor_id for report in items}
        if not items or (not waiting and not unresolved):
            resume = None  # the end, or every message that can change was named: start over next time
            break
    moved = record_statuses(ctx.engine, config.key, reports, now)
    cursors.write(ctx.engine, config.key, cursors.STATUS, None if resume is None else str(resume), now)
    return moved


def _replies_by_dates(ctx: Services, config: AccountConfig, query: ByDateRange, now: datetime) -> tuple[int, int]:
    since = _decode_time(cursors.read(ctx.engine, config.key, cursors.REPLIES)) or now - REPLY_LOOKBACK
    replies = query.parse(_send(ctx, config, query.build(config.account, since - MARGIN, now)))
    found = record_replies(ctx.engine, config.key, config.account.country, replies, now, config.replies)
    cursors.write(ctx.engine, config.key, cursors.REPLIES, now.isoformat(), now)
    return found


def _replies_by_pages(ctx: Services, config: AccountConfig, query: Paged, now: datetime) -> tuple[int, int]:
    # Oldest first: new replies land on the last page read, so the next poll starts there.
    # Newest first: start at page 0 and stop at the first page that holds nothing new.
    first = 0 if query.newest_first else int(cursors.read(ctx.engine, config.key, cursors.REPLIES) or 0)
    new = opted = 0
    for page in range(first, first + query.max_pages):
        replies = query.parse(_send(ctx, config, query.build(config.account, page)))
        added, stopped = record_replies(
            ctx.engine, config.key, config.account.country, replies, now, config.replies
        )
        new, opted = new + added, opted + stopped
        if not replies or (query.newest_first and not added):
            break
        if not query.newest_first:
            cursors.write(ctx.engine, config.key, cursors.REPLIES, str(page), now)
    return new, opted


def _send(ctx: Services, config: AccountConfig, request: httpx.Request) -> httpx.Response:
    policy = config.policy
    return ctx.transport.send(request, policy.connect_timeout, policy.read_timeout)


def _merge(into: dict[str, int], more: dict[str, int]) -> None:
    for state, count in more.items():
        into[state] = into.get(state, 0) + count


def _encode(row: Any) -> str | None:
    return None if row is None else f"{row.sent_at.isoformat()}|{row.id}"


def _decode(value: str | None) -> tuple[datetime, int] | None:
    if not value:
        return None
    at, row_id = value.rsplit("|", 1)
    return datetime.fromisoformat(at), int(row_id)


def _decode_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
