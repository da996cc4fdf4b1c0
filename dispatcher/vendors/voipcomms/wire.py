"""VoIP Communications on the wire: its codes and status words, numbers, credentials and replies.

Every call is a form POST under ``/api-v2/index.php/`` with HTTP Basic ``api_key:api_password``
(HTTP 401 means bad credentials); every reply is one JSON object. Numbers travel as international
digits without '+'.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.vendors import base

key = "voipcomms"

#: ``code`` of a send_log entry (HTTP-like, as the manual's example), and the app's ``error`` flag
codes: dict[str, base.CodeRule] = {
    "200": base.CodeRule(base.Outcome.ACCEPTED, "processed: sent now, or scheduled for delivery_date"),
    "401": base.CodeRule(base.Outcome.PAUSE_ACCOUNT, "invalid api credentials"),
    # Public client code only: the cause is free text, so retry within the attempt budget.
    "error": base.CodeRule(base.Outcome.RETRY, "the API refused the request; error_message says why"),
}

#: message status words (``status`` / ``sms_status``); the manual shows only SCHEDULED
status_codes: dict[str, base.DeliveryState] = {
    "SCHEDULED": base.DeliveryState.QUEUED,  # the manual's one word
    # Not in the manual: the usual SMS words, so a summary can move a message past queued.
    "QUEUED": base.DeliveryState.QUEUED,
    "PENDING": base.DeliveryState.QUEUED,
    "SENT": base.DeliveryState.SENT,
    "DELIVERED": base.DeliveryState.DELIVERED,
    "FAILED": base.DeliveryState.FAILED,
    "UNDELIVERED": base.DeliveryState.FAILED,
    "REJECTED": base.DeliveryState.FAILED,
    "EXPIRED": base.DeliveryState.FAILED,
}

# No documented cap on ``to``. 100 numbers keep the reply (a send_log entry echoing the text per
# number) small and bound how many messages one lost reply leaves 'unknown'.
limits = base.Limits(batch_size=100, hard_max_recipients=100, min_interval=0.0, max_text_chars=918)

#: where every API method lives under the account's base URL
_API = "/api-v2/index.php/"


def vendor_number(phone: str) -> str:
    """E.164 to the vendor's international digits: drop the '+'."""
    return phone.strip().lstrip("+")


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The reply's JSON object, or VendorRetryable when it is not one."""
    try:
        body = response.json()
    except ValueError:
        raise VendorRetryable(f"voipcomms answered no JSON: {base.short_body(response)}") from None
    if not isinstance(body, dict):
        raise VendorRetryable(f"voipcomms answered JSON that is not an object: {base.short_body(response)}")
    return body


def url(account: base.Account, method: str) -> str:
    """The URL of an API method (``sms/send``, ``sms/summary``...) on the account's host."""
    return f"{account.base_url.rstrip('/')}{_API}{method}"


def auth(account: base.Account) -> dict[str, str]:
    """HTTP Basic ``api_key:api_password``, as every call carries it."""
    pair = f"{account.params['api_key']}:{account.params['api_password']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def e164(number: str) -> str:
    """International digits as E.164; anything not all digits is kept as given."""
    bare = number.strip().lstrip("+")
    return "+" + bare if bare.isdigit() else number.strip()


def optional(value: Any) -> str | None:
    """A field of a row as text, or None when it is missing or empty."""
    return None if value in (None, "") else str(value)
