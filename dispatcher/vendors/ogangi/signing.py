"""How Ogangi calls are signed: every call is a GET whose path holds the method's values, then the
public key and a signature.

The signature (from the vendor's wiki; the seed only says "SHA256"): HMAC-SHA256 keyed with the
private key, lowercase hex, over the method's values joined by '/' as they stand in the URL.
base64 is URL-safe with its '=' padding kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import httpx

from dispatcher.vendors import base


def sign(message: str, private_key: str) -> str:
    """HMAC-SHA256 of the signed path values, keyed with the private key, as lowercase hex."""
    return hmac.new(private_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_get(account: base.Account, method: str, values: list[str]) -> httpx.Request:
    """A GET of ``method``: instance id and values, signed, then the public key and the signature."""
    signed = "/".join([segment(account.params["instance_id"]), *values])
    signature = sign(signed, account.params["private_key"])
    url = f"{account.base_url.rstrip('/')}/rest/api/{method}/{signed}"
    return httpx.Request("GET", f"{url}/{segment(account.params['public_key'])}/{signature}")


def segment(value: object) -> str:
    """A value as one URL path segment ('/' and everything else reserved is escaped)."""
    return quote(str(value), safe="")


def b64(text: str) -> str:
    """A text as URL-safe base64 with its '=' padding kept, as the paths carry texts and mobiles."""
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")
