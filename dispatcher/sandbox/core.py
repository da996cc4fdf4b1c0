"""The sandbox's HTTP server, request log and fault plan, shared by every simulated vendor."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dispatcher.clock import SystemClock


@dataclass
class SimRequest:
    """One request as a simulator sees it."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    at: float  #: time.monotonic() on arrival

    def params(self) -> dict[str, str]:
        """Query and form fields together (form wins)."""
        return {**self.query, **self.form}

    def json(self) -> Any:
        """The body as JSON, or None."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class SimResponse:
    """What a simulator answers."""

    status: int = 200
    body: str = ""
    content_type: str = "text/plain; charset=utf-8"
    delay: float = 0.0


@dataclass
class Faults:
    """Faults injected by configuration (rates are 0..1 per request)."""

    error_rate: float = 0.0  #: HTTP 500
    maintenance: bool = False  #: the vendor's maintenance answer on every request
    latency: float = 0.0  #: seconds before answering
    malformed_rate: float = 0.0  #: an HTML error page instead of the documented body
    seed: int = 7


@dataclass
class Ledger:
    """Every request, sends per phone, and limit violations, shared by all simulators."""

    requests: list[tuple[str, SimRequest]] = field(default_factory=list)
    sends: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, vendor: str, request: SimRequest) -> None:
        with self.lock:
            self.requests.append((vendor, request))

    def sent(self, phone: str) -> None:
        with self.lock:
            self.sends[phone] += 1

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def of(self, vendor: str, path_suffix: str = "") -> list[SimRequest]:
        """The requests a vendor got, optionally only those whose path ends so."""
        with self.lock:
            return [r for v, r in self.requests if v == vendor and r.path.endswith(path_suffix)]

    def duplicates(self) -> dict[str, int]:
        """Phones sent to more than once."""
        with self.lock:
            return {phone: n for phone, n in self.sends.items() if n > 1}


class Simulator:
    """Base of a simulated vendor: scripted answers first, then faults, then the manual."""

    key = ""
    #: whether the vendor reports a message reaching the handset; where not, "sent" is its last word
    handset_receipts = True

    def __init__(self, ledger: Ledger, clock: SystemClock | None = None, faults: Faults | None = None):
        self.ledger = ledger
        self.clock = clock or SystemClock()
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self._script: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def script(self, *steps: dict[str, Any]) -> None:
        """Answer the next requests as told: {'status': 500}, {'body': '-6'}, {'delay': 3}."""
        with self.lock:
            self._script.extend(steps)

    def now(self) -> datetime:
        return self.clock.now().astimezone(UTC)

    def dispatch(self, request: SimRequest) -> SimResponse:
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
            return SimResponse(200, "<html><body>Service Unavailable</body></html>", "text/html", faults.latency)
        response = self.handle(request)
        response.delay = max(response.delay, faults.latency)
        return response

    def handle(self, request: SimRequest) -> SimResponse:
        raise NotImplementedError


class SandboxServer:
    """A threaded HTTP server on loopback routing ``/<vendor>/...`` to its simulator."""

    def __init__(
        self,
        simulators: Mapping[str, Simulator],
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
    ):
        self.simulators = dict(simulators)
        #: the address other hosts reach this server at (a container's service name), if not loopback
        self.public_url = public_url.rstrip("/") if public_url else None
        handler = _make_handler(self.simulators.get, self.summary)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def summary(self) -> dict[str, Any]:
        """Requests per vendor, phones sent more than once, and limit violations (GET /_sandbox)."""
        ledgers = {id(sim.ledger): sim.ledger for sim in self.simulators.values()}
        requests: Counter[str] = Counter()
        duplicates: dict[str, int] = {}
        violations: list[str] = []
        for ledger in ledgers.values():
            with ledger.lock:
                requests.update(vendor for vendor, _ in ledger.requests)
                violations += ledger.violations
            duplicates.update(ledger.duplicates())
        return {"requests": dict(requests), "duplicates": duplicates, "violations": violations}

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, vendor: str) -> str:
        """The base URL an account of this vendor points at."""
        return f"{self.public_url or f'http://127.0.0.1:{self.port}'}/{vendor}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(
    lookup: Callable[[str], Simulator | None], ledger_summary: Callable[[], dict[str, Any]]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection, as the simple vendor APIs do

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            return

        def _serve(self) -> None:
            arrived = time.monotonic()
            parts = urlsplit(self.path)
            vendor, _, rest = parts.path.lstrip("/").partition("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            form: dict[str, str] = {}
            if "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if vendor == "_sandbox" and self.command == "GET":
                self._answer(SimResponse(200, json.dumps(ledger_summary()), "application/json"))
                return
            sim = lookup(vendor)
            if sim is None:
                self._answer(SimResponse(404, f"no simulated vendor {vendor!r}"))
                return
            request = SimRequest(
                self.command,
                "/" + rest,
                dict(parse_qsl(parts.query, keep_blank_values=True)),
                form,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                arrived,
            )
            self._answer(sim.dispatch(request))

        def _answer(self, response: SimResponse) -> None:
            if response.delay:
                time.sleep(response.delay)
            data = response.body.encode("utf-8")
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a read timeout being tested)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler


@dataclass(frozen=True)
class Progress:
    """How accepted messages progress, by the sandbox clock (seconds after acceptance)."""

    to_sent: float = 2.0  #: queued until then
    to_final: float = 5.0  #: sent until then, then delivered or failed
    delivered_rate: float = 0.9  #: share that ends delivered (the rest fail)
    reply_rate: float = 0.3  #: share of two-way messages that draw a reply
    stop_rate: float = 0.3  #: share of replies that are a stop word
    reply_after: float = 6.0  #: seconds after acceptance a reply arrives


@dataclass(frozen=True)
class SampleJob:
    """A job a sandbox customer takes whole: phones of its country, a text, its vendor's options."""

    prefix: str  #: country code and area every phone starts with
    text: str  #: a template; every recipient brings ``shop``
    count: int  #: recipients of the demo's job
    options: Mapping[str, str] = field(default_factory=dict)
    length: int = 13  #: characters of a whole E.164 number of the country, "+" included

    def job(self, account: str, count: int | None = None, first: int = 0) -> dict[str, Any]:
        """The job for ``account``: ``count`` recipients (the sample's by default), numbered from ``first``."""
        width = self.length - len(self.prefix)
        numbers = range(first, first + (self.count if count is None else count))
        # Numbers past the country's width wrap around: a long-running producer stays valid.
        recipients = [
            {"phone": f"{self.prefix}{n % 10**width:0{width}d}", "vars": {"shop": "Tienda Sol"}} for n in numbers
        ]
        return {"account": account, "text": self.text, "recipients": recipients, "options": dict(self.options)}


STOP_WORDS = ("SALIR", "STOP", "BAJA")
REPLY_WORDS = ("SI", "Gracias", "Confirmo", "Ok")


@dataclass
class SimMessage:
    """One message a simulator accepted, with its fate drawn at acceptance."""

    vendor_id: str
    phone: str  #: E.164
    text: str
    accepted_at: datetime
    delivered: bool
    reply: str | None = None  #: the handset's answer, if it will answer
    account: str = ""


class MessageStore:
    """Accepted messages and their progress; statuses and replies are read at a given time."""

    def __init__(self, progress: Progress | None = None, seed: int = 11):
        self.progress = progress or Progress()
        self.rng = random.Random(seed)
        self.messages: dict[str, SimMessage] = {}
        self.lock = threading.Lock()

    def accept(
        self, vendor_id: str, phone: str, text: str, now: datetime, two_way: bool, account: str = ""
    ) -> SimMessage:
        """Record an accepted message and draw its fate."""
        p = self.progress
        with self.lock:
            delivered = self.rng.random() < p.delivered_rate
            reply = None
            # Only a handset that got the message can answer it.
            if two_way and delivered and self.rng.random() < p.reply_rate:
                words = STOP_WORDS if self.rng.random() < p.stop_rate else REPLY_WORDS
                reply = self.rng.choice(words)
            message = SimMessage(vendor_id, phone, text, now, delivered, reply, account)
            self.messages[vendor_id] = message
            return message

    def state(self, message: SimMessage, now: datetime) -> str:
        """'queued', 'sent', 'delivered' or 'failed' at ``now``."""
        age = (now - message.accepted_at).total_seconds()
        if age < self.progress.to_sent:
            return "queued"
        if age < self.progress.to_final:
            return "sent"
        return "delivered" if message.delivered else "failed"

    def replies(self, now: datetime, account: str | None = None) -> list[SimMessage]:
        """Messages whose reply has arrived by ``now``."""
        after = self.progress.reply_after
        with self.lock:
            return [
                m
                for m in self.messages.values()
                if m.reply and (now - m.accepted_at).total_seconds() >= after and account in (None, m.account)
            ]

    def get(self, vendor_id: str) -> SimMessage | None:
        with self.lock:
            return self.messages.get(vendor_id)


@dataclass(order=True)
class Push:
    """A callback a simulated vendor makes to a customer's URL when its time comes."""

    at: datetime
    method: str = field(compare=False)
    url: str = field(compare=False)
    params: dict[str, str] = field(default_factory=dict, compare=False)  #: query string
    form: dict[str, str] = field(default_factory=dict, compare=False)  #: form body


class PushQueue:
    """Callbacks due by the sandbox clock, sent from a background thread; answers recorded."""

    def __init__(self, clock: SystemClock):
        self.clock = clock
        self.pending: list[Push] = []
        self.sent: list[tuple[Push, int | None]] = []  #: (push, HTTP status or None if unreachable)
        self.in_flight = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def schedule(self, push: Push) -> None:
        with self.lock:
            self.pending.append(push)

    def run_due(self) -> int:
        """Send every callback whose time has come; return how many."""
        import httpx

        now = self.clock.now()
        with self.lock:
            due = [p for p in self.pending if p.at <= now]
            self.pending = [p for p in self.pending if p.at > now]
            self.in_flight += len(due)
        with httpx.Client(timeout=5.0) as client:
            for push in sorted(due):
                try:
                    response = client.request(
                        push.method, push.url, params=push.params or None, data=push.form or None
                    )
                    status: int | None = response.status_code
                except httpx.HTTPError:
                    status = None
                with self.lock:
                    self.sent.append((push, status))
                    self.in_flight -= 1
        return len(due)

    def drained(self) -> bool:
        """Say whether every push due by now has been answered."""
        now = self.clock.now()
        with self.lock:
            return self.in_flight == 0 and not any(p.at <= now for p in self.pending)

    def start(self, interval: float = 0.2) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                self.run_due()

        self._thread = threading.Thread(target=loop, name="sandbox-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
