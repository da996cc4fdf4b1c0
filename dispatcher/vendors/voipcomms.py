"""VoIP Communications api-v2 (US and international): the manual is seeds/003 (English).

POST form ``/api-v2/index.php/sms/send`` with HTTP Basic ``api_key:api_password``: ``to`` (comma
list of international numbers without '+'), ``msg``, optional ``from`` (one of the account's
SMS-enabled numbers: 2-way SMS; empty: bulk at a lower rate) and ``delivery_date``
(``YYYY-MM-DD HH:MM``; charged when it goes out). HTTP 401 means bad credentials.

Sample reply, one ``send_log`` entry per number processed::

    {"send_log": [{"code": 200, "code_desc": "", "from": "17134567890", "to": "12812345678",
                   "country": "US", "msg": "It is a SMS message",
                   "delivery_date": "2019-10-01 00:00:00", "sale": 0.01, "type": "BULKSMS",
                   "status": "SCHEDULED", "smsid": "2017559ea27008c6b7122900621"}]}

The manual stops there. The vendor's own public app adds what it leaves out: a refusal answers
``{"error": true, "error_message": "..."}``; ``sms/summary`` (the sent log) and ``sms/chat`` (one
conversation, rows marked ``sms_inout`` IN or OUT) are form POSTs paged by ``page`` = 0, 1, ...
until a page comes back empty, with rows named ``sms_id``, ``sms_msg``, ``sms_status``,
``sms_external``, ``sms_status_date``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.text import is_gsm7
from dispatcher.vendors.abilities import Abilities, Credentials, Paged
from dispatcher.vendors.base import (
    Account,
    CodeRule,
    DeliveryState,
    Inbound,
    Limits,
    Outcome,
    Outgoing,
    Recipient,
    Result,
    SendRequest,
    StatusReport,
    raise_for_status,
    result_for_code,
    short_body,
)
from dispatcher.vendors.push import FORM, PLAIN_OK

key = "voipcomms"
default_base_url = "https://voip-communications.net"

#: ``code`` of a send_log entry (HTTP-like, as the manual's example), and the app's ``error`` flag
codes: dict[str, CodeRule] = {
    "200": CodeRule(Outcome.ACCEPTED, "processed: sent now, or scheduled for delivery_date"),
    "401": CodeRule(Outcome.PAUSE_ACCOUNT, "invalid api credentials"),
    # Public client code only: the cause is free text, so retry within the attempt budget.
    "error": CodeRule(Outcome.RETRY, "the API refused the request; error_message says why"),
}

#: message status words (``status`` / ``sms_status``); the manual shows only SCHEDULED
status_codes: dict[str, DeliveryState] = {
    "SCHEDULED": DeliveryState.QUEUED,  # the manual's one word
    # Not in the manual: the usual SMS words, so a summary can move a message past queued.
    "QUEUED": DeliveryState.QUEUED,
    "PENDING": DeliveryState.QUEUED,
    "SENT": DeliveryState.SENT,
    "DELIVERED": DeliveryState.DELIVERED,
    "FAILED": DeliveryState.FAILED,
    "UNDELIVERED": DeliveryState.FAILED,
    "REJECTED": DeliveryState.FAILED,
    "EXPIRED": DeliveryState.FAILED,
}

# No documented cap on ``to``. 100 numbers keep the reply (a send_log entry echoing the text per
# number) small and bound how many messages one lost reply leaves 'unknown'.
limits = Limits(batch_size=100, hard_max_recipients=100, min_interval=0.0, max_text_chars=918)

#: job options this vendor takes
OPTIONS = ("from", "delivery_date")
#: parts a text may take; the manual splits past 160 characters into 153-character parts
MAX_PARTS = 6

_API = "/api-v2/index.php/"
_NUMBER = re.compile(r"^\d{8,15}$")
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``from`` (one of the account's numbers: 2-way) and ``delivery_date`` (YYYY-MM-DD HH:MM)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"voipcomms takes no option {sorted(unknown)[0]!r}")
    checked: dict[str, Any] = {}
    sender = options.get("from")
    if sender not in (None, ""):
        digits = str(sender).strip().lstrip("+")
        if not _NUMBER.match(digits):
            raise ValueError(f"from must be one of the account's numbers in digits, not {sender!r}")
        checked["from"] = digits
    when = options.get("delivery_date")
    if when not in (None, ""):
        if not isinstance(when, str) or not _is_date(when.strip()):
            raise ValueError(f"delivery_date must be 'YYYY-MM-DD HH:MM', not {when!r}")
        checked["delivery_date"] = when.strip()
    return checked


def _is_date(text: str) -> bool:
    for layout in _DATE_FORMATS:
        try:
            # Naive on purpose: the vendor reads it in the account's own time zone.
            datetime.strptime(text, layout)
        except ValueError:
            continue
        return True
    return False


def check_recipient(recipient: Recipient, options: Mapping[str, Any]) -> str | None:
    """Nothing to refuse before a request: voipcomms takes any international number."""
    return None


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """Up to six parts: 6 x 153 GSM-7 characters, or 6 x 67 when the text needs UCS-2."""
    return MAX_PARTS * (153 if is_gsm7(text) else 67)


def vendor_number(phone: str) -> str:
    """E.164 to the vendor's international digits: drop the '+'."""
    return phone.strip().lstrip("+")


def build_send(account: Account, outgoing: Outgoing) -> list[SendRequest]:
    """One form POST per distinct text (a request has one ``msg``), each with its numbers."""
    groups: dict[str, list[Recipient]] = {}
    for recipient in outgoing.recipients:
        groups.setdefault(recipient.text, []).append(recipient)
    requests = []
    for text, recipients in groups.items():
        form = {"to": ",".join(vendor_number(r.phone) for r in recipients), "msg": text}
        form.update({name: str(outgoing.options[name]) for name in OPTIONS if outgoing.options.get(name)})
        request = httpx.Request("POST", _url(account, "sms/send"), data=form, headers=_auth(account))
        requests.append(SendRequest(request, recipients))
    return requests


def parse_send(account: Account, sent: SendRequest, response: httpx.Response) -> list[Result]:
    """One result per number from its send_log entry; a refusal (``error``) answers for all of them."""
    raise_for_status(response)
    body = _json_object(response)
    recipients = list(sent.recipients)
    if body.get("error"):
        return [_refused(r, body) for r in recipients]
    log = body.get("send_log")
    if not isinstance(log, list) or not log:
        raise VendorRetryable(f"voipcomms answered without a send_log: {short_body(response)}")
    entries: dict[str, list[Mapping[str, Any]]] = {}
    for entry in log:
        if isinstance(entry, Mapping):
            entries.setdefault(str(entry.get("to", "")), []).append(entry)
    return [_result(r, entries.get(vendor_number(r.phone), [])) for r in recipients]


def _result(recipient: Recipient, entries: list[Mapping[str, Any]]) -> Result:
    # A long text may log one entry per part: any part refused decides the number's outcome.
    entry = next((e for e in entries if str(e.get("code")) != "200"), entries[0] if entries else None)
    if entry is None or entry.get("code") in (None, ""):
        return Result(
            recipient.message_id, Outcome.UNKNOWN, reason="voipcomms's send_log gave no code for this number"
        )
    code = str(entry["code"])
    if code != "200" and any(str(e.get("code")) == "200" for e in entries):
        # Part of the text went out: sending the number again would send that part twice.
        reason = f"voipcomms sent part of the text but answered {code} for another part"
        return Result(recipient.message_id, Outcome.UNKNOWN, code=code, reason=reason)
    # Many numbers share a request: an undocumented code may hide a send, so never resend it.
    result = result_for_code(recipient, code, codes, key, undocumented=Outcome.UNKNOWN)
    if result.outcome is Outcome.ACCEPTED:
        return replace(result, vendor_id=str(entry.get("smsid") or "") or None, reason="")
    detail = str(entry.get("code_desc") or "").strip()
    return replace(result, reason=f"{result.reason} ({detail[:200]})") if detail else result


def _refused(recipient: Recipient, body: Mapping[str, Any]) -> Result:
    result = result_for_code(recipient, "error", codes, key)
    detail = str(body.get("error_message") or "").strip()
    return replace(result, reason=f"{result.reason}: {detail[:200]}") if detail else result


def build_status(account: Account, page: int) -> httpx.Request:
    """One page of the sent log ``sms/summary`` (page 0, 1, ... until a page comes back empty)."""
    form = {"page": str(page)}
    return httpx.Request("POST", _url(account, "sms/summary"), data=form, headers=_auth(account))


def parse_status(response: httpx.Response) -> list[StatusReport]:
    """Delivery reports of one summary page; rows with an undocumented status word are left out."""
    reports = []
    for row in _rows(response, "summary"):
        word = str(row.get("sms_status") or row.get("status") or "").strip().upper()
        vendor_id = row.get("smsid") or row.get("sms_id")
        # Only what we sent has a delivery state; an unknown word is not guessed into one.
        if word not in status_codes or not vendor_id or str(row.get("sms_inout", "")).upper() == "IN":
            continue
        external = row.get("sms_external")
        reports.append(
            StatusReport(
                str(vendor_id),
                status_codes[word],
                code=word,
                phone=_e164(str(external)) if external else None,
                at=_optional(row.get("sms_status_date")),
            )
        )
    return reports


def build_replies(
    account: Account, page: int, internal: str | None = None, external: str | None = None
) -> httpx.Request:
    """One page of ``sms/chat``: the conversation between our ``internal`` number and ``external``."""
    form = {}
    if internal:
        form["internal"] = vendor_number(internal)
    if external:
        form["external"] = vendor_number(external)
    form["page"] = str(page)
    return httpx.Request("POST", _url(account, "sms/chat"), data=form, headers=_auth(account))


def parse_replies(response: httpx.Response, external: str | None = None) -> list[Inbound]:
    """The replies (``sms_inout`` IN) of one chat page; ``external`` names the handset if rows do not."""
    replies = []
    for row in _rows(response, "chat"):
        if str(row.get("sms_inout", "")).upper() != "IN":
            continue
        phone = row.get("sms_external") or external
        if not phone or row.get("sms_msg") is None:
            raise VendorRetryable("voipcomms chat row lacks sms_external or sms_msg")
        replies.append(
            Inbound(
                _e164(str(phone)),
                str(row["sms_msg"]),
                vendor_id=_optional(row.get("sms_id")),
                to=_optional(row.get("sms_internal")),
                at=_optional(row.get("sms_status_date")),
            )
        )
    return replies


def _rows(response: httpx.Response, field: str) -> list[Mapping[str, Any]]:
    """The list ``field`` of a paged reply, or VendorRetryable / VendorAccountError."""
    raise_for_status(response)
    body = _json_object(response)
    if body.get("error"):
        detail = str(body.get("error_message") or "").strip()[:200]
        raise VendorRetryable(f"voipcomms refused the query: {detail}", "error")
    rows = body.get(field)
    if not isinstance(rows, list):
        raise VendorRetryable(f"voipcomms answered without a {field} list: {short_body(response)}")
    return [row for row in rows if isinstance(row, Mapping)]


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise VendorRetryable(f"voipcomms answered no JSON: {short_body(response)}") from None
    if not isinstance(body, dict):
        raise VendorRetryable(f"voipcomms answered JSON that is not an object: {short_body(response)}")
    return body


def _url(account: Account, method: str) -> str:
    return f"{account.base_url.rstrip('/')}{_API}{method}"


def _auth(account: Account) -> dict[str, str]:
    pair = f"{account.params['api_key']}:{account.params['api_password']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _e164(number: str) -> str:
    digits = number.strip().lstrip("+")
    return "+" + digits if digits.isdigit() else number.strip()


def _optional(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


#: replies to a 2-way number are POSTed as a form to its callback URL
push_methods = frozenset({"POST"})
push_content_types = frozenset({FORM})


def parse_push(form: Mapping[str, str]) -> list[Inbound]:
    """A reply to a 2-way number, POSTed to its callback URL (the manual names no fields; these
    are the send form's own: ``from`` the handset, ``to`` our number, ``msg``, and ``date``)."""
    sender, text = (form.get("from") or "").strip().lstrip("+"), form.get("msg")
    if not sender.isdigit() or text is None:
        raise ValueError("a voipcomms reply needs 'from' digits and 'msg'")
    return [Inbound("+" + sender, text, to=form.get("to") or None, at=form.get("date") or None)]


def answer_push(items: Sequence[Inbound | StatusReport], keyword_reply: str | None) -> str:
    """The manual asks for no particular answer: a plain OK."""
    return PLAIN_OK


ABILITIES = Abilities(
    credentials=Credentials(required=("api_key", "api_password"), secret=("api_password",)),
    default_country="US",
    status_query=Paged(build_status, parse_status, newest_first=True),
    # Replies are pushed to the number's callback URL; an account may poll sms/chat instead.
    reply_query=Paged(
        lambda account, page: build_replies(account, page), parse_replies, pushed=True, newest_first=True
    ),
)
