"""The vendor adapter protocol: limits, the outcome vocabulary, and the one HTTP-status helper.

An adapter is sans-I/O: it turns outgoing recipients into ``httpx.Request`` objects and an
``httpx.Response`` into one ``Result`` per recipient. It opens no connection and reads no clock;
the sender (``dispatcher.sending``) runs the requests, decides retries and records states.

A per-phone rejection is data (a ``Result``); an adapter raises a ``VendorError`` only when the
whole request failed, and then only through ``raise_for_status`` or ``VendorRetryable`` for a
body that cannot be read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from dispatcher.errors import (
    VendorAccountError,
    VendorBusy,
    VendorRejectedRequest,
    VendorRetryable,
)

if TYPE_CHECKING:
    # abilities.py builds on the records below; the protocol only names its type
    from dispatcher.vendors.abilities import Abilities


class Outcome(enum.StrEnum):
    """What one recipient's reply means, the same words for every vendor."""

    ACCEPTED = "accepted"  #: the vendor took it; ``vendor_id`` says under which id
    RETRY = "retry"  #: transient: try again later with backoff, spending one of the attempts
    #: nothing was sent and the vendor says come back later (maintenance, connect error, too many
    #: numbers in one request): try again with backoff, no attempt spent; the message's age bounds it
    DEFER = "defer"
    WAIT_WINDOW = "wait_window"  #: outside the legal sending hours: wait for the next opening
    REJECTED = "rejected"  #: refused for good (bad number, text, blocklist, content)
    PAUSE_ACCOUNT = "pause_account"  #: no credit or bad credentials: the account waits
    UNKNOWN = "unknown"  #: the request may have been sent; never resent blindly


@dataclass(frozen=True)
class CodeRule:
    """One documented vendor code: what it means and which outcome it maps to."""

    outcome: Outcome
    meaning: str
    #: the vendor refuses this number because its owner asked it to: opt it out of the account
    opt_out: bool = False
    #: the request carried more numbers than the vendor takes: send them again in smaller requests
    split: bool = False


@dataclass(frozen=True)
class Limits:
    """What a vendor allows, as data the planner and the sender read."""

    #: recipients in one request, as the vendor recommends
    batch_size: int
    #: recipients in one request beyond which the vendor refuses the whole request
    hard_max_recipients: int
    #: seconds between two requests of one account (0: no documented pause)
    min_interval: float
    #: characters of one message's text
    max_text_chars: int


@dataclass(frozen=True)
class Account:
    """One configured vendor account: the key names it in tasks, the rest never leaves here."""

    key: str
    vendor: str
    base_url: str
    #: ISO country code used for national numbers and default windows
    country: str
    #: credentials and vendor settings (user, token, api_key, ...); secret values included
    params: Mapping[str, str] = field(default_factory=dict)
    #: names of ``params`` whose values are secret (never logged)
    secret_fields: frozenset[str] = frozenset()

    def secrets(self) -> list[str]:
        """Return the secret values, for log scrubbing and leak checks."""
        return [self.params[name] for name in self.secret_fields if self.params.get(name)]

    def __repr__(self) -> str:
        return f"Account(key={self.key!r}, vendor={self.vendor!r})"


@dataclass(frozen=True)
class Recipient:
    """One message to send: its row id, address and final text."""

    message_id: int
    #: E.164 phone, or the email address on the email channel
    address: str
    text: str
    vars: Mapping[str, str] = field(default_factory=dict)
    #: the job's ``{name}`` template ``text`` was rendered from, with ``vars``; None where unknown. A
    #: vendor that fills fields on its side may send it once for many recipients, never changing
    #: the text any of them gets.
    template: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """Recipients one account sends in one go, with the job's vendor options.

    Not the database's ``models.Batch``: that row is the unit a send task claims; this is what one
    ``build_send`` call turns into requests (part of a batch, or all of it).
    """

    recipients: Sequence[Recipient]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendRequest:
    """One HTTP request and the recipients it carries."""

    request: httpx.Request
    recipients: Sequence[Recipient]


@dataclass(frozen=True)
class Result:
    """One recipient's outcome as parsed from a vendor reply."""

    message_id: int
    outcome: Outcome
    vendor_id: str | None = None
    code: str | None = None
    reason: str = ""
    #: a salted hash of a PIN the vendor generated (OTP); never the PIN itself
    pin_hash: str | None = None
    #: the vendor says this number's owner asked not to be sent to: opt it out of the account
    opt_out: bool = False
    #: the vendor says the request carried too many numbers: send them again in smaller requests
    split: bool = False


class Adapter(Protocol):
    """What every vendor provides: ``dispatcher/vendors/<key>`` (a module or a package) is one.

    The registry types each vendor with this protocol, so a vendor that misses a member or
    changes a signature fails the type check. What a vendor can do beyond sending is data in
    ``ABILITIES``; pushes are the ``push.PushReceiver`` protocol.
    """

    @property
    def key(self) -> str:
        """The vendor key accounts name."""
        ...

    @property
    def default_base_url(self) -> str:
        """Where the vendor's API lives unless an account says otherwise."""
        ...

    @property
    def limits(self) -> Limits:
        """How many recipients, how often, how long a text."""
        ...

    @property
    def codes(self) -> Mapping[str, CodeRule]:
        """Every documented vendor code and the outcome it maps to."""
        ...

    @property
    def ABILITIES(self) -> Abilities:  # upper case: a module-level constant of the vendor
        """What the vendor can do beyond sending: credentials, channels, queries."""
        ...

    def validate_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Return the job's vendor options checked, or raise ValueError naming the bad one."""
        ...

    def text_limit(self, text: str, options: Mapping[str, Any]) -> int:
        """Return how many characters this text may have with these options."""
        ...

    def check_recipient(self, recipient: Recipient, options: Mapping[str, Any]) -> str | None:
        """Return why this recipient cannot go through this vendor, or None; no request is made."""
        ...

    def build_send(self, account: Account, outgoing: Outgoing) -> list[SendRequest]:
        """Return the requests that send these recipients."""
        ...

    def parse_send(self, account: Account, sent: SendRequest, response: httpx.Response) -> list[Result]:
        """Return one result per recipient of ``sent``; raise VendorError if the request failed."""
        ...


def raise_for_status(response: httpx.Response) -> None:
    """Map a failed HTTP status onto the error tree; the one place that does so."""
    status = response.status_code
    if status < 400:
        return
    reason = f"HTTP {status}: {short_body(response)}"
    if status == 429:
        raise VendorBusy(reason, str(status), retry_after=retry_after_seconds(response))
    if status >= 500:
        raise VendorRetryable(reason, str(status))
    if status in (401, 403):
        raise VendorAccountError(reason, str(status))
    raise VendorRejectedRequest(reason, str(status))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Return Retry-After in seconds when it is a number."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def short_body(response: httpx.Response, limit: int = 200) -> str:
    """Return the start of a response body, on one line, for error reasons."""
    text = response.text.strip().replace("\n", " ").replace("\r", " ")
    return text[:limit] + ("…" if len(text) > limit else "")


def result_for_code(
    recipient: Recipient,
    code: str,
    codes: Mapping[str, CodeRule],
    vendor: str,
    undocumented: Outcome = Outcome.RETRY,
) -> Result:
    """Map a documented code onto a Result; an undocumented one gets ``undocumented``, kept raw.

    A vendor that carries many numbers in one request passes ``Outcome.UNKNOWN``: a code its
    manual does not list proves nothing about whether that number went out, so it is never resent.
    """
    rule = codes.get(code)
    if rule is None:
        return Result(
            recipient.message_id, undocumented, code=code, reason=f"{vendor} answered undocumented code {code!r}"
        )
    reason = f"{vendor} {code}: {rule.meaning}"
    return Result(
        recipient.message_id, rule.outcome, code=code, reason=reason, opt_out=rule.opt_out, split=rule.split
    )


class DeliveryState(enum.StrEnum):
    """Where a sent message stands according to the vendor's delivery report."""

    QUEUED = "queued"  #: the vendor still holds it
    SENT = "sent"  #: handed to the carrier
    DELIVERED = "delivered"  #: the handset got it
    FAILED = "failed"  #: it will not arrive


@dataclass(frozen=True)
class StatusReport:
    """One delivery report (DLR), polled or pushed."""

    vendor_id: str
    state: DeliveryState
    code: str | None = None
    phone: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class Inbound:
    """One reply (MO) from a handset, polled or pushed."""

    phone: str
    text: str
    vendor_id: str | None = None
    to: str | None = None
    at: str | None = None
    keyword: str | None = None


@dataclass(frozen=True)
class Balance:
    """An account's remaining credit as the vendor reports it."""

    credit: float
