"""The app vendors push to: ``/hooks/<account>/<secret>`` takes replies (MO) and delivery reports.

Only the vendor knows an account's URL: its last part is the account's ``webhook_secret``,
compared in constant time. A wrong or missing secret, an unknown account and an account with
no secret all get the same 403 and nothing is stored, so the answer tells a stranger nothing
about which accounts exist. How a vendor pushes (methods, body), what a push says and what body
it wants back are its adapter's ``PushReceiver`` ability. A malformed push gets 400 with the
reason, a body over ``MAX_BODY`` 413. Each push is stored once (``dispatcher.inbound``). The
delivery reports of pushes arriving together are committed in one transaction (``ReportGroups``),
and each push is answered only once its own reports are committed.
Serve it with ``dispatcher webhooks`` (uvicorn); the path holds a secret, so no access log.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import TypeAlias
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
from dispatcher.inbound import record_replies, record_statuses, store_statuses
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
#: transactions storing pushed reports at once, per app process
WRITERS = 2
#: methods routed to the push handler; each vendor's own ``push_methods`` narrow them
_METHODS = ["GET", "POST"]


class PushRefused(Exception):
    """A push that is not read: its HTTP status and the reason (no secret in it)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def read_push(
    config: AccountConfig, fields: Mapping[str, str]
) -> tuple[PushReceiver, list[Inbound | StatusReport]]:
    """The account's vendor and what one push says; PushRefused (404, 400) when it cannot be read."""
    receiver = adapter_for(config.vendor)
    if not isinstance(receiver, PushReceiver):
        raise PushRefused(404, "this account's vendor pushes nothing")
    try:
        return receiver, list(receiver.parse_push(fields))
    except ValueError as exc:
        reason = scrub(str(exc), config.account.secrets())
        log.warning("%s: push refused: %s", config.key, reason)
        raise PushRefused(400, reason) from exc


class ReportGroups:
    """Delivery reports of concurrent pushes, committed together: one transaction for all the
    reports that arrived while the writers were busy (group commit). ``WRITERS`` transactions run
    at once, so one group's statements overlap another's commit.

    ``store`` returns once its own reports are committed, so a push is answered 200 only after
    what it said is in the database; if the transaction fails, each push of the group is stored
    alone, and a push whose own store fails gets the error (500: the vendor sends it again).
    """

    def __init__(self, engine: Engine, clock: SystemClock):
        self.engine, self.clock = engine, clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[_Waiting] = []
        self._writers = 0

    async def store(self, account: str, reports: Sequence[StatusReport]) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (the app served again): nothing carries over
            self._loop, self._waiting, self._writers = loop, [], 0
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((account, reports, done))
        if self._writers < WRITERS:
            self._writers += 1
            loop.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                failures = await run_in_threadpool(self._write, group)
                for (_, _, done), failure in zip(group, failures, strict=True):
                    if done.done():
                        continue  # its request went away
                    if failure is None:
                        done.set_result(None)
                    else:
                        done.set_exception(failure)
        finally:
            self._writers -= 1

    def _write(self, group: list[_Waiting]) -> list[Exception | None]:
        """Store a group in one transaction, else each push alone; each push's error or None."""
        now = self.clock.now()
        try:
            with self.engine.begin() as conn:
                for account, reports, _ in sorted(group, key=lambda waiting: waiting[0]):
                    store_statuses(conn, account, reports, now)
            return [None] * len(group)
        except Exception as exc:  # noqa: BLE001 - each push then learns its own fate
            if len(group) == 1:
                return [exc]
            log.warning("a group of %d pushes failed (%s): storing each alone", len(group), type(exc).__name__)
        failures: list[Exception | None] = []
        for account, reports, _ in group:
            try:
                record_statuses(self.engine, account, reports, now)
                failures.append(None)
            except Exception as exc:  # noqa: BLE001
                failures.append(exc)
        return failures


#: one push waiting for its reports to be committed: account, reports, and what it awaits
_Waiting: TypeAlias = "tuple[str, Sequence[StatusReport], asyncio.Future[None]]"


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
    groups = ReportGroups(engine, clock)

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
        try:
            pusher, items = read_push(config, fields)
        except PushRefused as refused:
            return PlainTextResponse(refused.reason, refused.status)
        reports = [i for i in items if isinstance(i, StatusReport)]
        replies = [i for i in items if isinstance(i, Inbound)]
        if reports:
            await groups.store(config.key, reports)
        if replies:
            country, rules = config.account.country, config.replies
            await run_in_threadpool(record_replies, engine, config.key, country, replies, clock.now(), rules)
        return PlainTextResponse(pusher.answer_push(items, keyword_reply(config, items, fields)))

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
