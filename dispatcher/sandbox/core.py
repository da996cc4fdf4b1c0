"""The sandbox's HTTP server, request log and fault plan, shared by every simulated vendor."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from dispatcher.sandbox.skeleton import Simulator


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
    #: requests each vendor is answering right now, and the most it ever answered at once
    in_flight: Counter[str] = field(default_factory=Counter)
    peak_in_flight: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, vendor: str, request: SimRequest) -> None:
        with self.lock:
            self.requests.append((vendor, request))

    def arrived(self, vendor: str) -> None:
        """A request of the vendor is being answered (until ``answered``)."""
        with self.lock:
            self.in_flight[vendor] += 1
            self.peak_in_flight[vendor] = max(self.peak_in_flight[vendor], self.in_flight[vendor])

    def answered(self, vendor: str) -> None:
        with self.lock:
            self.in_flight[vendor] -= 1

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


class SandboxServer:
    """A threaded HTTP server on loopback routing ``/<vendor>/...`` to its simulator."""

    def __init__(
        self,
        simulators: Mapping[str, Simulator[Any]],
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
    ):
        self.simulators = dict(simulators)
        #: the address other hosts reach this server at (a container's service name), if not loopback
        self.public_url = public_url.rstrip("/") if public_url else None
        handler = _make_handler(self.simulators.get, self.summary)
        self.httpd = _Server((host, port), handler)
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


class _Server(ThreadingHTTPServer):
    #: connections waiting to be accepted: a sender with many requests in flight opens them at once
    request_queue_size = 256


def _make_handler(
    lookup: Callable[[str], Simulator[Any] | None], ledger_summary: Callable[[], dict[str, Any]]
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
            sim.ledger.arrived(vendor)
            try:
                self._answer(sim.dispatch(request))
            finally:
                sim.ledger.answered(vendor)

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
