"""The tasks: each unpacks ids, calls one ``dispatcher`` function, maps the result to Celery."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any, NoReturn

import redis
from celery.exceptions import Reject, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

import dispatcher
from dispatcher import balance, polling, release, sending
from dispatcher.config import Settings
from dispatcher.jobs import ingest_job, reject_job
from dispatcher.models import JobState
from tasks.app import UNREADABLE, app
from tasks.memory import give_back
from tasks.runtime import runtime

log = logging.getLogger("tasks.dispatch")

#: errors of the database or the broker that pass: the job is tried again, never rejected or lost
TRANSIENT = (
    OperationalError, InterfaceError, DisconnectionError,
    redis.ConnectionError, redis.TimeoutError, BrokerError,
    # A job larger than the soft time limit allows: ingest resumes where it stopped.
    SoftTimeLimitExceeded,
)  # fmt: skip
#: seconds a job is retried after transient errors before its message goes back to the broker
SUBMIT_RETRY_AGE = 3600.0
#: message header carrying the time (epoch seconds) of a job's first failed try
FIRST_TRY_HEADER = "smsdispatch_first_try"

#: Celery priority of a batch's task (0 is read first)
PRIORITY = {"otp": 0, "bulk": 6}

#: in-process stand-ins for the Redis locks, for the embedded default (no Redis)
_local_locks: dict[str, threading.Lock] = {}


#: seconds beat's release sweep holds its lock at most
RELEASE_LOCK_SECONDS = 30


def _lock(rt: Any, name: str, timeout: float) -> Any:
    """A lock so overlapping beat runs do nothing: in Redis, or in this process without it."""
    if rt.redis:
        return rt.redis.lock(f"smsdispatch:lock:{name}", timeout=timeout, blocking=False)
    return _local_locks.setdefault(name, threading.Lock())


def enqueue(batch_id: int, priority: str) -> None:
    """Hand one batch to the send queue."""
    send_batch.apply_async((batch_id,), priority=PRIORITY.get(priority, 6))


def release_account(account: str | None) -> int:
    """Queue the due batches of one account (all accounts with None)."""
    rt = runtime()
    return release.release_due(rt.engine, rt.settings, rt.clock.now(), enqueue, account)


class BrokerQueue:
    """The library's ``Queue`` on Celery: an account's due batches become ``send_batch`` tasks."""

    def release(self, account: str | None) -> int:
        """Queue the due batches of one account (all accounts with None); return how many."""
        return release_account(account)


def submit_job(job: Mapping[str, Any], job_id: str | None = None) -> str:
    """Store a job with this process's services and queue what is due on the broker; return its id."""
    return dispatcher.submit_job(job, services=runtime().services, queue=BrokerQueue(), job_id=job_id)


# A hard time limit requeues the message (acks_on_timeout=False): ingest resumes under the same
# job id. Every other failure is caught below, because with Redis a failed task's message is
# gone whether Celery acks it or rejects it; only a retry's copy or a requeue keeps it.
# Its requests are bounded (tasks.app) and show a summary of the job (tasks.flower).
@app.task(
    name="dispatcher.submit",
    bind=True,
    max_retries=None,
    acks_on_timeout=False,
    Request="tasks.flower:SubmitRequest",
)
def submit(self: Any, *args: Any, **kwargs: Any) -> str:
    """Store a job (its id is this task's id) and queue what is due; never ack one not stored."""
    try:
        return _submit(self, args, kwargs)
    finally:
        # The job is stored (or its retry's copy already published): drop its recipients now,
        # not when Celery lets go of the arguments, so that their memory goes back to the system
        # before the task ends. Only a copy read from a message: a direct or eager call's job is
        # the caller's own.
        delivered = not (self.request.called_directly or self.request.is_eager)
        if delivered and args and isinstance(args[0], dict) and isinstance(args[0].get("recipients"), list):
            args[0]["recipients"].clear()
        give_back()


def _submit(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        rt = runtime()
    except Exception as exc:  # noqa: BLE001 - no engine to store anything with: try again later
        _retry_later(self, exc, time.time(), Settings.model_fields["max_countdown"].default)
    try:
        return _store_job(self, rt, args, kwargs)
    except TRANSIENT as exc:
        _retry_later(self, exc, rt.clock.now().timestamp(), rt.settings.max_countdown)
    except Exception as exc:  # noqa: BLE001 - any other failure about a job is a stored rejection
        log.exception("job %s could not be stored; storing it as rejected", self.request.id)
        try:
            reason = f"the job could not be stored ({type(exc).__name__}); nothing of it was sent"
            return reject_job(rt.engine, self.request.id, None, reason, rt.clock.now()).job_id
        except Exception as again:  # noqa: BLE001 - not even the rejection: try it all later
            _retry_later(self, again, rt.clock.now().timestamp(), rt.settings.max_countdown)


def _store_job(task: Any, rt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if UNREADABLE in kwargs:
        # The worker could not read the message (tasks.app): store why, never an error loop.
        reason = str(kwargs[UNREADABLE])[:500]
        return reject_job(rt.engine, task.request.id, None, reason, rt.clock.now()).job_id
    if len(args) != 1 or kwargs:
        # Any other call shape is a job that cannot be read: stored as such, never an error loop.
        reason = "the task takes exactly one argument, the job"
        return reject_job(rt.engine, task.request.id, None, reason, rt.clock.now()).job_id
    result = ingest_job(rt.engine, rt.accounts, args[0], rt.clock.now(), job_id=task.request.id)
    if result.state == JobState.ACCEPTED:
        release_account(result.account)
    return result.job_id


def retry_countdown(retries: int, cap: float) -> float:
    """Seconds before try ``retries + 1``: doubling from 1 s up to ``cap``, less up to half (jitter)."""
    return random.uniform(0.5, 1.0) * min(cap, 2.0 ** min(retries, 16))


def _retry_later(task: Any, exc: BaseException, now: float, cap: float) -> NoReturn:
    """Try the job again after a backoff; past ``SUBMIT_RETRY_AGE`` give the message back to the broker.

    Celery acknowledges this delivery once the retry's copy is published. If that publish fails,
    Celery would reject the message for good (the job lost): it is requeued instead. So the
    worst case is a job that comes back, never one that is gone.
    """
    headers = {k: v for k, v in (task.request.headers or {}).items() if k != "redelivered"}
    first = headers.get(FIRST_TRY_HEADER)
    first = float(first) if isinstance(first, (int, float)) else now
    if now - first > SUBMIT_RETRY_AGE:
        if not (task.request.delivery_info or {}).get("redelivered"):
            log.error("job %s: not stored after %.0f s of %s; its message goes back to the queue",
                      task.request.id, now - first, type(exc).__name__)  # fmt: skip
            raise Reject(f"not stored after {SUBMIT_RETRY_AGE:.0f} s of transient errors", requeue=True)
        first = now  # it came back from the broker after giving up: a new round of retries
    countdown = retry_countdown(task.request.retries, cap)
    log.warning("job %s not stored yet (%s); again in %.1f s", task.request.id, type(exc).__name__, countdown)
    argsrepr = getattr(task.request, "argsrepr", None) or "(job,)"
    try:
        raise task.retry(countdown=countdown, headers={**headers, FIRST_TRY_HEADER: first}, argsrepr=argsrepr)
    except Reject as rejected:
        if rejected.requeue:
            raise
        log.error("job %s: its retry could not be queued; back to the queue", task.request.id)
        raise Reject("the retry could not be queued", requeue=True) from None


@app.task(name="dispatcher.send_batch", bind=True, max_retries=None)
def send_batch(self: Any, batch_id: int) -> dict[str, Any]:
    """Send a batch; come back after a short wait, or let beat release it later."""
    report = sending.send_batch(runtime().services, int(batch_id))
    if report.again_in is not None:
        priority = (self.request.delivery_info or {}).get("priority")
        raise self.retry(countdown=report.again_in, priority=priority)
    if report.account:
        release_account(report.account)
    return {"batch": report.batch_id, "requests": report.requests, "state": report.state}


@app.task(name="dispatcher.release_due")
def release_due(account: str | None = None) -> int:
    """Beat's sweep: lost workers' rows become unknown, late ones expired; due and lost batches are queued."""
    rt = runtime()
    # Short: a process killed mid-sweep holds the lock until it times out, and no batch is queued
    # meanwhile. Every step of the sweep is guarded, so a rare overlap after 30 s is harmless.
    lock = _lock(rt, "release", timeout=RELEASE_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return 0
    try:
        release.expire_stale_sending(rt.engine, rt.settings, rt.clock.now())
        release.expire_overdue(rt.engine, rt.clock.now(), rt.accounts)
        return release_account(account)
    finally:
        lock.release()


@app.task(name="dispatcher.check_balance")
def check_balance() -> list[str]:
    """Beat's balance check: paused accounts with credit again are resumed and released."""
    rt = runtime()
    resumed = balance.resume_paused(rt.services, rt.clock.now())
    for account in resumed:
        release_account(account)
    return resumed


@app.task(name="dispatcher.poll")
def poll() -> dict[str, Any]:
    """Beat's poll: delivery reports and replies of every account, one poll per account and kind at a time."""
    rt = runtime()
    found: dict[str, Any] = {}
    for key, config in sorted(rt.accounts.items()):
        for kind in polling.KINDS:
            lock = _lock(rt, f"poll:{key}:{kind}", timeout=240)
            if not lock.acquire(blocking=False):
                continue  # that poll is running elsewhere
            try:
                found[f"{key}:{kind}"] = polling.poll(rt.services, config, kind)
            finally:
                lock.release()
    return found
