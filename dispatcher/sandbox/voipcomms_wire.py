"""VoIP Communications' wire format: the send form's checks, dates and numbers, and its JSON answers."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import phonenumbers

from dispatcher.sandbox.core import SimResponse
from dispatcher.sandbox.skeleton import json_reply, read_date

if TYPE_CHECKING:
    from dispatcher.sandbox.voipcomms import VoipAccount

#: rows per page of sms/summary and sms/chat (not documented; the app only pages until empty)
PAGE_SIZE = 20
#: the manual's example prints BULKSMS; the 2-way word is not documented
BULK, TWO_WAY = "BULKSMS", "2WAYSMS"
#: "YYYY-MM-DD HH:MM or any valid date format": the common ones
DATE_INPUTS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%m/%d/%Y %H:%M", "%m/%d/%Y")


def problem_of(account: VoipAccount, numbers: list[str], text: str, sender: str) -> str:
    """Why the whole request is refused, or ''."""
    if not numbers:
        return "The to parameter is required"
    if not text:
        return "The msg parameter is required"
    owned = account.settings.numbers.get(sender)
    if sender and (owned is None or not owned.sms_enabled):
        return f"The number {sender} does not belong to you or is not SMS enabled"
    return ""


def bad_number(number: str, text: str, sender: str, two_way: bool) -> dict[str, Any]:
    """The send_log entry of a number that is not an international number."""
    # Not documented: a number that is not an international number is logged with its own code.
    return {
        "code": 400, "code_desc": "Invalid number", "from": sender, "to": number, "country": "",
        "msg": text, "delivery_date": "", "sale": 0, "type": TWO_WAY if two_way else BULK,
        "status": "FAILED", "smsid": "",
    }  # fmt: skip


def paged(name: str, rows: list[dict[str, Any]], page: str) -> SimResponse:
    """One page of summary or chat rows (pages count from 0)."""
    if not page.strip().isdigit():
        return refusal("Invalid page")
    start = int(page) * PAGE_SIZE
    return json_answer({name: rows[start : start + PAGE_SIZE]})


def delivery_date(text: str, account: VoipAccount, now: datetime) -> datetime | None:
    """When to send: now if empty or past, else the date read in the account's time zone."""
    text = text.strip()
    if not text:
        return now
    when = read_date(text, *DATE_INPUTS)
    if when is None:
        return None
    # A date already past is sent at once (not documented; the plausible reading).
    return max(when.replace(tzinfo=ZoneInfo(account.timezone)), now)


def country_of(number: str) -> str:
    """ISO country of international digits, or '' when they are not a number."""
    if not number.isdigit() or not 8 <= len(number) <= 15:
        return ""
    try:
        parsed = phonenumbers.parse("+" + number)
    except phonenumbers.NumberParseException:
        return ""
    # Not validated further: test ranges (555...) and new ranges still belong to their country.
    region = phonenumbers.region_code_for_number(parsed)
    if not region and parsed.country_code is not None:
        region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return "" if region in (None, "ZZ") else region


def refusal(message: str) -> SimResponse:
    """The app's refusal: an error flag and message, with HTTP 200."""
    return json_answer({"error": True, "error_message": message})


#: the vendor's JSON escapes accents and names no charset
json_answer = functools.partial(json_reply, content_type="application/json", ascii_only=True)
