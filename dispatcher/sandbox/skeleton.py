"""The one skeleton every simulated vendor fills in: its customers, their authentication, its
replies and its dates.

A simulator is ``Sim(ledger, clock, faults, progress=..., pushes=...)``; its customers are
``sim.add_customer(key, secret, credit=..., callback_url=..., **settings)``, where ``key`` is who
the vendor knows the customer as (a user, an API key, a public key), ``secret`` what proves it
(a token, a password, a private key), and ``settings`` the vendor's own fields, typed by its
``Settings`` dataclass. A vendor module holds only its paths, codes and quirks, and declares its
customer in the sandbox world (``sandbox``: the account, its secret and its sample job).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar
from zoneinfo import ZoneInfo

from dispatcher.clock import SystemClock
from dispatcher.sandbox.core import Faults, Ledger, SimRequest, SimResponse
from dispatcher.sandbox.messages import MessageStore, Progress, PushQueue
from dispatcher.sandbox.samples import SandboxCustomer

S = TypeVar("S")

JSON_UTF8 = "application/json; charset=utf-8"


@dataclass
class Customer(Generic[S]):
    """A simulated vendor's customer: credentials, what it may spend, where pushes go, its settings."""

    key: str  #: who the vendor knows it as (user, API key, public key)
    secret: str  #: what proves it (token, API key, password, private key)
    credit: int | Decimal  #: what it may still spend, in the vendor's unit (messages, credits, USD)
    callback_url: str  #: where the vendor pushes replies and reports; "" for nowhere
    timezone: str  #: the zone of the wall clock its dates are written in
    settings: S  #: the vendor's own fields
    blocked: set[str] = field(default_factory=set)  #: numbers the vendor refuses for it


class Simulator(Generic[S]):
    """Base of a simulated vendor: scripted answers first, then faults, then the manual."""

    key = ""
    #: whether the vendor reports a message reaching the handset; where not, "sent" is its last word
    handset_receipts = True
    #: the vendor's own fields of a customer (a dataclass taking ``**settings``)
    settings_type: ClassVar[type] = dict
    #: a new customer's credit when none is given
    default_credit: ClassVar[Any] = 1_000_000
    #: the zone the vendor writes its dates in, unless the customer has its own
    timezone: ClassVar[str] = "UTC"
    #: the vendor's customer in the sandbox world (``world.py``): its account and sample job
    sandbox: ClassVar[SandboxCustomer]

    def __init__(
        self,
        ledger: Ledger,
        clock: SystemClock | None = None,
        faults: Faults | None = None,
        *,
        progress: Progress | None = None,
        pushes: PushQueue | None = None,
    ):
        self.ledger = ledger
        self.clock = clock or SystemClock()
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.store = MessageStore(progress)
        self.pushes = pushes
        self.customers: dict[str, Customer[S]] = {}
        self._script: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add_customer(
        self, key: str, secret: str, credit: Any = None, callback_url: str = "", **settings: Any
    ) -> Customer[S]:
        """Register a customer; ``settings`` are the vendor's own fields (a ``timezone`` among them)."""
        timezone = settings.pop("timezone", self.timezone)
        credit = self.default_credit if credit is None else credit
        # A vendor counting money keeps it exact: "1.00" stays one dollar.
        credit = Decimal(str(credit)) if isinstance(self.default_credit, Decimal) else int(credit)
        customer = Customer(key, secret, credit, callback_url, timezone, self.settings_type(**settings))
        self.customers[key] = customer
        return customer

    def join_sandbox(self, callback_url: str) -> Customer[S]:
        """Register the sandbox world's customer; its pushes go to ``callback_url`` if the vendor pushes."""
        c = self.sandbox
        return self.add_customer(c.key, c.secret, c.credit, callback_url if c.pushes else "", **c.settings)

    def sandbox_account(self, base_url: str) -> dict[str, Any]:
        """The accounts-file table of the sandbox customer, its secret a ``${VAR}`` reference."""
        return {"vendor": self.key, **self.sandbox.fields}

    def authenticate(self, key: str | None, secret: str) -> Customer[S] | None:
        """The customer these credentials open: by key and secret, or by the secret alone (key None)."""
        found = [c for c in self.customers.values() if key is None or c.key == key]
        return next((c for c in found if _same(c.secret, secret)), None)

    def script(self, *steps: dict[str, Any]) -> None:
        """Answer the next requests as told: {'status': 500}, {'body': '-6'}, {'delay': 3}."""
        with self.lock:
            self._script.extend(steps)

    def now(self) -> datetime:
        """The sandbox clock's time, in UTC."""
        return self.clock.now().astimezone(UTC)

    def local(self, when: datetime, customer: Customer[S] | None = None) -> datetime:
        """``when`` on the wall clock of the customer's zone (the vendor's own without a customer)."""
        return when.astimezone(ZoneInfo(customer.timezone if customer else self.timezone))

    def wall(self, when: datetime, customer: Customer[S] | None = None) -> datetime:
        """``when`` as :meth:`local` shows it, without its zone (as vendors write dates)."""
        return wall_clock(when, customer.timezone if customer else self.timezone)

    def dispatch(self, request: SimRequest) -> SimResponse:
        """Record the request and answer it: a scripted step, an injected fault, or the manual."""
        self.ledger.record(self.key, request)
        with self.lock:
            step = self._script.pop(0) if self._script else None
        if step is not None:
            if "status" in step or "body" in step:
                return SimResponse(step.get("status", 200), step.get("body", ""), delay=step.get("delay", 0.0))
            response = self.handle(request)
            response.delay = step.get("delay", 0.0)
            return response
        faults = self.faults
        if faults.error_rate and self.rng.random() < faults.error_rate:
            return SimResponse(500, "Internal Server Error", delay=faults.latency)
        if faults.malformed_rate and self.rng.random() < faults.malformed_rate:
            return html_reply("<html><body>Service Unavailable</body></html>", 200, faults.latency)
        response = self.handle(request)
        response.delay = max(response.delay, faults.latency)
        return response

    def handle(self, request: SimRequest) -> SimResponse:
        """The vendor's answer to a request, as its manual gives it."""
        raise NotImplementedError


def _same(expected: str, given: str) -> bool:
    # Compared as bytes in constant time: a request may carry any characters.
    return hmac.compare_digest(expected.encode(), given.encode())


def bearer_token(request: SimRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def basic_credentials(request: SimRequest) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic`` header, or None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, binascii.Error):
        return None
    return (user, password) if scheme.lower() == "basic" else None


def json_reply(
    body: Any, status: int = 200, content_type: str = JSON_UTF8, ascii_only: bool = False
) -> SimResponse:
    """A JSON answer, accents written as they are unless ``ascii_only``."""
    return SimResponse(status, json.dumps(body, ensure_ascii=ascii_only), content_type)


def plain_reply(text: str, status: int = 200) -> SimResponse:
    """A plain-text answer."""
    return SimResponse(status, text)


def html_reply(page: str, status: int, delay: float = 0.0) -> SimResponse:
    """An HTML page, as a web server in front of the API answers."""
    return SimResponse(status, page, "text/html", delay)


def xml_reply(body: str, status: int = 200) -> SimResponse:
    """An XML answer."""
    return SimResponse(status, body, "application/xml")


def wall_clock(when: datetime, zone: str) -> datetime:
    """``when`` on the wall clock of ``zone``, without its zone (as vendors write dates)."""
    return when.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def read_date(text: Any, *layouts: str) -> datetime | None:
    """``text`` read by the first layout that fits (naive), or None when none does."""
    for layout in layouts:
        try:
            return datetime.strptime(str(text), layout)
        except ValueError:
            continue
    return None
