"""Ogangi on the wire: its status words and codes, and the XML envelope every reply comes in.

Every reply is one envelope, printed by the manual without a root element (so both are read)::

    <input>sendSMS</input> <status>OK</status> <description>Completed</description>
    <result> <messages> <message> <id>-8174720676710228700</id> ...
      <status>SENT_TO_CARRIER</status> ... </message> </messages> </result>
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - DTDs are refused before parsing (see envelope)

import httpx

from dispatcher.errors import VendorAccountError, VendorRetryable
from dispatcher.vendors import base

key = "ogangi"

A, R, X, P = base.Outcome.ACCEPTED, base.Outcome.RETRY, base.Outcome.REJECTED, base.Outcome.PAUSE_ACCOUNT
QUEUED, SENT = base.DeliveryState.QUEUED, base.DeliveryState.SENT
DELIVERED, FAILED = base.DeliveryState.DELIVERED, base.DeliveryState.FAILED

#: a message status word (the send reply's ``<message><status>``, a push's STATUS):
#: (outcome when the send reply carries it, delivery state when a report does, meaning)
MESSAGE_STATUS: dict[str, tuple[base.Outcome, base.DeliveryState, str]] = {
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

codes: dict[str, base.CodeRule] = {
    # The envelope's <status>.
    "OK": base.CodeRule(A, "completed"),
    "BAD_SIGNATURE": base.CodeRule(P, "invalid signature, access denied: check the public and private key"),
    "ERROR": base.CodeRule(R, "internal error at Ogangi"),
    **{word: base.CodeRule(outcome, meaning) for word, (outcome, _, meaning) in MESSAGE_STATUS.items()},
}

#: status word of a delivery report -> where the message stands
status_codes: dict[str, base.DeliveryState] = {word: state for word, (_, state, _) in MESSAGE_STATUS.items()}

# The seed documents no concatenation for these GET methods: one SMS part per message.
limits = base.Limits(batch_size=1, hard_max_recipients=1, min_interval=0.0, max_text_chars=160)

_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def envelope(response: httpx.Response, echo: bool = True) -> ET.Element:
    """The element that holds ``<status>``, or VendorRetryable; ``echo=False`` keeps the body out."""
    body = base.short_body(response) if echo else "(body withheld)"
    text = _DECLARATION.sub("", response.text, count=1)
    # A DTD has no place in these replies and is how entity bombs get in.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise VendorRetryable(f"ogangi answered XML with a DTD: {body}")
    try:
        root = ET.fromstring(f"<reply>{text}</reply>")  # noqa: S314 - no DTD left to expand
    except ET.ParseError:
        raise VendorRetryable(f"ogangi answered something that is not XML: {body}") from None
    candidates: list[ET.Element] = [root, *root]
    for element in candidates:
        if element.find("status") is not None:
            return element
    raise VendorRetryable(f"ogangi answered without a <status>: {body}")


def checked(response: httpx.Response, echo: bool = True) -> ET.Element:
    """The envelope of a query that succeeded; BAD_SIGNATURE pauses, anything else is retried."""
    base.raise_for_status(response)
    found = envelope(response, echo)
    status = text_of(found, "status")
    if status == "OK":
        return found
    reason = f"ogangi {status or 'empty status'}: {text_of(found, 'description')}"
    if status == "BAD_SIGNATURE":
        raise VendorAccountError(reason, status)
    raise VendorRetryable(reason, status or None)


def text_of(element: ET.Element | None, path: str) -> str:
    """The stripped text at ``path`` under an element, or "" when either is missing."""
    found = element.findtext(path) if element is not None else None
    return (found or "").strip()


def digits(phone: str) -> str:
    """An E.164 number as the digits Ogangi's paths take (no '+')."""
    return phone.strip().lstrip("+")


def e164(number: str) -> str:
    """A number Ogangi gave as E.164; anything not all digits is kept as given (a short code's name)."""
    bare = number.strip().lstrip("+")
    return "+" + bare if bare.isdigit() else number.strip()
