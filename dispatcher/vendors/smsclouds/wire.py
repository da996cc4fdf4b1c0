"""smsclouds on the wire: its code tables, routes, text markers, and how requests and replies look.

Every call carries ``Authorization: Bearer <token>`` and JSON; every reply is ``{"data": {...}}``
or ``{"error": {"information": ..., "status_code": 422}}``. Phones travel as the national digits
of a route (``country`` id) the manual lists; dates as the vendor's wall time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import httpx
import phonenumbers

from dispatcher.errors import VendorRetryable
from dispatcher.text import is_gsm7
from dispatcher.vendors import base

key = "smsclouds"

# The same table for every endpoint; HTTP statuses become errors in base.raise_for_status, and
# a 2xx whose body still carries {"error": {"status_code": ...}} is read through this table.
codes: dict[str, base.CodeRule] = {
    "400": base.CodeRule(base.Outcome.REJECTED, "bad request: the JSON is missing or not correct"),
    "401": base.CodeRule(base.Outcome.PAUSE_ACCOUNT, "unauthorized: the token is wrong"),
    "404": base.CodeRule(base.Outcome.REJECTED, "the route was not found: wrong base URL or path"),
    "422": base.CodeRule(base.Outcome.REJECTED, "unprocessable: a parameter is wrong (text, number, country)"),
    "500": base.CodeRule(base.Outcome.RETRY, "internal server error at smsclouds: try again later"),
}

#: ``status`` of POST /api/v1/status -> delivery state
status_codes: dict[str, base.DeliveryState] = {
    "0": base.DeliveryState.QUEUED,  # queued
    "1": base.DeliveryState.QUEUED,  # in process: the vendor still holds it
    "2": base.DeliveryState.SENT,  # sent (the manual promises no handset receipt)
    "3": base.DeliveryState.FAILED,  # fail
}

# No maximum is documented. 500 numbers keep one JSON body to tens of KB, let the vendor add them
# all before it answers (it replies after date_finish_add) within the read timeout, and bound how
# many messages one lost reply leaves unknown.
limits = base.Limits(batch_size=500, hard_max_recipients=500, min_interval=0.0, max_text_chars=306)

#: the manual's route table: ISO region -> ``country`` id
COUNTRY_IDS = {"MX": 1, "US": 2, "CO": 3, "BR": 6, "PE": 7, "AR": 14, "CL": 18, "ES": 21}
#: marker in the text -> (recipient var, key in ``combination``; the manual's examples write "names")
MARKERS = {
    "<+B+>": ("name", "names"),
    "<+C+>": ("field1", "field1"),
    "<+D+>": ("field2", "field2"),
    "<+E+>": ("field3", "field3"),
    "<+F+>": ("field4", "field4"),
}
PLAIN_MAX, ENCODED_MAX, LARGE_MAX = 160, 70, 306  #: characters of ``message``
_DIGITS = re.compile(r"[0-9]+")


def needs_encode(text: str) -> bool:
    """Say whether a text needs ``encode``: anything beyond ASCII GSM-7, accents included."""
    return not (text.isascii() and is_gsm7(text))


@lru_cache(maxsize=1 << 16)
def vendor_number(phone: str) -> tuple[int, str] | None:
    """E.164 to (route id, national digits), or None when the manual lists no route for it.

    Kept per phone: a build asks it of every recipient several times, and parsing is the cost.
    """
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    country = COUNTRY_IDS.get(phonenumbers.region_code_for_number(number) or "")
    return (country, phonenumbers.national_significant_number(number)) if country else None


def national(phone: Any) -> str:
    """National digits as given, or those of an E.164 number of a route; else ValueError."""
    text = str(phone).strip()
    if _DIGITS.fullmatch(text):
        return text
    route = vendor_number(text) if text.startswith("+") else None
    if route is None:
        raise ValueError(f"{text!r} is neither national digits nor an E.164 number of a route")
    return route[1]


def ids(name: str, values: Any) -> list[int]:
    """A list of whole-number ids, or ValueError naming the parameter."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list of ids, not {values!r}")
    return [whole_number(name, v) for v in values]


def whole_number(name: str, value: Any) -> int:
    """A whole number (digits or an int, never a bool), or ValueError naming the parameter."""
    if not is_id(value):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def vendor_date(name: str, value: datetime | str, *formats: str) -> str:
    """A datetime written in the first format, or a text already in one of them; else ValueError."""
    if isinstance(value, datetime):
        return value.strftime(formats[0])
    for fmt in formats:
        try:
            datetime.strptime(str(value), fmt)
        except ValueError:
            continue
        return str(value)
    raise ValueError(f"{name} must be a date written {' or '.join(formats)}, not {value!r}")


def is_id(value: Any) -> bool:
    """Say whether a value is a vendor id: digits only, and not a bool."""
    return not isinstance(value, bool) and _DIGITS.fullmatch(str(value)) is not None


def read_json(response: httpx.Response) -> Any:
    """The reply's JSON, or VendorRetryable when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise VendorRetryable(f"smsclouds answered no JSON: {base.short_body(response)}") from None


def read_data(response: httpx.Response) -> dict[str, Any]:
    """The ``data`` object of a query that succeeded, or the error of its failure."""
    base.raise_for_status(response)
    body = read_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise VendorRetryable(f"smsclouds answered no data: {base.short_body(response)}")
    return data


def read_items(response: httpx.Response, field: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """The objects of ``data.<field>``, each with the ``required`` keys (none when count is 0)."""
    data = read_data(response)
    items = data.get(field)
    if items is None and data.get("count") == 0:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) and set(required) <= set(i) for i in items):
        raise VendorRetryable(f"smsclouds answered no usable data.{field}: {base.short_body(response)}")
    return items


def headers(account: base.Account) -> dict[str, str]:
    """The bearer token and the JSON accept header every call carries."""
    return {"Authorization": f"Bearer {account.params['token']}", "Accept": "application/json"}


def url(account: base.Account, path: str) -> str:
    """The account's base URL joined with an API path."""
    return account.base_url.rstrip("/") + path


def post(account: base.Account, path: str, payload: Mapping[str, Any]) -> httpx.Request:
    """A JSON POST to an API path with the account's token."""
    return httpx.Request("POST", url(account, path), json=payload, headers=headers(account))
