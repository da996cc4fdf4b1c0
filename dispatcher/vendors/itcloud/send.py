"""Sending through IT Cloud: POST form ``/api/sendsms`` with ``user``, ``token``, ``GSM`` (comma list
of 12-digit numbers), ``SMSText`` (at most 765 characters) and optional ``metodo_envio`` (1via,
2via, flash). Up to 1000 numbers a request with a 2 s pause between requests; 5000 is a hard cap
(``-7``).

Sample reply, one ``phone,code`` line per number (``<br>`` may stand between them)::

    584142871901,12102253
    57111,-4
    573802338546,0
    573002333333,-3

A bare code answers for the whole request, but only the codes about the request itself
(credentials, hours, balance, text, maintenance, size) can: a bare acceptance id, ``0``, ``-4`` or
``-8`` for several numbers says not which number it is about, so each of them is ``unknown`` (the
vendor may have sent some), never sent again blindly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.vendors import base
from dispatcher.vendors.itcloud import wire

#: codes that, answered bare, speak for every number of the request (the rest are per number)
REQUEST_CODES = frozenset({"-1", "-2", "-3", "-5", "-6", "-7", "-9", "-10", "-11"})
#: values of the ``metodo_envio`` option
SEND_METHODS = ("1via", "2via", "flash")
_LINE_SPLIT = re.compile(r"(?:<br\s*/?>|\r?\n)+", re.IGNORECASE)
_CODE = re.compile(r"^-?\d+$")


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``metodo_envio`` (1via, 2via, flash) and nothing else."""
    unknown = set(options) - {"metodo_envio"}
    if unknown:
        raise ValueError(f"itcloud takes no option {sorted(unknown)[0]!r}")
    method = options.get("metodo_envio")
    if method is not None and method not in SEND_METHODS:
        raise ValueError(f"metodo_envio must be one of {', '.join(SEND_METHODS)}, not {method!r}")
    return dict(options)


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """IT Cloud takes up to 765 characters whatever the alphabet."""
    return wire.limits.max_text_chars


def check_recipient(recipient: base.Recipient, options: Mapping[str, Any]) -> str | None:
    """IT Cloud takes 12-digit numbers (country prefix included); say so before a request."""
    number = wire.vendor_number(recipient.address)
    if len(number) != 12 or not number.isdigit():
        return f"itcloud needs 12 digits with the country prefix, not {len(number)}"
    return None


def build_send(account: base.Account, outgoing: base.Outgoing) -> list[base.SendRequest]:
    """One form POST per text and per 1000 numbers (the manual's block; the planner cuts the same)."""
    recipients = list(outgoing.recipients)
    texts = {r.text for r in recipients}
    if len(texts) != 1 or len(recipients) > wire.limits.batch_size:
        # One request has one SMSText: personalised texts go one request per text. And never more
        # numbers than the manual's block, whatever the batch: -7 refuses the whole request.
        same_text = [[r for r in recipients if r.text == text] for text in sorted(texts)]
        size = wire.limits.batch_size
        return [
            _request(account, group[start : start + size], outgoing.options)
            for group in same_text
            for start in range(0, len(group), size)
        ]
    return [_request(account, recipients, outgoing.options)]


def _request(
    account: base.Account, recipients: list[base.Recipient], options: Mapping[str, Any]
) -> base.SendRequest:
    form = {
        "user": account.params["user"],
        "token": account.params["token"],
        "GSM": ",".join(wire.vendor_number(r.address) for r in recipients),
        "SMSText": recipients[0].text,
    }
    if options.get("metodo_envio"):
        form["metodo_envio"] = options["metodo_envio"]
    request = httpx.Request("POST", f"{account.base_url.rstrip('/')}/api/sendsms", data=form)
    return base.SendRequest(request, recipients)


def parse_send(account: base.Account, sent: base.SendRequest, response: httpx.Response) -> list[base.Result]:
    """One result per number from the ``phone,code`` lines, or the bare code for all of them."""
    base.raise_for_status(response)
    body = response.text.strip()
    recipients = list(sent.recipients)
    if _CODE.match(body):
        if len(recipients) == 1:
            return [_result(recipients[0], body)]
        if body in REQUEST_CODES:
            return [base.result_for_code(r, body, wire.codes, wire.key) for r in recipients]
        reason = f"itcloud answered one bare code {body} for {len(recipients)} numbers: whose is unknown"
        return [base.Result(r.message_id, base.Outcome.UNKNOWN, code=body, reason=reason) for r in recipients]
    replies: dict[str, str] = {}
    for line in filter(None, (part.strip() for part in _LINE_SPLIT.split(body))):
        number, sep, code = line.partition(",")
        if not sep or not _CODE.match(code.strip()):
            raise VendorRetryable(
                f"itcloud answered something that is not a code list: {base.short_body(response)}"
            )
        replies[number.strip()] = code.strip()
    if not replies:
        raise VendorRetryable("itcloud answered an empty body")
    return [_result(r, replies.get(wire.vendor_number(r.address))) for r in recipients]


def _result(recipient: base.Recipient, code: str | None) -> base.Result:
    if code is None:
        return base.Result(
            recipient.message_id, base.Outcome.UNKNOWN, reason="itcloud's reply did not mention this number"
        )
    if int(code) > 0:
        return _accepted(recipient, code)
    # Many numbers share a request: an undocumented code may hide a send, so never resend it.
    return base.result_for_code(recipient, code, wire.codes, wire.key, undocumented=base.Outcome.UNKNOWN)


def _accepted(recipient: base.Recipient, code: str) -> base.Result:
    return base.Result(recipient.message_id, base.Outcome.ACCEPTED, vendor_id=code, code=code, reason="")
