"""The one place vendor requests go out: a sync httpx client with timeouts.

Exceptions are sorted by whether the request may have reached the vendor:
connect errors and pool timeouts never left (``RequestNotSent``, safe to retry); read and
write timeouts and broken replies may have been acted on (``VendorOutcomeUnknown``).
"""

from __future__ import annotations

import logging
import time

import httpx

from dispatcher.errors import RequestNotSent, VendorOutcomeUnknown

log = logging.getLogger("dispatcher.transport")
# httpx logs every full URL at INFO, and some vendors carry credentials in it (a balance query's
# parameters, a signed path); our own line above names only host and path.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class Transport:
    """Sends adapter-built requests; one per worker process, made after the fork."""

    def __init__(self, client: httpx.Client | None = None):
        self.client = client or httpx.Client(
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            headers={"User-Agent": "smsdispatch/0.1"},
        )

    def send(self, request: httpx.Request, connect_timeout: float, read_timeout: float) -> httpx.Response:
        """Send one request; raise RequestNotSent or VendorOutcomeUnknown when no reply came."""
        request.extensions["timeout"] = httpx.Timeout(
            read_timeout, connect=connect_timeout, pool=connect_timeout
        ).as_dict()
        started = time.monotonic()
        target = f"{request.method} {request.url.host}{request.url.path}"
        try:
            response = self.client.send(request)
        except _NOT_SENT as exc:
            raise RequestNotSent(f"{target} not sent: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise VendorOutcomeUnknown(f"{target} sent but no reply: {type(exc).__name__}") from None
        log.info(
            "vendor replied",
            extra={
                "target": target,
                "status": response.status_code,
                "ms": int((time.monotonic() - started) * 1000),
            },
        )
        return response

    def close(self) -> None:
        """Close pooled connections."""
        self.client.close()
