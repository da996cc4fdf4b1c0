"""Sending through VoIP Communications: POST ``sms/send``, one request per distinct text.

The form: ``to`` (comma list of international numbers without '+'), ``msg``, optional ``from`` (one
of the account's SMS-enabled numbers: 2-way SMS; empty: bulk at a lower rate) and ``delivery_date``
(``YYYY-MM-DD HH:MM``; charged when it goes out). Sample reply, one ``send_log`` entry per number
processed::

    {"send_log": [{"code": 200, "code_desc": "", "from": "17134567890", "to": "12812345678",
                   "country": "US", "msg": "It is a SMS message",
                   "delivery_date": "2019-10-01 00:00:00", "sale": 0.01, "type": "BULKSMS",
                   "status": "SCHEDULED", "smsid": "2017559ea27008c6b7122900621"}]}

A refusal answers ``{"error": true, "error_message": "..."}`` (the vendor's public app, not the manual).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.text import is_gsm7
from dispatcher.vendors import base
from dispatcher.vendors.voipcomms import wire

#: job options this vendor takes
OPTIONS = ("from", "delivery_date")
#: parts a text may take; the manual splits past 160 characters into 153-character parts
MAX_PARTS = 6
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


def check_recipient(recipient: base.Recipient, options: Mapping[str, Any]) -> str | None:
    """Nothing to refuse before a request: voipcomms takes any international number."""
    return None


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """Up to six parts: 6 x 153 GSM-7 characters, or 6 x 67 when the text needs UCS-2."""
    return MAX_PARTS * (153 if is_gsm7(text) else 67)


def build_send(account: base.Account, outgoing: base.Outgoing) -> list[base.SendRequest]:
    """One form POST per distinct text (a request has one ``msg``), each with its numbers."""
    groups: dict[str, list[base.Recipient]] = {}
    for recipient in outgoing.recipients:
        groups.setdefault(recipient.text, []).append(recipient)
    requests = []
    for text, recipients in groups.items():
        form = {"to": ",".join(wire.vendor_number(r.address) for r in recipients), "msg": text}
        form.update({name: str(outgoing.options[name]) for name in OPTIONS if outgoing.options.get(name)})
        request = httpx.Request("POST", wire.url(account, "sms/send"), data=form, headers=wire.auth(account))
        requests.append(base.SendRequest(request, recipients))
    return requests


def parse_send(account: base.Account, sent: base.SendRequest, response: httpx.Response) -> list[base.Result]:
    """One result per number from its send_log entry; a refusal (``error``) answers for all of them."""
    base.raise_for_status(response)
    body = wire.json_object(response)
    recipients = list(sent.recipients)
    if body.get("error"):
        return [_refused(r, body) for r in recipients]
    log = body.get("send_log")
    if not isinstance(log, list) or not log:
        raise VendorRetryable(f"voipcomms answered without a send_log: {base.short_body(response)}")
    entries: dict[str, list[Mapping[str, Any]]] = {}
    for entry in log:
        if isinstance(entry, Mapping):
            entries.setdefault(str(entry.get("to", "")), []).append(entry)
    return [_result(r, entries.get(wire.vendor_number(r.address), [])) for r in recipients]


def _result(recipient: base.Recipient, entries: list[Mapping[str, Any]]) -> base.Result:
    # A long text may log one entry per part: any part refused decides the number's outcome.
    entry = next((e for e in entries if str(e.get("code")) != "200"), entries[0] if entries else None)
    if entry is None or entry.get("code") in (None, ""):
        return base.Result(
            recipient.message_id, base.Outcome.UNKNOWN, reason="voipcomms's send_log gave no code for this number"
        )
    code = str(entry["code"])
    if code != "200" and any(str(e.get("code")) == "200" for e in entries):
        # Part of the text went out: sending the number again would send that part twice.
        reason = f"voipcomms sent part of the text but answered {code} for another part"
        return base.Result(recipient.message_id, base.Outcome.UNKNOWN, code=code, reason=reason)
    # Many numbers share a request: an undocumented code may hide a send, so never resend it.
    result = base.result_for_code(recipient, code, wire.codes, wire.key, undocumented=base.Outcome.UNKNOWN)
    if result.outcome is base.Outcome.ACCEPTED:
        return replace(result, vendor_id=str(entry.get("smsid") or "") or None, reason="")
    detail = str(entry.get("code_desc") or "").strip()
    return replace(result, reason=f"{result.reason} ({detail[:200]})") if detail else result


def _refused(recipient: base.Recipient, body: Mapping[str, Any]) -> base.Result:
    result = base.result_for_code(recipient, "error", wire.codes, wire.key)
    detail = str(body.get("error_message") or "").strip()
    return replace(result, reason=f"{result.reason}: {detail[:200]}") if detail else result
