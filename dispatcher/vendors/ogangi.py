"""Ogangi Mobile Engagement Campaign Manager (Messangi), VE / US: the manual is seeds/004.

Every call is a GET whose path holds the method's values, then the public key and a signature::

    {base_url}/rest/api/tools/sendSMS/{instanceId}/{carrier}/{from}/{b64 mobile}/{b64 text}/{publicKey}/{sig}
    {base_url}/rest/api/sendMT/{instanceId}/{from}/{carrier}/{mobile}/{b64 text}[/{flags}]/{publicKey}/{sig}

One recipient per request. The signature (from the vendor's wiki; the seed only says "SHA256"):
HMAC-SHA256 keyed with the private key, lowercase hex, over the method's values joined by '/' as
they stand in the URL. base64 is URL-safe with its '=' padding kept. Every reply is one XML
envelope, printed by the manual without a root element (so both are read)::

    <input>sendSMS</input> <status>OK</status> <description>Completed</description>
    <result> <messages> <message> <id>-8174720676710228700</id> ...
      <status>SENT_TO_CARRIER</status> ... </message> </messages> </result>

Reports and replies are POSTed to the account's callback URL (``parse_push``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET  # noqa: S405 - DTDs are refused before parsing (see _envelope)
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

from dispatcher.errors import ConfigError, VendorAccountError, VendorRetryable
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
from dispatcher.vendors.pins import hash_pin
from dispatcher.vendors.push import FORM, PLAIN_OK

key = "ogangi"
# The seed writes {base_url}; this is the vendor wiki's. Each customer may have its own host.
default_base_url = "https://www.messangi.com/messangi_mmc"

A, R, X, P = Outcome.ACCEPTED, Outcome.RETRY, Outcome.REJECTED, Outcome.PAUSE_ACCOUNT
QUEUED, SENT = DeliveryState.QUEUED, DeliveryState.SENT
DELIVERED, FAILED = DeliveryState.DELIVERED, DeliveryState.FAILED

#: a message status word (the send reply's ``<message><status>``, a push's STATUS):
#: (outcome when the send reply carries it, delivery state when a report does, meaning)
MESSAGE_STATUS: dict[str, tuple[Outcome, DeliveryState, str]] = {
    "SENT": (A, SENT, "message sent to carrier"),
    "SENT_TO_CARRIER": (A, SENT, "sent to carrier"),
    "DELIVERED_TO_CARRIER": (A, SENT, "delivered to carrier"),
    "SENT_TO_DEVICE": (A, SENT, "message sent to device"),
    "DELIVERED_TO_DEVICE": (A, DELIVERED, "message delivered to device"),
    "READ": (A, DELIVERED, "the recipient has read the message"),
    "PENDING": (A, QUEUED, "no information about the message yet"),
    "SENDING": (A, QUEUED, "the message is sending to the recipient"),
    "EXPIRED": (X, FAILED, "maximum number of tries reached"),
    "UNREACHABLE": (X, FAILED, "unknown mobile number or device id"),
    # It says the message did not leave, so another try cannot duplicate it.
    "NOT_SENT": (R, FAILED, "the message could not be sent"),
    # Rejected, not paused: 'from' and 'carrier' may be one job's options, not the account's fault.
    "BAD_FROM": (X, FAILED, "message not sent: invalid 'from'"),
    "BAD_TO": (X, FAILED, "message not sent: invalid 'to'"),
    "BAD_ENCODING": (X, FAILED, "message not sent: invalid encoding"),
    "BAD_CARRIER/FROM": (X, FAILED, "message not sent: invalid 'carrier' or 'from'"),
    "UNDELIVERED": (X, FAILED, "message not delivered to device"),
    "NOT_ENOUGH_FUNDS": (P, FAILED, "message not sent: not enough funds"),
    # We send no time zone: the workspace's setting is wrong, so every message would fail.
    "BAD_TIMEZONE": (P, FAILED, "message not sent: invalid time zone (workspace setting)"),
    # Carrier (external entity) words, from the vendor's status appendix.
    "ACCEPTD": (A, SENT, "accepted by the carrier"),
    "BUFFRED": (A, SENT, "buffered by the carrier"),
    "DELIVERED TO CARRIER": (A, SENT, "delivered to the carrier"),
    "DELIVRD": (A, DELIVERED, "delivered to device by the carrier"),
    "CARRIER GATEWAY ERROR": (A, QUEUED, "carrier not responding; Ogangi re-attempts delivery"),
    "INTERNAL ERROR": (R, FAILED, "internal error; the customer is to retry"),
    "BAD ADDRESS": (X, FAILED, "invalid or incorrect destination address"),
    "INVALID ROUTING": (X, FAILED, "invalid or incorrect routing"),
    "REJECTD": (X, FAILED, "rejected by the carrier"),
    "UNDELIV": (X, FAILED, "undeliverable, says the carrier"),
    "DELETED": (X, FAILED, "deleted by the carrier"),
}

codes: dict[str, CodeRule] = {
    # The envelope's <status>.
    "OK": CodeRule(A, "completed"),
    "BAD_SIGNATURE": CodeRule(P, "invalid signature, access denied: check the public and private key"),
    "ERROR": CodeRule(R, "internal error at Ogangi"),
    **{word: CodeRule(outcome, meaning) for word, (outcome, _, meaning) in MESSAGE_STATUS.items()},
}

#: status word of a delivery report -> where the message stands
status_codes: dict[str, DeliveryState] = {word: state for word, (_, state, _) in MESSAGE_STATUS.items()}

# The seed documents no concatenation for these GET methods: one SMS part per message.
limits = Limits(batch_size=1, hard_max_recipients=1, min_interval=0.0, max_text_chars=160)

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
#: filters of getMOMessages' inline search string
MO_FILTERS = ("carrier", "to", "from", "keyword", "order")

_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


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


def check_recipient(recipient: Recipient, options: Mapping[str, Any]) -> str | None:
    """Nothing to refuse before a request: ogangi takes any international number."""
    return None


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """One SMS part: 160 GSM-7 characters, or 70 when the text needs UCS-2."""
    return limits.max_text_chars if is_gsm7(text) else 70


def sign(message: str, private_key: str) -> str:
    """HMAC-SHA256 of the signed path values, keyed with the private key, as lowercase hex."""
    return hmac.new(private_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def build_send(account: Account, outgoing: Outgoing) -> list[SendRequest]:
    """One signed GET per recipient, by ``tools/sendSMS`` (the default) or ``sendMT``."""
    options = outgoing.options
    chosen = options.get("method") or "sendSMS"
    # Checked options carry the path ("tools/sendSMS"); raw ones may carry the name ("sendSMS").
    method = chosen if chosen in METHODS.values() else METHODS.get(chosen, "tools/sendSMS")
    carrier, sender = _route(account, options)
    requests = []
    for recipient in outgoing.recipients:
        mobile, text = _digits(recipient.phone), _b64(recipient.text)
        if method == METHODS["pin"]:
            pin = build_pin(account, recipient.phone, recipient.text, options.get("pin_length", PIN_LENGTH))
            requests.append(SendRequest(pin, [recipient]))
            continue
        if method == "sendMT":
            values = [sender, carrier, mobile, text]
            values += [_segment(options["flags"])] if options.get("flags") else []
        else:
            values = [carrier, sender, _b64(mobile), text]
        requests.append(SendRequest(_signed(account, method, values), [recipient]))
    return requests


def parse_send(account: Account, sent: SendRequest, response: httpx.Response) -> list[Result]:
    """The recipient's result from the envelope's status, then the message's own status and id."""
    raise_for_status(response)
    recipient = sent.recipients[0]
    if "/sendSMSPinMobileNumberConfirm/" in sent.request.url.path:
        return [_pin_result(recipient, response)]
    envelope = _envelope(response)
    status = _text(envelope, "status")
    if status != "OK":
        return [_refusal(recipient, status, _text(envelope, "description"))]
    message = envelope.find("result/messages/message")
    vendor_id = _text(message, "id") if message is not None else ""
    if not vendor_id:
        if "/rest/api/sendMT/" in sent.request.url.path:
            # sendMT answers the bare envelope: accepted, under no id.
            return [Result(recipient.message_id, Outcome.ACCEPTED, code="OK")]
        return [Result(recipient.message_id, Outcome.UNKNOWN, code="OK", reason="ogangi said OK but gave no id")]
    word = _text(message, "status") or "OK"
    result = result_for_code(recipient, word, codes, key)
    if result.outcome is Outcome.ACCEPTED:
        return [replace(result, vendor_id=vendor_id, reason="")]
    return [_detailed(result, _text(message, "statusDescription"))]


def _refusal(recipient: Recipient, status: str, description: str) -> Result:
    # sendMT and the PIN have no message element: a word such as NOT_ENOUGH_FUNDS rides in the
    # ERROR envelope's description, and it decides (no funds pause the account, not a retry).
    word = description.strip().upper()
    if status == "ERROR" and word in codes:
        return _detailed(result_for_code(recipient, word, codes, key), description)
    return _detailed(result_for_code(recipient, status, codes, key), description)


def _pin_result(recipient: Recipient, response: httpx.Response) -> Result:
    envelope = _envelope(response, echo=False)
    status = _text(envelope, "status")
    if status != "OK":
        return _refusal(recipient, status, _text(envelope, "description"))
    # The PIN goes no further than this line: only its salted hash is kept.
    return Result(recipient.message_id, Outcome.ACCEPTED, code="OK", pin_hash=hash_pin(parse_pin(response)))


#: reports and replies are POSTed as a form to the account's callback URL
push_methods = frozenset({"POST"})
push_content_types = frozenset({FORM})


def parse_push(form: Mapping[str, str]) -> list[StatusReport | Inbound]:
    """One callback POST: a report (TYPE=SMS) or a reply (TYPE=MO_MESSAGE); other types carry none."""
    fields = {name.upper(): str(value) for name, value in form.items()}
    kind = fields.get("TYPE", "").strip().upper()
    if not kind:
        raise ValueError("ogangi callback without TYPE")
    if kind == "MO_MESSAGE":
        if "TEXT" not in fields:  # present, though a handset may send an empty text
            raise ValueError("ogangi callback without TEXT")
        return [Inbound(_e164(_field(fields, "FROM")), fields["TEXT"], to=fields.get("TO") or None)]
    if kind != "SMS":
        return []  # PUSH, EMAIL, FACEBOOK, geofences: not SMS
    word = _field(fields, "STATUS").upper()
    if word not in status_codes:
        raise ValueError(f"ogangi callback with undocumented STATUS {word!r}")
    phone = _e164(fields["TO"]) if fields.get("TO") else None
    return [StatusReport(_field(fields, "MESSANGI_ID"), status_codes[word], code=word, phone=phone)]


def answer_push(items: Sequence[Inbound | StatusReport], keyword_reply: str | None) -> str:
    """The manual asks for no particular answer: a plain OK."""
    return PLAIN_OK


def build_replies(
    account: Account, page: int, per_page: int = 100, filters: Mapping[str, str | Sequence[str]] | None = None
) -> httpx.Request:
    """One page of received messages (``tools/getMOMessages``), narrowed by the inline search string."""
    values = [str(int(page)), str(int(per_page)), search_string(filters or {})]
    return _signed(account, "tools/getMOMessages", values)


def search_string(filters: Mapping[str, str | Sequence[str]]) -> str:
    """``name=value&...``, several values by commas, URL-encoded; no filter reads ``order=asc``."""
    parts = []
    for name, value in filters.items():
        if name not in MO_FILTERS:
            raise ValueError(f"getMOMessages has no filter {name!r}")
        values = [value] if isinstance(value, str) else list(value)
        if name == "order" and any(v.lower() not in ("asc", "desc") for v in values):
            raise ValueError(f"order must be asc or desc, not {value!r}")
        values = [v.lower() for v in values] if name == "order" else values
        # Encoded like Java's URLEncoder (the manual writes ^OGANGI.* as %5EOGANGI.*).
        parts.append(f"{name}=" + ",".join(quote(v, safe="*") for v in values))
    # An empty path segment is not documented; a plain ascending order keeps pages stable.
    return "&".join(parts) or "order=asc"


def parse_replies(response: httpx.Response) -> list[Inbound]:
    """The replies (MO) of one getMOMessages page."""
    listing = _checked(response).find("result/MOMessageList")
    if listing is None:
        raise VendorRetryable("ogangi getMOMessages answered without a MOMessageList")
    replies = []
    for row in listing.iter("MOMessage"):
        phone, text = _text(row, "from"), row.findtext("text")
        if not phone or text is None:
            raise VendorRetryable("ogangi MOMessage lacks from or text")
        # The example's 'from' is the handset (the field table says otherwise; the example wins).
        keyword = _text(row, "keyword") or None
        at, to = _text(row, "sendDate") or None, _text(row, "to") or None
        replies.append(Inbound(_e164(phone), text, to=to, at=at, keyword=keyword))
    return replies


def build_pin(account: Account, phone: str, text: str, length: int = 6) -> httpx.Request:
    """Ask Ogangi to make a PIN and text it (``tools/sendSMSPinMobileNumberConfirm``)."""
    carrier, sender = _route(account, {})
    values = [carrier, sender, _digits(phone), _b64(text), str(int(length))]
    return _signed(account, "tools/sendSMSPinMobileNumberConfirm", values)


def parse_pin(response: httpx.Response) -> str:
    """The PIN Ogangi generated and sent; the caller keeps only its hash and never logs it."""
    pin = _checked(response, echo=False).findtext("result/PinSMSConfirmation/pin")
    if not pin or not pin.strip():
        raise VendorRetryable("ogangi sendSMSPinMobileNumberConfirm answered without a pin")
    return pin.strip()


def build_fire(account: Account, phone: str, text: str) -> httpx.Request:
    """Inject a reply (MO) as if the handset had sent it (``fireMessage``), e.g. from a web form."""
    return _signed(account, "fireMessage", [_digits(phone), _b64(text)])


def parse_fire(response: httpx.Response) -> Inbound:
    """The MO Ogangi took in, as it echoes it."""
    mo = _checked(response).find("result/mo")
    if mo is None or not _text(mo, "mobileNumber") or mo.findtext("text") is None:
        raise VendorRetryable("ogangi fireMessage answered without the mo it took")
    return Inbound(_e164(_text(mo, "mobileNumber")), mo.findtext("text") or "")


def _signed(account: Account, method: str, values: list[str]) -> httpx.Request:
    """A GET of ``method``: instance id and values, signed, then the public key and the signature."""
    signed = "/".join([_segment(account.params["instance_id"]), *values])
    signature = sign(signed, account.params["private_key"])
    url = f"{account.base_url.rstrip('/')}/rest/api/{method}/{signed}"
    return httpx.Request("GET", f"{url}/{_segment(account.params['public_key'])}/{signature}")


def _envelope(response: httpx.Response, echo: bool = True) -> ET.Element:
    """The element that holds ``<status>``, or VendorRetryable; ``echo=False`` keeps the body out."""
    body = short_body(response) if echo else "(body withheld)"
    text = _DECLARATION.sub("", response.text, count=1)
    # A DTD has no place in these replies and is how entity bombs get in.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise VendorRetryable(f"ogangi answered XML with a DTD: {body}")
    try:
        root = ET.fromstring(f"<reply>{text}</reply>")  # noqa: S314 - no DTD left to expand
    except ET.ParseError:
        raise VendorRetryable(f"ogangi answered something that is not XML: {body}") from None
    for element in (root, *root):
        if element.find("status") is not None:
            return element
    raise VendorRetryable(f"ogangi answered without a <status>: {body}")


def _checked(response: httpx.Response, echo: bool = True) -> ET.Element:
    """The envelope of a query that succeeded; BAD_SIGNATURE pauses, anything else is retried."""
    raise_for_status(response)
    envelope = _envelope(response, echo)
    status = _text(envelope, "status")
    if status == "OK":
        return envelope
    reason = f"ogangi {status or 'empty status'}: {_text(envelope, 'description')}"
    if status == "BAD_SIGNATURE":
        raise VendorAccountError(reason, status)
    raise VendorRetryable(reason, status or None)


def _detailed(result: Result, detail: str) -> Result:
    return replace(result, reason=f"{result.reason} ({detail[:200]})") if detail else result


def _route(account: Account, options: Mapping[str, Any]) -> tuple[str, str]:
    """(carrier, from) as path segments: the job's option, else the account's setting."""
    sender = options.get("from") or account.params.get("from")
    if not sender:
        raise ConfigError(f"account {account.key!r}: ogangi needs 'from' (a short or long code)")
    # 'null' lets the Campaign Manager pick the carrier (documented for sendMT).
    carrier = options.get("carrier") or account.params.get("carrier") or "null"
    return _segment(carrier), _segment(str(sender).lstrip("+"))


def _segment(value: object) -> str:
    return quote(str(value), safe="")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def _digits(phone: str) -> str:
    return phone.strip().lstrip("+")


def _e164(number: str) -> str:
    digits = number.strip().lstrip("+")
    return "+" + digits if digits.isdigit() else number.strip()


def _text(element: ET.Element | None, path: str) -> str:
    found = element.findtext(path) if element is not None else None
    return (found or "").strip()


def _field(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise ValueError(f"ogangi callback without {name}")
    return value


ABILITIES = Abilities(
    credentials=Credentials(
        required=("instance_id", "public_key", "private_key", "from"), secret=("private_key",)
    ),
    default_country="VE",
    # Replies come without a date or id, so one both pushed and polled could not be told apart:
    # only accounts that get no pushes (poll_replies = true) poll them.
    reply_query=Paged(lambda account, page: build_replies(account, page), parse_replies, pushed=True),
)
