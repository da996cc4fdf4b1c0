"""Replies (MO) read from Ogangi: ``tools/getMOMessages`` page by page, and ``fireMessage``, which
injects a reply as if the handset had sent it (e.g. from a web form).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.vendors import base
from dispatcher.vendors.ogangi import signing, wire

#: filters of getMOMessages' inline search string
MO_FILTERS = ("carrier", "to", "from", "keyword", "order")


def build_replies(
    account: base.Account, page: int, per_page: int = 100, filters: Mapping[str, str | Sequence[str]] | None = None
) -> httpx.Request:
    """One page of received messages (``tools/getMOMessages``), narrowed by the inline search string."""
    values = [str(int(page)), str(int(per_page)), search_string(filters or {})]
    return signing.signed_get(account, "tools/getMOMessages", values)


def search_string(filters: Mapping[str, str | Sequence[str]]) -> str:
    """``name=value&...``, several values by commas, URL-encoded; no filter reads ``order=asc``."""
    parts = []
    for name, value in filters.items():
        if name not in MO_FILTERS:
            raise ValueError(f"getMOMessages has no filter {name!r}")
        values = [value] if isinstance(value, str) else list(value)
        if name == "order" and any(v.lower() not in ("asc", "desc") for v in values):
            raise ValueError(f"order must be asc or desc, not {value!r}")
        values = [v.lower() for v in values] if name == "order" else values
        # Encoded like Java's URLEncoder (the manual writes ^OGANGI.* as %5EOGANGI.*).
        parts.append(f"{name}=" + ",".join(quote(v, safe="*") for v in values))
    # An empty path segment is not documented; a plain ascending order keeps pages stable.
    return "&".join(parts) or "order=asc"


def parse_replies(response: httpx.Response) -> list[base.Inbound]:
    """The replies (MO) of one getMOMessages page."""
    listing = wire.checked(response).find("result/MOMessageList")
    if listing is None:
        raise VendorRetryable("ogangi getMOMessages answered without a MOMessageList")
    replies = []
    for row in listing.iter("MOMessage"):
        phone, text = wire.text_of(row, "from"), row.findtext("text")
        if not phone or text is None:
            raise VendorRetryable("ogangi MOMessage lacks from or text")
        # The example's 'from' is the handset (the field table says otherwise; the example wins).
        keyword = wire.text_of(row, "keyword") or None
        at, to = wire.text_of(row, "sendDate") or None, wire.text_of(row, "to") or None
        replies.append(base.Inbound(wire.e164(phone), text, to=to, at=at, keyword=keyword))
    return replies


def build_fire(account: base.Account, phone: str, text: str) -> httpx.Request:
    """Inject a reply (MO) as if the handset had sent it (``fireMessage``), e.g. from a web form."""
    return signing.signed_get(account, "fireMessage", [wire.digits(phone), signing.b64(text)])


def parse_fire(response: httpx.Response) -> base.Inbound:
    """The MO Ogangi took in, as it echoes it."""
    mo = wire.checked(response).find("result/mo")
    if mo is None or not wire.text_of(mo, "mobileNumber") or mo.findtext("text") is None:
        raise VendorRetryable("ogangi fireMessage answered without the mo it took")
    return base.Inbound(wire.e164(wire.text_of(mo, "mobileNumber")), mo.findtext("text") or "")
