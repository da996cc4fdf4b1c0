"""Sending through Ogangi: one signed GET per recipient by ``tools/sendSMS`` (the default), ``sendMT``,
or ``tools/sendSMSPinMobileNumberConfirm`` (the job's ``method: pin``: Ogangi makes the PIN and
texts it; only a salted hash of it is kept)::

    {base_url}/rest/api/tools/sendSMS/{instanceId}/{carrier}/{from}/{b64 mobile}/{b64 text}/{publicKey}/{sig}
    {base_url}/rest/api/sendMT/{instanceId}/{from}/{carrier}/{mobile}/{b64 text}[/{flags}]/{publicKey}/{sig}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from dispatcher.errors import ConfigError, VendorRetryable
from dispatcher.text import is_gsm7
from dispatcher.vendors import base
from dispatcher.vendors.ogangi import signing, wire
from dispatcher.vendors.pins import hash_pin

#: values of the ``method`` option -> the API method that sends
METHODS = {
    "sendSMS": "tools/sendSMS",
    "tools/sendSMS": "tools/sendSMS",
    "sendMT": "sendMT",
    # OTP: Ogangi makes the PIN and texts it; we keep only a salted hash of it.
    "pin": "tools/sendSMSPinMobileNumberConfirm",
}

#: job options this vendor takes
OPTIONS = ("method", "carrier", "from", "flags", "pin_length")
#: digits of a PIN Ogangi makes when the job does not say
PIN_LENGTH = 6


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``method`` (sendSMS, sendMT), ``carrier``, ``from`` and ``flags`` (sendMT only)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"ogangi takes no option {sorted(unknown)[0]!r}")
    method = options.get("method") or "sendSMS"
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be sendSMS or sendMT, not {method!r}")
    checked: dict[str, Any] = {"method": METHODS[method]}
    for name in ("carrier", "from", "flags"):
        value = options.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, (str, int)) or isinstance(value, bool) or not str(value).strip():
            raise ValueError(f"{name} must be text, not {value!r}")
        checked[name] = str(value).strip().lstrip("+") if name == "from" else str(value).strip()
    if "flags" in checked and checked["method"] != "sendMT":
        raise ValueError("flags only go with method sendMT")
    if options.get("pin_length") is not None:
        length = options["pin_length"]
        if checked["method"] != METHODS["pin"]:
            raise ValueError("pin_length only goes with method pin")
        if isinstance(length, bool) or not isinstance(length, int) or not 4 <= length <= 10:
            raise ValueError(f"pin_length must be a whole number from 4 to 10, not {length!r}")
        checked["pin_length"] = length
    return checked


def check_recipient(recipient: base.Recipient, options: Mapping[str, Any]) -> str | None:
    """Nothing to refuse before a request: ogangi takes any international number."""
    return None


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """One SMS part: 160 GSM-7 characters, or 70 when the text needs UCS-2."""
    return wire.limits.max_text_chars if is_gsm7(text) else 70


def build_send(account: base.Account, outgoing: base.Outgoing) -> list[base.SendRequest]:
    """One signed GET per recipient, by ``tools/sendSMS`` (the default) or ``sendMT``."""
    options = outgoing.options
    chosen = options.get("method") or "sendSMS"
    # Checked options carry the path ("tools/sendSMS"); raw ones may carry the name ("sendSMS").
    method = chosen if chosen in METHODS.values() else METHODS.get(chosen, "tools/sendSMS")
    carrier, sender = _route(account, options)
    requests = []
    for recipient in outgoing.recipients:
        mobile, text = wire.digits(recipient.address), signing.b64(recipient.text)
        if method == METHODS["pin"]:
            pin = build_pin(account, recipient.address, recipient.text, options.get("pin_length", PIN_LENGTH))
            requests.append(base.SendRequest(pin, [recipient]))
            continue
        if method == "sendMT":
            values = [sender, carrier, mobile, text]
            values += [signing.segment(options["flags"])] if options.get("flags") else []
        else:
            values = [carrier, sender, signing.b64(mobile), text]
        requests.append(base.SendRequest(signing.signed_get(account, method, values), [recipient]))
    return requests


def parse_send(account: base.Account, sent: base.SendRequest, response: httpx.Response) -> list[base.Result]:
    """The recipient's result from the envelope's status, then the message's own status and id."""
    base.raise_for_status(response)
    recipient = sent.recipients[0]
    if "/sendSMSPinMobileNumberConfirm/" in sent.request.url.path:
        return [_pin_result(recipient, response)]
    envelope = wire.envelope(response)
    status = wire.text_of(envelope, "status")
    if status != "OK":
        return [_refusal(recipient, status, wire.text_of(envelope, "description"))]
    message = envelope.find("result/messages/message")
    vendor_id = wire.text_of(message, "id") if message is not None else ""
    if not vendor_id:
        if "/rest/api/sendMT/" in sent.request.url.path:
            # sendMT answers the bare envelope: accepted, under no id.
            return [base.Result(recipient.message_id, base.Outcome.ACCEPTED, code="OK")]
        return [
            base.Result(
                recipient.message_id, base.Outcome.UNKNOWN, code="OK", reason="ogangi said OK but gave no id"
            )
        ]
    word = wire.text_of(message, "status") or "OK"
    result = base.result_for_code(recipient, word, wire.codes, wire.key)
    if result.outcome is base.Outcome.ACCEPTED:
        return [replace(result, vendor_id=vendor_id, reason="")]
    return [_detailed(result, wire.text_of(message, "statusDescription"))]


def _refusal(recipient: base.Recipient, status: str, description: str) -> base.Result:
    # sendMT and the PIN have no message element: a word such as NOT_ENOUGH_FUNDS rides in the
    # ERROR envelope's description, and it decides (no funds pause the account, not a retry).
    word = description.strip().upper()
    if status == "ERROR" and word in wire.codes:
        return _detailed(base.result_for_code(recipient, word, wire.codes, wire.key), description)
    return _detailed(base.result_for_code(recipient, status, wire.codes, wire.key), description)


def _pin_result(recipient: base.Recipient, response: httpx.Response) -> base.Result:
    envelope = wire.envelope(response, echo=False)
    status = wire.text_of(envelope, "status")
    if status != "OK":
        return _refusal(recipient, status, wire.text_of(envelope, "description"))
    # The PIN goes no further than this line: only its salted hash is kept.
    return base.Result(
        recipient.message_id, base.Outcome.ACCEPTED, code="OK", pin_hash=hash_pin(parse_pin(response))
    )


def build_pin(account: base.Account, phone: str, text: str, length: int = 6) -> httpx.Request:
    """Ask Ogangi to make a PIN and text it (``tools/sendSMSPinMobileNumberConfirm``)."""
    carrier, sender = _route(account, {})
    values = [carrier, sender, wire.digits(phone), signing.b64(text), str(int(length))]
    return signing.signed_get(account, "tools/sendSMSPinMobileNumberConfirm", values)


def parse_pin(response: httpx.Response) -> str:
    """The PIN Ogangi generated and sent; the caller keeps only its hash and never logs it."""
    pin = wire.checked(response, echo=False).findtext("result/PinSMSConfirmation/pin")
    if not pin or not pin.strip():
        raise VendorRetryable("ogangi sendSMSPinMobileNumberConfirm answered without a pin")
    return pin.strip()


def _detailed(result: base.Result, detail: str) -> base.Result:
    return replace(result, reason=f"{result.reason} ({detail[:200]})") if detail else result


def _route(account: base.Account, options: Mapping[str, Any]) -> tuple[str, str]:
    """(carrier, from) as path segments: the job's option, else the account's setting."""
    sender = options.get("from") or account.params.get("from")
    if not sender:
        raise ConfigError(f"account {account.key!r}: ogangi needs 'from' (a short or long code)")
    # 'null' lets the Campaign Manager pick the carrier (documented for sendMT).
    carrier = options.get("carrier") or account.params.get("carrier") or "null"
    return signing.segment(carrier), signing.segment(str(sender).lstrip("+"))
