"""The one place vendor requests go out: a sync httpx client with timeouts, and its async
counterpart for the requests of one task that go out concurrently.

Exceptions are sorted by whether the request may have reached the vendor (``_sorted``, for
both): connect errors and pool timeouts never left (``RequestNotSent``, safe to retry); read and
write timeouts and broken replies may have been acted on (``VendorOutcomeUnknown``).
"""

from __future__ import annotations

import logging
import time

import httpx

from dispatcher.errors import RequestNotSent, VendorError, VendorOutcomeUnknown

log = logging.getLogger("dispatcher.transport")
# httpx logs every full URL at INFO, and some vendors carry credentials in it (a balance query's
# parameters, a signed path); our own line above names only host and path.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
#: connections of one process (sync) or one task (async) to the vendors
MAX_CONNECTIONS = 20
_HEADERS = {"User-Agent": "smsdispatch/0.1"}


class Transport:
    """Sends adapter-built requests; one per worker process, made after the fork."""

    def __init__(self, client: httpx.Client | None = None):
        self.client = client or httpx.Client(
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=10),
            headers=_HEADERS,
        )

    def send(self, request: httpx.Request, connect_timeout: float, read_timeout: float) -> httpx.Response:
        """Send one request; raise RequestNotSent or VendorOutcomeUnknown when no reply came."""
        _time_out(request, connect_timeout, read_timeout)
        started = time.monotonic()
        try:
            response = self.client.send(request)
        except httpx.TransportError as exc:
            raise _sorted(request, exc) from None
        _replied(request, response, started)
        return response

    def close(self) -> None:
        """Close pooled connections."""
        self.client.close()


class AsyncTransport:
    """The async counterpart of ``Transport``: made inside the event loop that uses it, closed with it."""

    def __init__(self, connections: int = MAX_CONNECTIONS, client: httpx.AsyncClient | None = None):
        self.client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers=_HEADERS,
        )

    async def send(self, request: httpx.Request, connect_timeout: float, read_timeout: float) -> httpx.Response:
        """Send one request; raise RequestNotSent or VendorOutcomeUnknown when no reply came."""
        _time_out(request, connect_timeout, read_timeout)
        started = time.monotonic()
        try:
            response = await self.client.send(request)
        except httpx.TransportError as exc:
            raise _sorted(request, exc) from None
        _replied(request, response, started)
        return response

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.client.aclose()


def _time_out(request: httpx.Request, connect_timeout: float, read_timeout: float) -> None:
    request.extensions["timeout"] = httpx.Timeout(
        read_timeout, connect=connect_timeout, pool=connect_timeout
    ).as_dict()


def _target(request: httpx.Request) -> str:
    # Host and path only: some vendors carry credentials in the query or the rest of the URL.
    return f"{request.method} {request.url.host}{request.url.path}"


def _sorted(request: httpx.Request, exc: httpx.TransportError) -> VendorError:
    """The error a transport failure stands for: never sent, or sent with no reply."""
    if isinstance(exc, _NOT_SENT):
        return RequestNotSent(f"{_target(request)} not sent: {type(exc).__name__}")
    return VendorOutcomeUnknown(f"{_target(request)} sent but no reply: {type(exc).__name__}")


def _replied(request: httpx.Request, response: httpx.Response, started: float) -> None:
    log.info(
        "vendor replied",
        extra={
            "target": _target(request),
            "status": response.status_code,
            "ms": int((time.monotonic() - started) * 1000),
        },
    )
