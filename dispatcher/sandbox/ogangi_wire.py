"""Ogangi's wire format: signed method paths, the MO search string, base64 values, XML envelopes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import unquote
from xml.sax.saxutils import escape

from dispatcher.sandbox.core import SimResponse
from dispatcher.sandbox.skeleton import xml_reply

#: method -> its values after the instance id, in the manual's order ("64": base64 in the path)
METHODS = {
    "tools/sendSMS": ("carrier", "from", "mobile64", "text64"),
    "sendMT": ("from", "carrier", "mobile", "text64"),  # then an optional {flags}
    "tools/sendSMSPinMobileNumberConfirm": ("carrier", "from", "mobile", "text64", "length"),
    "fireMessage": ("mobile", "text64"),
    "tools/getMOMessages": ("page", "per_page", "parameters"),
}


#: the envelope's <description> per <status>; the ERROR text is the vendor's
DESCRIPTIONS = {
    "OK": "Completed",
    "BAD_SIGNATURE": "Invalid signature, access denied",
    "ERROR": "Internal error, please report this to support@messangi.com",
}


MO_FILTERS = ("carrier", "to", "from", "keyword", "order")


_B64 = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def sign(message: str, private_key: str) -> str:
    """HMAC-SHA256 of the signed path values under the private key, lowercase hex."""
    return hmac.new(private_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def parse_call(path: str) -> tuple[str, list[str], str, str] | None:
    """(method, values from the instance id on, public key, signature), or None for no such method."""
    rest = path.removeprefix("/rest/api/")
    if rest == path:
        return None
    parts = rest.split("/")
    cut = 2 if parts[0] == "tools" else 1
    method, segments = "/".join(parts[:cut]), parts[cut:]
    names = METHODS.get(method)
    if names is None:
        return None
    counts = {len(names) + 3} | ({len(names) + 4} if method == "sendMT" else set())
    if len(segments) not in counts:
        return None
    return method, segments[:-2], segments[-2], segments[-1]


def mo_filters(search: str) -> dict[str, list[str]] | None:
    """The MO inline search string as {filter: values}, or None when it is not one."""
    filters: dict[str, list[str]] = {}
    for part in filter(None, search.split("&")):
        name, sep, value = part.partition("=")
        if not sep or name not in MO_FILTERS:
            return None
        filters[name] = [unquote(v) for v in value.split(",")]
    try:
        for pattern in filters.get("keyword", []):
            re.compile(pattern)
    except re.error:
        return None
    return filters


def from_b64(value: str) -> str | None:
    """URL-safe base64 with its padding, decoded as UTF-8; None when it is not that."""
    value = unquote(value)
    if len(value) % 4 or not _B64.match(value):
        return None
    try:
        return base64.urlsafe_b64decode(value).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def element(tag: str, fields: dict[str, str]) -> str:
    """An XML element holding one child per field, spaced as the manual prints them."""
    inner = " ".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    return f"<{tag}> {inner} </{tag}>"


def envelope(method: str, status: str = "OK", description: str = "", result: str = "") -> SimResponse:
    """The manual's reply envelope (no root element) with its status, description and result."""
    body = (
        f"<input>{method}</input> <status>{status}</status> "
        f"<description>{escape(description or DESCRIPTIONS[status])}</description>"
    )
    return xml_reply(body + (f" <result> {result} </result>" if result else ""))
