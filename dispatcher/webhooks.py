"""The ASGI app vendors push to: ``/hooks/<account>`` takes replies (MO) and delivery reports.

IT Cloud pushes replies as GET ``mensaje``, ``celular``; smsclouds as GET ``response``,
``cellphone``, ... and wants the body ``ok``; voipcomms POSTs replies to the 2-way number's URL;
Ogangi POSTs both reports and replies. Each push goes through its adapter's ``parse_push`` and
is stored once (``dispatcher.inbound``). Serve it with ``dispatcher webhooks`` (uvicorn).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Engine

from dispatcher.clock import SystemClock
from dispatcher.config import AccountConfig
from dispatcher.inbound import record_replies, record_statuses
from dispatcher.redaction import scrub
from dispatcher.vendors import adapter_for
from dispatcher.vendors.base import Inbound, StatusReport

log = logging.getLogger("dispatcher.webhooks")

#: the body each vendor expects back (smsclouds' manual asks for "ok")
ACK = {"smsclouds": "ok"}
#: largest push body read, in bytes
MAX_BODY = 64 * 1024

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]
]


def handle_push(
    engine: Engine, config: AccountConfig, fields: Mapping[str, str], clock: SystemClock
) -> tuple[int, str]:
    """Parse one push for an account and store what it says; return (HTTP status, body)."""
    adapter = adapter_for(config.vendor)
    if not hasattr(adapter, "parse_push"):
        return 404, f"{config.vendor} pushes nothing here"
    try:
        items = adapter.parse_push(fields)
    except ValueError as exc:
        reason = scrub(str(exc), config.account.secrets())
        log.warning("%s: push refused: %s", config.key, reason)
        return 400, reason
    now = clock.now()
    reports = [i for i in items if isinstance(i, StatusReport)]
    replies = [i for i in items if isinstance(i, Inbound)]
    if reports:
        record_statuses(engine, config.key, reports, now)
    if replies:
        record_replies(engine, config.key, config.account.country, replies, now)
    return 200, ACK.get(config.vendor, "OK")


def make_app(engine: Engine, accounts: Mapping[str, AccountConfig], clock: SystemClock) -> ASGIApp:
    """Build the ASGI app over these accounts."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        status, body = await _route(scope, receive)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": body.encode()})

    async def _route(scope: dict[str, Any], receive: Any) -> tuple[int, str]:
        parts = scope["path"].strip("/").split("/")
        if parts == ["healthz"]:
            return 200, "ok"
        if len(parts) != 2 or parts[0] != "hooks" or parts[1] not in accounts:
            return 404, "not found"
        raw = await _body(receive)
        if raw is None:
            return 413, "body too large"
        fields = dict(parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True))
        fields.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return await asyncio.to_thread(handle_push, engine, accounts[parts[1]], fields, clock)

    return app


async def _body(receive: Any) -> bytes | None:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)
