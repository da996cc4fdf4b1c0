"""A batch of a one-number vendor: its requests go out concurrently, each still claimed on its own.

A vendor that takes one number a request (``Limits.hard_max_recipients == 1``) and asks for no
pause between requests is slow one request after another: the wire's latency, not our work, sets
the pace. Such a batch's due rows go out here through an ``httpx.AsyncClient``, with up to the
account's ``max_in_flight`` requests in the air at once across every worker process (a
``Limiter`` flight each: a Redis lease that runs out if its worker dies). The rest is the
sequential sender's (``dispatcher.sending``, ``dispatcher.exchange``):

- each request is claimed on its own (``exchange.claim``: pending → sending, conditional) just
  before it leaves, and its answer is recorded through ``outcomes.record`` (``exchange``'s store,
  which tries again while the database is away). A row another task holds, or a canceled one,
  is not claimed and not sent;
- an exception after a claim (the soft time limit among them) makes the rows of every request
  in the air ``unknown`` at once, never resent blindly; rows not yet claimed stay pending;
- requests start only within the task's send budget, and the due rows are read again every few
  rounds, so that a paused account, a canceled job, a closing window or a deadline is seen soon.

The database work runs on the event loop's own thread, between two awaits: a claim either
commits before its request leaves or does not happen at all, so the soft limit, raised in that
thread, can never leave a claim finishing in another one behind it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from dispatcher import account_state, exchange, metrics, sending
from dispatcher.config import AccountConfig
from dispatcher.errors import VendorError
from dispatcher.outcomes import Claimed
from dispatcher.services import Services
from dispatcher.transport import AsyncTransport
from dispatcher.vendors import adapter_for
from dispatcher.vendors import base as vendor_base

log = logging.getLogger("dispatcher.sending")

#: requests planned from one reading of the due rows, per place in flight (then they are read again)
ROUNDS_PER_READ = 4
#: seconds between two looks at the account's flights while other tasks hold all of them
FLIGHT_POLL = 0.02
#: seconds between two looks at whether another task paused the account
PAUSE_CHECK = 1.0
#: seconds a flight's lease outlives the longest request, as the slot's lease does
LEASE_MARGIN = 5.0


def applies(config: AccountConfig) -> bool:
    """Whether the batches go out concurrently: one number a request, no pause, more than one in flight."""
    limits = adapter_for(config.vendor).limits
    return limits.hard_max_recipients == 1 and limits.min_interval == 0 and config.policy.max_in_flight > 1


def send_batch(
    ctx: Services,
    config: AccountConfig,
    batch_id: int,
    options: Mapping[str, Any],
    report: sending.SendReport,
    started: datetime,
) -> sending.SendReport:
    """Send the batch's due rows, up to ``max_in_flight`` at once, within the task's budget; then settle it."""
    flights = _Flights(ctx, config, batch_id, options, report, started)
    try:
        hold = asyncio.run(flights.run())
    except BaseExceptionGroup as group:
        # A request's own failure (the soft limit in its step, the database): raise it as itself.
        raise group.exceptions[0] from None
    return sending._settle(ctx, batch_id, report, hold)


class _Flights:
    """One task's run: reads the due rows, claims and starts their requests, records the answers."""

    def __init__(
        self,
        ctx: Services,
        config: AccountConfig,
        batch_id: int,
        options: Mapping[str, Any],
        report: sending.SendReport,
        started: datetime,
    ):
        self.ctx, self.config, self.batch_id, self.options = ctx, config, batch_id, options
        self.report, self.started = report, started
        self.adapter = adapter_for(config.vendor)
        policy = config.policy
        self.cap = policy.max_in_flight
        self.lease = policy.connect_timeout + policy.read_timeout + LEASE_MARGIN
        #: rows claimed whose answer is not stored yet: unknown if this run breaks
        self.in_air: dict[int, Claimed] = {}
        self.running: set[asyncio.Task[None]] = set()
        self.paused = False
        self.pause_checked = time.monotonic()

    async def run(self) -> float | None:
        """Send until nothing is due, the budget is spent or the account pauses; return the batch's hold."""
        self.places = asyncio.Semaphore(self.cap)
        self.transport = AsyncTransport(connections=self.cap)
        try:
            async with asyncio.TaskGroup() as group:
                return await self._send_due(group)
        except BaseException as exc:
            # Whatever broke (the soft time limit, a bug, the database), each request in the air
            # may have reached the vendor: its rows are unknown, never resent blindly.
            if self.in_air:
                exchange._abandon(self.ctx, self.config, list(self.in_air), exc)
            raise
        finally:
            await self.transport.aclose()

    async def _send_due(self, group: asyncio.TaskGroup) -> float | None:
        ctx, config = self.ctx, self.config
        while True:
            now = ctx.clock.now()
            with ctx.engine.begin() as conn:
                until = account_state.paused_until(conn, config.key, now)
                due = [] if until else sending._due_rows(conn, config, self.batch_id, now)
            if until or self.paused or not due:
                if self.running:
                    await asyncio.wait(self.running)  # their answers may make rows due again
                    continue
                return None
            chunk = due[: ROUNDS_PER_READ * self.cap]
            try:
                planned = self.adapter.build_send(config.account, vendor_base.Outgoing(chunk, self.options))
            except ValueError as exc:
                # A row the adapter cannot carry (it passed ingest under other rules): fail it, not the batch.
                exchange.refuse(ctx, config, self.adapter, chunk, self.options, str(exc))
                continue
            for request in planned:
                if self._paused():
                    break
                token = await self._take_place()
                if self.report.requests and not sending._budget_left(ctx, config, self.started, ctx.clock.now()):
                    # Whatever is left goes to a follow-up task, before the soft time limit can cut a request.
                    self._give_back(token)
                    if self.running:
                        await asyncio.wait(self.running)
                    return 0.0
                with ctx.engine.begin() as conn:
                    claimed = exchange.claim(conn, [r.message_id for r in request.recipients], ctx.clock.now())
                if not claimed:
                    self._give_back(token)  # held by another task, or canceled meanwhile
                    continue
                self.in_air.update(claimed)
                self.report.requests += 1
                task = group.create_task(self._fly(request, claimed, token))
                self.running.add(task)
                task.add_done_callback(self.running.discard)

    async def _fly(self, request: vendor_base.SendRequest, claimed: dict[int, Claimed], token: str) -> None:
        """Send one claimed request and store its answer."""
        ctx, config = self.ctx, self.config
        policy = config.policy
        try:
            timer = metrics.RequestTimer(config.key, config.vendor)
            response = await self._send(request, policy.connect_timeout, policy.read_timeout)
            results, retry_after = exchange.read_reply(config, self.adapter, request, response, timer)
            counts = exchange._record_answer(ctx, config, claimed, results, retry_after)
        finally:
            self._give_back(token)
        for message_id in claimed:
            self.in_air.pop(message_id, None)
        if any(r.outcome is vendor_base.Outcome.PAUSE_ACCOUNT for r in results):
            self.paused = True  # no credit or bad credentials: the rest waits with the account
        log.info(
            "sent request",
            extra={
                "account": config.key,
                "recipients": len(request.recipients),
                "outcomes": counts,
                "messages": [r.message_id for r in request.recipients],
            },
        )

    async def _send(
        self, request: vendor_base.SendRequest, connect_timeout: float, read_timeout: float
    ) -> httpx.Response | VendorError:
        """The vendor's response, or the transport's error standing for it."""
        try:
            return await self.transport.send(request.request, connect_timeout, read_timeout)
        except VendorError as exc:
            return exc

    async def _take_place(self) -> str:
        """Wait for a place in flight: one of this task's, then one of the account's (shared by every worker)."""
        await self.places.acquire()
        try:
            while True:
                token = self.ctx.limiter.take_flight(self.config.key, self.cap, self.lease)
                if token is not None:
                    return token
                await asyncio.sleep(FLIGHT_POLL * random.uniform(0.5, 1.5))
        except BaseException:
            self.places.release()
            raise

    def _give_back(self, token: str) -> None:
        self.ctx.limiter.end_flight(self.config.key, token)
        self.places.release()

    def _paused(self) -> bool:
        """Whether the account paused: by an answer of this run, or (looked up now and then) by another task."""
        if not self.paused and time.monotonic() - self.pause_checked > PAUSE_CHECK:
            self.pause_checked = time.monotonic()
            with self.ctx.engine.begin() as conn:
                self.paused = account_state.paused_until(conn, self.config.key, self.ctx.clock.now()) is not None
        return self.paused
