"""A batch of a one-number vendor: its requests go out concurrently, each row claimed as its request leaves.

A vendor that takes one number a request (``Limits.hard_max_recipients == 1``) and asks for no
pause between requests is slow one request after another: the wire's latency, not our work, sets
the pace. Such a batch's due rows go out here through an ``httpx.AsyncClient``, with up to the
account's ``max_in_flight`` requests in the air at once across every worker process (a
``Limiter`` flight each: a Redis lease that runs out if its worker dies). The rest is the
sequential sender's (``dispatcher.sending``, ``dispatcher.exchange``):

- each request's row is claimed (``exchange.claim``: pending → sending, conditional, row by row)
  just before the request leaves, the requests leaving together in one statement, and only a
  request whose row this claim won leaves; its answer is recorded through ``outcomes.record``
  (``exchange``'s store, which tries again while the database is away). A row another task
  holds, or a canceled one, is not claimed and not sent;
- an exception after a claim (the soft time limit among them) makes the rows of every request
  in the air ``unknown`` at once, never resent blindly; rows not yet claimed stay pending;
- requests start only within the task's send budget, and the due rows are read again every few
  rounds, so that a paused account, a canceled job, a closing window or a deadline is seen soon.

The event loop runs in a thread of its own while the task's thread waits for it: the soft time
limit, a signal, is raised in the task's thread and cancels the run, which then marks the rows
of the requests in the air ``unknown``. Claims run on the loop's thread, between two awaits, so a
cancel never cuts one in half. Answers are stored in a further thread, all those read while the
last store ran in one transaction, so that reading replies goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
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
    run = _LoopThread(_Flights(ctx, config, batch_id, options, report, started))
    run.start()
    try:
        hold = run.result()
    except BaseException:
        # The soft time limit (or any exception) lands here, in the task's own thread: the run
        # is cancelled, marks the requests in the air unknown, and ends before this goes on up.
        run.stop()
        raise
    return sending._settle(ctx, batch_id, report, hold)


class _LoopThread(threading.Thread):
    """The event loop of one task's run, in a thread of its own.

    A signal's exception (Celery's soft time limit) is raised in the main thread. Inside an event
    loop it could land in a transport's callback, which asyncio turns into a broken connection;
    here it lands in ``send_batch``, which cancels the run cleanly.
    """

    def __init__(self, flights: _Flights):
        super().__init__(name="concurrent-send", daemon=True)
        self.flights = flights
        self.started_loop = threading.Event()
        #: set when the run is over; waited on instead of join(), which a signal can leave
        #: believing a running thread stopped (CPython's bpo-45274 handling in 3.11)
        self.finished = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.main: asyncio.Task[float | None] | None = None
        self.hold: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.hold = asyncio.run(self._main())
        except BaseExceptionGroup as group:
            self.error = group.exceptions[0]  # a request's own failure, raised as itself
        except BaseException as exc:  # noqa: BLE001 - handed to the task's thread
            self.error = exc
        finally:
            self.started_loop.set()
            self.finished.set()

    async def _main(self) -> float | None:
        self.loop, self.main = asyncio.get_running_loop(), asyncio.current_task()
        self.started_loop.set()
        return await self.flights.run()

    def result(self) -> float | None:
        """Wait for the run (a signal interrupts the wait); return its hold or raise its error."""
        self.finished.wait()
        if self.error is not None:
            raise self.error
        return self.hold

    def stop(self) -> None:
        """Cancel the run and wait until it has cleaned up."""
        self.started_loop.wait()
        if self.loop is not None and self.main is not None and not self.finished.is_set():
            try:
                self.loop.call_soon_threadsafe(self.main.cancel)
            except RuntimeError:
                pass  # the loop closed meanwhile: the run is over
        self.finished.wait()


@dataclass
class _Answer:
    """A request's answer, read and waiting to be stored."""

    request: vendor_base.SendRequest
    claimed: dict[int, Claimed]
    results: list[vendor_base.Result]
    retry_after: float | None


class _Flights:
    """One task's run: reads the due rows, claims and starts their requests, stores the answers."""

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
        #: answers read and not stored yet; the recorder stores all there are in one go
        self.answers: list[_Answer] = []
        self.closing = False
        self.paused = False
        self.pause_checked = time.monotonic()

    async def run(self) -> float | None:
        """Send until nothing is due, the budget is spent or the account pauses; return the batch's hold."""
        self.places = asyncio.Semaphore(self.cap)
        self.answered = asyncio.Event()
        self.transport = AsyncTransport(connections=self.cap)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._record())
                hold = await self._send_due(group)
                if self.running:
                    await asyncio.wait(self.running)
                self.closing = True
                self.answered.set()
            return hold
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
            await asyncio.sleep(0)  # every pass lets the requests in the air and the recorder move on
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
            while planned and not self._paused():
                tokens = await self._take_places(len(planned))
                if self.report.requests and not sending._budget_left(ctx, config, self.started, ctx.clock.now()):
                    # Whatever is left goes to a follow-up task, before the soft time limit can cut a request.
                    for token in tokens:
                        self._give_back(token)
                    return 0.0
                leaving, planned = planned[: len(tokens)], planned[len(tokens) :]
                self._launch(group, leaving, tokens)

    def _launch(self, group: asyncio.TaskGroup, leaving: list[vendor_base.SendRequest], tokens: list[str]) -> None:
        """Claim the rows of the requests leaving now, and send those whose rows this claim won.

        The claim is ``exchange.claim``'s, row by row conditional (pending → sending), in one
        statement for the requests leaving together; a request carries one number, so it leaves
        only if its row is won, and is never half claimed.
        """
        now = self.ctx.clock.now()
        with self.ctx.engine.begin() as conn:
            claimed = exchange.claim(conn, [r.message_id for request in leaving for r in request.recipients], now)
        for request, token in zip(leaving, tokens, strict=True):
            mine = {r.message_id: claimed[r.message_id] for r in request.recipients if r.message_id in claimed}
            if not mine:
                self._give_back(token)  # held by another task, or canceled meanwhile
                continue
            self.in_air.update(mine)
            self.report.requests += 1
            task = group.create_task(self._fly(request, mine, token))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _fly(self, request: vendor_base.SendRequest, claimed: dict[int, Claimed], token: str) -> None:
        """Send one claimed request and read its answer; the recorder stores it."""
        config = self.config
        policy = config.policy
        try:
            timer = metrics.RequestTimer(config.key, config.vendor)
            response = await self._send(request, policy.connect_timeout, policy.read_timeout)
        finally:
            self._give_back(token)  # the vendor is done with it: the next request may leave
        results, retry_after = exchange.read_reply(config, self.adapter, request, response, timer)
        if any(r.outcome is vendor_base.Outcome.PAUSE_ACCOUNT for r in results):
            self.paused = True  # no credit or bad credentials: the rest waits with the account
        self.answers.append(_Answer(request, claimed, results, retry_after))
        self.answered.set()

    async def _record(self) -> None:
        """Store the answers as they come: all those read while the last store ran, in one transaction."""
        while True:
            await self.answered.wait()
            await asyncio.sleep(0)  # answers ready at the same moment join this store
            self.answered.clear()
            answers, self.answers = self.answers, []
            for retry_after in {a.retry_after for a in answers}:
                # In a thread: the next answers are read meanwhile. Storing is guarded on
                # state = 'sending', as is marking rows unknown if the run breaks: whichever
                # commits first decides, so the thread may run on after a cancel.
                same = [a for a in answers if a.retry_after == retry_after]
                await asyncio.to_thread(self._store, same, retry_after)
            if self.closing and not self.answers:
                return  # every request has ended (the run waited for them) and every answer is stored

    def _store(self, answers: list[_Answer], retry_after: float | None) -> None:
        claimed = {i: row for a in answers for i, row in a.claimed.items()}
        results = [r for a in answers for r in a.results]
        exchange._record_answer(self.ctx, self.config, claimed, results, retry_after)
        for message_id in claimed:
            self.in_air.pop(message_id, None)
        for a in answers:
            log.info(
                "sent request",
                extra={
                    "account": self.config.key,
                    "recipients": len(a.request.recipients),
                    "outcomes": dict(Counter(r.outcome.value for r in a.results)),
                    "messages": [r.message_id for r in a.request.recipients],
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

    async def _take_places(self, wanted: int) -> list[str]:
        """Wait for a place in flight, then take as many more as are free now, up to ``wanted``.

        A place is one of this task's, then one of the account's (shared by every worker).
        """
        await self.places.acquire()
        tokens: list[str] = []
        try:
            while not tokens:
                token = self.ctx.limiter.take_flight(self.config.key, self.cap, self.lease)
                if token is None:
                    await asyncio.sleep(FLIGHT_POLL * random.uniform(0.5, 1.5))
                    continue
                tokens.append(token)
            while len(tokens) < wanted and not self.places.locked():
                await self.places.acquire()  # free: returns at once
                token = self.ctx.limiter.take_flight(self.config.key, self.cap, self.lease)
                if token is None:
                    self.places.release()
                    break
                tokens.append(token)
            return tokens
        except BaseException:
            for token in tokens:
                self._give_back(token)
            if not tokens:
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
