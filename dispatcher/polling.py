"""Beat's polls: delivery reports (DLR) and replies (MO) from the vendors that answer queries.

IT Cloud has no queries (its replies are pushed); Ogangi pushes its reports; voipcomms pushes its
replies. Everything read is stored through ``dispatcher.inbound``: once, and never backwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from dispatcher.config import AccountConfig
from dispatcher.errors import VendorError
from dispatcher.inbound import record_replies, record_statuses
from dispatcher.models import Message, MessageState
from dispatcher.redaction import scrub
from dispatcher.sending import SendContext
from dispatcher.vendors import adapter_for
from dispatcher.vendors.base import Inbound, StatusReport

log = logging.getLogger("dispatcher.polling")

#: sent messages asked about per poll of one account
STATUS_BATCH = 500
#: pages read per poll where the vendor pages its answers
MAX_PAGES = 20
#: how far back reply polls look; replies are stored once however often they are read
REPLY_LOOKBACK = timedelta(days=1)


def poll_statuses(ctx: SendContext, config: AccountConfig) -> dict[str, int]:
    """Ask the vendor about this account's sent messages; return how many moved on."""
    vendor = config.vendor
    if vendor not in ("smsclouds", "smsclick", "voipcomms"):
        return {}
    reports: list[StatusReport] = []
    try:
        if vendor == "voipcomms":
            reports = _paged(ctx, config, lambda page: adapter_for(vendor).build_status(config.account, page))
        else:
            ids = _sent_ids(ctx, config.key)
            reports = [r for request in _status_requests(config, ids) for r in _ask(ctx, config, request)]
    except VendorError as exc:
        log.warning("%s: status poll failed: %s", config.key, scrub(str(exc), config.account.secrets()))
    return record_statuses(ctx.engine, config.key, reports, ctx.clock.now())


def poll_replies(ctx: SendContext, config: AccountConfig) -> tuple[int, int]:
    """Read the account's recent replies; return (new replies, new opt-outs)."""
    adapter, now = adapter_for(config.vendor), ctx.clock.now()
    replies: list[Inbound] = []
    try:
        if config.vendor == "smsclouds":
            since = now - REPLY_LOOKBACK
            request = adapter.build_replies(config.account, type=1, **{"from": since, "to": now})
            replies = _ask(ctx, config, request, adapter.parse_replies)
        elif config.vendor == "smsclick":
            request = adapter.build_replies(config.account, now - REPLY_LOOKBACK, now + timedelta(hours=1))
            replies = _ask(ctx, config, request, adapter.parse_replies)
        elif config.vendor == "ogangi" and config.account.params.get("poll_replies") == "true":
            # Ogangi pushes replies without a date or id, so a reply both pushed and polled could
            # not be told apart: poll only accounts that get no pushes (poll_replies = true).
            replies = _paged(ctx, config, lambda page: adapter.build_replies(config.account, page), "replies")
    except VendorError as exc:
        log.warning("%s: reply poll failed: %s", config.key, scrub(str(exc), config.account.secrets()))
    return record_replies(ctx.engine, config.key, config.account.country, replies, now)


def _sent_ids(ctx: SendContext, account: str) -> list[str]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(Message.vendor_id)
            .where(
                Message.account == account,
                Message.state == MessageState.SENT.value,
                Message.vendor_id.is_not(None),
            )
            .order_by(Message.sent_at)
            .limit(STATUS_BATCH)
        )
        return [str(vendor_id) for vendor_id in rows.scalars()]


def _status_requests(config: AccountConfig, ids: Sequence[str]) -> Iterator[httpx.Request]:
    adapter = adapter_for(config.vendor)
    if config.vendor == "smsclick":
        # getMsg takes one id per request: a poll asks about the oldest few.
        yield from adapter.build_status_requests(config.account, ids[:50])
        return
    for start in range(0, len(ids), 100):
        yield adapter.build_status(config.account, ids[start : start + 100])


def _ask(ctx: SendContext, config: AccountConfig, request: httpx.Request, parse: Any = None) -> list[Any]:
    policy = config.policy
    response = ctx.transport.send(request, policy.connect_timeout, policy.read_timeout)
    return (parse or adapter_for(config.vendor).parse_status)(response)


def _paged(ctx: SendContext, config: AccountConfig, build: Any, kind: str = "status") -> list[Any]:
    adapter, found = adapter_for(config.vendor), []
    parse = adapter.parse_status if kind == "status" else adapter.parse_replies
    for page in range(MAX_PAGES):
        items = _ask(ctx, config, build(page), parse)
        if not items:
            break
        found += items
    return found


def poll_account(ctx: SendContext, config: AccountConfig) -> dict[str, Any]:
    """Both polls for one account."""
    moved = poll_statuses(ctx, config)
    new, opted = poll_replies(ctx, config)
    return {"moved": moved, "replies": new, "opt_outs": opted}
