"""What VoIP Communications answers about sent messages and replies, page by page.

``sms/summary`` (the sent log) and ``sms/chat`` (one conversation, rows marked ``sms_inout`` IN or
OUT) are form POSTs paged by ``page`` = 0, 1, ... until a page comes back empty, with rows named
``sms_id``, ``sms_msg``, ``sms_status``, ``sms_external``, ``sms_status_date`` (the vendor's public
app; the manual stops at sending).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.vendors import base
from dispatcher.vendors.voipcomms import wire


def build_status(account: base.Account, page: int) -> httpx.Request:
    """One page of the sent log ``sms/summary`` (page 0, 1, ... until a page comes back empty)."""
    form = {"page": str(page)}
    return httpx.Request("POST", wire.url(account, "sms/summary"), data=form, headers=wire.auth(account))


def parse_status(response: httpx.Response) -> list[base.StatusReport]:
    """Delivery reports of one summary page; rows with an undocumented status word are left out."""
    reports = []
    for row in _rows(response, "summary"):
        word = str(row.get("sms_status") or row.get("status") or "").strip().upper()
        vendor_id = row.get("smsid") or row.get("sms_id")
        # Only what we sent has a delivery state; an unknown word is not guessed into one.
        if word not in wire.status_codes or not vendor_id or str(row.get("sms_inout", "")).upper() == "IN":
            continue
        external = row.get("sms_external")
        reports.append(
            base.StatusReport(
                str(vendor_id),
                wire.status_codes[word],
                code=word,
                phone=wire.e164(str(external)) if external else None,
                at=wire.optional(row.get("sms_status_date")),
            )
        )
    return reports


def build_replies(
    account: base.Account, page: int, internal: str | None = None, external: str | None = None
) -> httpx.Request:
    """One page of ``sms/chat``: the conversation between our ``internal`` number and ``external``."""
    form = {}
    if internal:
        form["internal"] = wire.vendor_number(internal)
    if external:
        form["external"] = wire.vendor_number(external)
    form["page"] = str(page)
    return httpx.Request("POST", wire.url(account, "sms/chat"), data=form, headers=wire.auth(account))


def parse_replies(response: httpx.Response, external: str | None = None) -> list[base.Inbound]:
    """The replies (``sms_inout`` IN) of one chat page; ``external`` names the handset if rows do not."""
    replies = []
    for row in _rows(response, "chat"):
        if str(row.get("sms_inout", "")).upper() != "IN":
            continue
        phone = row.get("sms_external") or external
        if not phone or row.get("sms_msg") is None:
            raise VendorRetryable("voipcomms chat row lacks sms_external or sms_msg")
        replies.append(
            base.Inbound(
                wire.e164(str(phone)),
                str(row["sms_msg"]),
                vendor_id=wire.optional(row.get("sms_id")),
                to=wire.optional(row.get("sms_internal")),
                at=wire.optional(row.get("sms_status_date")),
            )
        )
    return replies


def _rows(response: httpx.Response, field: str) -> list[Mapping[str, Any]]:
    """The list ``field`` of a paged reply, or VendorRetryable / VendorAccountError."""
    base.raise_for_status(response)
    body = wire.json_object(response)
    if body.get("error"):
        detail = str(body.get("error_message") or "").strip()[:200]
        raise VendorRetryable(f"voipcomms refused the query: {detail}", "error")
    rows = body.get(field)
    if not isinstance(rows, list):
        raise VendorRetryable(f"voipcomms answered without a {field} list: {base.short_body(response)}")
    return [row for row in rows if isinstance(row, Mapping)]
