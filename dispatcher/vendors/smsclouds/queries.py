"""What smsclouds answers about sent messages and the account: statuses, replies (MO), credit.

- POST ``/api/v1/status`` with ``message_ids`` (and/or ``campaign_ids``): ``data.messages``.
- POST ``/api/v1/response`` by type: 1 a date range, 2 message ids, 3 a cellphone, 4 a campaign.
- GET ``/api/v1/user``: the account, with ``data.credit``.

Phones in these answers are the vendor's national digits: its replies name no country.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.vendors import base
from dispatcher.vendors.smsclouds import wire

#: reply query type -> the filters it takes, the required one first
REPLY_TYPES = {1: ("from", "to"), 2: ("message_id",), 3: ("cellphone",), 4: ("campaign_id",)}
#: how a date filter of the reply query is written
_REPLY_DATES = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
# Dates in queries are the vendor's wall time (Mexico City).
_ZONE = ZoneInfo("America/Mexico_City")


def build_status(
    account: base.Account, vendor_ids: Sequence[str], campaign_ids: Sequence[str] = ()
) -> httpx.Request:
    """POST /api/v1/status for these message ids (and whole campaigns)."""
    payload = {}
    if vendor_ids:
        payload["message_ids"] = wire.ids("message_ids", vendor_ids)
    if campaign_ids:
        payload["campaign_ids"] = wire.ids("campaign_ids", campaign_ids)
    if not vendor_ids and not campaign_ids:
        raise ValueError("a status query needs message ids or campaign ids")
    return wire.post(account, "/api/v1/status", payload)


def status_requests(account: base.Account, vendor_ids: Sequence[str]) -> list[httpx.Request]:
    """The status query of these ids, as the poller asks it: one request."""
    return [build_status(account, vendor_ids)]


def parse_status(response: httpx.Response) -> list[base.StatusReport]:
    """One report per ``data.messages`` item; an undocumented status stays queued, kept raw."""
    return [
        base.StatusReport(
            str(item["message_id"]),
            wire.status_codes.get(str(item.get("status")), base.DeliveryState.QUEUED),
            code=str(item.get("status")),
            phone=str(item["cellphone"]) if item.get("cellphone") is not None else None,
        )
        for item in wire.read_items(response, "messages", ("message_id", "status"))
    ]


def build_replies(account: base.Account, **filters: Any) -> httpx.Request:
    """POST /api/v1/response: type 1 from/to, 2 message_id list, 3 cellphone, 4 campaign_id."""
    kind = filters.pop("type", None)
    if kind is None:
        kind = next((t for t, names in REPLY_TYPES.items() if names[0] in filters), None)
    if isinstance(kind, bool) or kind not in REPLY_TYPES:
        raise ValueError(f"type must be 1, 2, 3 or 4 (or implied by a filter), not {kind!r}")
    extra = set(filters) - set(REPLY_TYPES[kind])
    if extra:
        raise ValueError(f"filter {sorted(extra)[0]!r} does not go with type {kind}")
    required = REPLY_TYPES[kind][0]
    if filters.get(required) in (None, "", [], ()):
        raise ValueError(f"type {kind} needs {required!r}")
    payload = {"type": kind, **{name: _REPLY_FILTERS[name](value) for name, value in filters.items()}}
    return wire.post(account, "/api/v1/response", payload)


def replies_between(account: base.Account, start: datetime, end: datetime) -> httpx.Request:
    """The replies received between two aware times (type 1), written in the vendor's zone."""
    return build_replies(account, type=1, **{"from": start.astimezone(_ZONE), "to": end.astimezone(_ZONE)})


_REPLY_FILTERS: dict[str, Callable[[Any], Any]] = {
    "from": lambda v: wire.vendor_date("from", v, *_REPLY_DATES),
    "to": lambda v: wire.vendor_date("to", v, *_REPLY_DATES),
    "message_id": lambda v: wire.ids("message_id", v),
    "cellphone": lambda v: wire.whole_number("cellphone", wire.national(v)),
    "campaign_id": lambda v: wire.whole_number("campaign_id", v),
}


def parse_replies(response: httpx.Response) -> list[base.Inbound]:
    """One Inbound per ``data.responses`` item; ``vendor_id`` is the id of our message answered."""
    return [
        base.Inbound(
            str(i["cellphone"]), str(i["response"]), vendor_id=str(i["message_id"]), at=i.get("received_at")
        )
        for i in wire.read_items(response, "responses", ("cellphone", "response", "message_id"))
    ]


def build_balance(account: base.Account) -> httpx.Request:
    """GET /api/v1/user: the account and its credit."""
    return httpx.Request("GET", wire.url(account, "/api/v1/user"), headers=wire.headers(account))


def parse_balance(response: httpx.Response) -> base.Balance:
    """Read ``data.credit``."""
    credit = wire.read_data(response).get("credit")
    if isinstance(credit, bool) or not isinstance(credit, (int, float)):
        raise VendorRetryable(f"smsclouds answered no data.credit: {base.short_body(response)}")
    return base.Balance(float(credit))
