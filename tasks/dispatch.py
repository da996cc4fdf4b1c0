"""The tasks: each unpacks ids, calls one ``dispatcher`` function, maps the result to Celery."""

from __future__ import annotations

import threading
from typing import Any

from dispatcher import balance, polling, release, sending
from dispatcher.jobs import ingest_job, reject_job
from dispatcher.models import JobState
from tasks.app import app
from tasks.runtime import runtime

#: Celery priority of a batch's task (0 is read first)
PRIORITY = {"otp": 0, "bulk": 6}

#: in-process stand-ins for the Redis locks, for the embedded default (no Redis)
_local_locks: dict[str, threading.Lock] = {}


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


@app.task(name="dispatcher.submit", bind=True)
def submit(self: Any, *args: Any, **kwargs: Any) -> str:
    """Store a job (its id is this task's id) and queue what is due."""
    rt = runtime()
    if len(args) != 1 or kwargs:
        # Any other call shape is a job that cannot be read: stored as such, never an error loop.
        reason = "the task takes exactly one argument, the job"
        return reject_job(rt.engine, self.request.id, None, reason, rt.clock.now()).job_id
    result = ingest_job(rt.engine, rt.accounts, args[0], rt.clock.now(), job_id=self.request.id)
    if result.state == JobState.ACCEPTED:
        release_account(result.account)
    return result.job_id


@app.task(name="dispatcher.send_batch", bind=True, max_retries=None)
def send_batch(self: Any, batch_id: int) -> dict[str, Any]:
    """Send a batch; come back after a short wait, or let beat release it later."""
    report = sending.send_batch(runtime().send, int(batch_id))
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
    lock = _lock(rt, "release", timeout=120)
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
    resumed = balance.resume_paused(rt.send, rt.clock.now())
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
                found[f"{key}:{kind}"] = polling.poll(rt.send, config, kind)
            finally:
                lock.release()
    return found
