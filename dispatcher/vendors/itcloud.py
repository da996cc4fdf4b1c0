"""IT Cloud Services (contacto-masivo), Colombia: the manual is seeds/001 (Spanish).

POST form ``/api/sendsms`` with ``user``, ``token``, ``GSM`` (comma list of 12-digit numbers),
``SMSText`` (at most 765 characters) and optional ``metodo_envio`` (1via, 2via, flash).
Up to 1000 numbers a request with a 2 s pause between requests; 5000 is a hard cap (``-7``).

Sample reply, one ``phone,code`` line per number (``<br>`` may stand between them)::

    584142871901,12102253
    57111,-4
    573802338546,0
    573002333333,-3

A code above 0 is the acceptance id. A bare code answers for the whole request, but only the
codes about the request itself (credentials, hours, balance, text, maintenance, size) can: a bare
acceptance id, ``0``, ``-4`` or ``-8`` for several numbers says not which number it is about, so
each of them is ``unknown`` (the vendor may have sent some), never sent again blindly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from dispatcher.errors import VendorAccountError, VendorRetryable
from dispatcher.vendors.abilities import Abilities, BalanceQuery, Credentials
from dispatcher.vendors.base import (
    Account,
    Balance,
    CodeRule,
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

key = "itcloud"
default_base_url = "https://contacto-masivo.com/sms/back_sms/public"
#: the balance query lives on another host (manual, section 2); accounts may set ``balance_url``
default_balance_url = "https://sistemasmasivos.com/itcloud/api/sendsms/query.php"

codes: dict[str, CodeRule] = {
    "-1": CodeRule(Outcome.PAUSE_ACCOUNT, "authentication failed: bad user or token"),
    "-2": CodeRule(Outcome.WAIT_WINDOW, "outside the hours the CRC allows (08:00-21:00)"),
    "-3": CodeRule(Outcome.PAUSE_ACCOUNT, "no balance left on the account"),
    "-4": CodeRule(Outcome.REJECTED, "bad number: not the expected 12 digits"),
    "-5": CodeRule(Outcome.REJECTED, "text empty or over 765 characters"),
    # The manual: "Este SMS no tiene cobro ni enviado": come back later, no attempt spent.
    "-6": CodeRule(Outcome.DEFER, "system in maintenance; nothing sent or charged"),
    # Our request was too big, never the numbers' fault: they go again in requests of at most
    # ``limits.batch_size`` (build_send), without spending an attempt.
    # A planning fault, never the numbers': they go again in requests half the size.
    "-7": CodeRule(Outcome.DEFER, "more than 5000 numbers in one request", split=True),
    # Typically the person answered SALIR: the account stops sending to this number.
    "-8": CodeRule(Outcome.REJECTED, "number on the block list", opt_out=True),
    "-9": CodeRule(Outcome.REJECTED, "text rejected for its content"),
    "-10": CodeRule(Outcome.REJECTED, "text carries a link the account may not send"),
    "-11": CodeRule(Outcome.REJECTED, "bad metodo_envio: must be 1via, 2via or flash"),
    "0": CodeRule(Outcome.REJECTED, "unknown operator for this number"),
}

limits = Limits(batch_size=1000, hard_max_recipients=5000, min_interval=2.0, max_text_chars=765)

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
    return limits.max_text_chars


def vendor_number(phone: str) -> str:
    """E.164 to IT Cloud's 12 digits: drop the '+'; NANP numbers are written 01 + 10 digits."""
    digits = phone.lstrip("+")
    return "0" + digits if digits.startswith("1") else digits


def check_recipient(recipient: Recipient, options: Mapping[str, Any]) -> str | None:
    """IT Cloud takes 12-digit numbers (country prefix included); say so before a request."""
    number = vendor_number(recipient.phone)
    if len(number) != 12 or not number.isdigit():
        return f"itcloud needs 12 digits with the country prefix, not {len(number)}"
    return None


def build_send(account: Account, outgoing: Outgoing) -> list[SendRequest]:
    """One form POST per text and per 1000 numbers (the manual's block; the planner cuts the same)."""
    recipients = list(outgoing.recipients)
    texts = {r.text for r in recipients}
    if len(texts) != 1 or len(recipients) > limits.batch_size:
        # One request has one SMSText: personalised texts go one request per text. And never more
        # numbers than the manual's block, whatever the batch: -7 refuses the whole request.
        same_text = [[r for r in recipients if r.text == text] for text in sorted(texts)]
        size = limits.batch_size
        return [
            _request(account, group[start : start + size], outgoing.options)
            for group in same_text
            for start in range(0, len(group), size)
        ]
    return [_request(account, recipients, outgoing.options)]


def _request(account: Account, recipients: list[Recipient], options: Mapping[str, Any]) -> SendRequest:
    form = {
        "user": account.params["user"],
        "token": account.params["token"],
        "GSM": ",".join(vendor_number(r.phone) for r in recipients),
        "SMSText": recipients[0].text,
    }
    if options.get("metodo_envio"):
        form["metodo_envio"] = options["metodo_envio"]
    request = httpx.Request("POST", f"{account.base_url.rstrip('/')}/api/sendsms", data=form)
    return SendRequest(request, recipients)


def parse_send(account: Account, sent: SendRequest, response: httpx.Response) -> list[Result]:
    """One result per number from the ``phone,code`` lines, or the bare code for all of them."""
    raise_for_status(response)
    body = response.text.strip()
    recipients = list(sent.recipients)
    if _CODE.match(body):
        if len(recipients) == 1:
            return [_result(recipients[0], body)]
        if body in REQUEST_CODES:
            return [result_for_code(r, body, codes, key) for r in recipients]
        reason = f"itcloud answered one bare code {body} for {len(recipients)} numbers: whose is unknown"
        return [Result(r.message_id, Outcome.UNKNOWN, code=body, reason=reason) for r in recipients]
    replies: dict[str, str] = {}
    for line in filter(None, (part.strip() for part in _LINE_SPLIT.split(body))):
        number, sep, code = line.partition(",")
        if not sep or not _CODE.match(code.strip()):
            raise VendorRetryable(f"itcloud answered something that is not a code list: {short_body(response)}")
        replies[number.strip()] = code.strip()
    if not replies:
        raise VendorRetryable("itcloud answered an empty body")
    return [_result(r, replies.get(vendor_number(r.phone))) for r in recipients]


def _result(recipient: Recipient, code: str | None) -> Result:
    if code is None:
        return Result(recipient.message_id, Outcome.UNKNOWN, reason="itcloud's reply did not mention this number")
    if int(code) > 0:
        return _accepted(recipient, code)
    # Many numbers share a request: an undocumented code may hide a send, so never resend it.
    return result_for_code(recipient, code, codes, key, undocumented=Outcome.UNKNOWN)


def _accepted(recipient: Recipient, code: str) -> Result:
    return Result(recipient.message_id, Outcome.ACCEPTED, vendor_id=code, code=code, reason="")


def build_balance(account: Account) -> httpx.Request:
    """GET ``query.php`` with ``user`` and ``token`` (and ``password`` when the account has one)."""
    params = {"user": account.params["user"], "token": account.params["token"]}
    if account.params.get("password"):
        # The manual's table names the token, its example a password: send what we have.
        params["password"] = account.params["password"]
    return httpx.Request("GET", account.params.get("balance_url", default_balance_url), params=params)


def parse_balance(response: httpx.Response) -> Balance:
    """A number is the balance; ``-1`` is a failed authentication."""
    raise_for_status(response)
    body = response.text.strip()
    try:
        value = float(body)
    except ValueError:
        raise VendorRetryable(f"itcloud answered a balance that is not a number: {short_body(response)}") from None
    if body == "-1":
        raise VendorAccountError("itcloud -1: authentication failed: bad user or token", "-1")
    return Balance(value)


#: replies come as GET ``?mensaje=...&celular=...``; a POST form is read alike
push_methods = frozenset({"GET", "POST"})
push_content_types = frozenset({FORM})


def parse_push(params: Mapping[str, str]) -> list[Inbound]:
    """A reply pushed to our URL (manual, section 3): GET ``mensaje`` and ``celular``."""
    text, number = params.get("mensaje"), (params.get("celular") or "").strip()
    if text is None or not number.isdigit():
        raise ValueError("an itcloud reply needs 'mensaje' and the digits of 'celular'")
    # celular carries the country prefix, as GSM does; 01 + 10 digits is a NANP number.
    phone = "+" + (number[1:] if number.startswith("01") and len(number) == 12 else number)
    return [Inbound(phone, text)]


def answer_push(items: Sequence[Inbound | StatusReport], keyword_reply: str | None) -> str:
    """The manual asks for no particular answer: a plain OK."""
    return PLAIN_OK


ABILITIES = Abilities(
    credentials=Credentials(required=("user", "token"), secret=("token", "password")),
    default_country="CO",
    balance=BalanceQuery(build_balance, parse_balance),
)
