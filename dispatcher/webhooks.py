"""The app vendors push to: ``/hooks/<account>/<secret>`` takes replies (MO) and delivery reports.

Only the vendor knows an account's URL: its last part is the account's ``webhook_secret``,
compared in constant time. A wrong or missing secret, an unknown account and an account with
no secret all get the same 403 and nothing is stored, so the answer tells a stranger nothing
about which accounts exist. How a vendor pushes (methods, body), what a push says and what body
it wants back are its adapter's ``PushReceiver`` ability. A malformed push gets 400 with the
reason, a body over ``MAX_BODY`` 413. Each push is stored once (``dispatcher.inbound``).
Serve it with ``dispatcher webhooks`` (uvicorn); the path holds a secret, so no access log.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from dispatcher.clock import SystemClock
from dispatcher.config import AccountConfig
from dispatcher.errors import TemplateError
from dispatcher.inbound import record_replies, record_statuses
from dispatcher.metrics import MetricsEndpoint
from dispatcher.redaction import scrub
from dispatcher.text import render
from dispatcher.vendors import adapter_for
from dispatcher.vendors.base import Inbound, StatusReport
from dispatcher.vendors.push import PushReceiver

log = logging.getLogger("dispatcher.webhooks")

#: largest push body read, in bytes
MAX_BODY = 64 * 1024
#: what an account without a secret is compared with, so every refusal costs the same
_NO_SECRET = secrets.token_urlsafe(32)
#: methods routed to the push handler; each vendor's own ``push_methods`` narrow them
_METHODS = ["GET", "POST"]


def handle_push(
    engine: Engine, config: AccountConfig, fields: Mapping[str, str], clock: SystemClock
) -> tuple[int, str]:
    """Parse one push for an account and store what it says; return (HTTP status, body)."""
    receiver = adapter_for(config.vendor)
    if not isinstance(receiver, PushReceiver):
        return 404, "this account's vendor pushes nothing"
    try:
        items = receiver.parse_push(fields)
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
        record_replies(engine, config.key, config.account.country, replies, now, config.replies)
    return 200, receiver.answer_push(items, keyword_reply(config, items, fields))


def keyword_reply(
    config: AccountConfig, items: Sequence[Inbound | StatusReport], fields: Mapping[str, str]
) -> str | None:
    """The account's auto-reply to a keyword push, filled with the push's fields; None if it has none."""
    keywords = [i.keyword for i in items if isinstance(i, Inbound) and i.keyword]
    template = config.replies.keyword_replies.get(keywords[0].strip().upper()) if keywords else None
    if template is None:
        return None
    try:
        return render(template, {name.lower(): value for name, value in fields.items()})
    except TemplateError as exc:
        log.warning("%s: keyword reply not sent: %s", config.key, exc)
        return None


def authorized(accounts: Mapping[str, AccountConfig], key: str, secret: str) -> AccountConfig | None:
    """The account this URL belongs to, or None; the secret is compared in constant time."""
    config = accounts.get(key)
    expected = (config.webhook_secret if config else None) or _NO_SECRET
    matches = hmac.compare_digest(secret.encode(), expected.encode())
    return config if matches and config is not None and config.webhook_secret else None


def make_app(engine: Engine, accounts: Mapping[str, AccountConfig], clock: SystemClock) -> Starlette:
    """Build the app over these accounts."""

    async def push(request: Request) -> Response:
        config = authorized(accounts, request.path_params["account"], request.path_params.get("secret", ""))
        if config is None:
            return PlainTextResponse("forbidden", 403)
        receiver = adapter_for(config.vendor)
        if isinstance(receiver, PushReceiver) and request.method not in receiver.push_methods:
            return PlainTextResponse(f"pushes here are {', '.join(sorted(receiver.push_methods))}", 405)
        raw = await _body(request)
        if raw is None:
            return PlainTextResponse(f"body over {MAX_BODY} bytes", 413)
        fields = dict(request.query_params)
        if raw:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if not isinstance(receiver, PushReceiver) or kind not in receiver.push_content_types:
                return PlainTextResponse(f"a push body cannot be {kind or 'untyped'}", 415)
            fields.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        status, body = await run_in_threadpool(handle_push, engine, config, fields, clock)
        return PlainTextResponse(body, status)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            # Prometheus scrapes this process (all of them with PROMETHEUS_MULTIPROC_DIR set).
            Route("/metrics", MetricsEndpoint()),
            Route("/hooks/{account}/{secret}", push, methods=_METHODS),
            # The old URL without a secret: refused like a wrong secret.
            Route("/hooks/{account}", push, methods=_METHODS),
        ]
    )


async def _body(request: Request) -> bytes | None:
    """The body, or None once it is over MAX_BODY (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
