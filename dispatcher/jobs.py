"""Ingest: validate, normalise, store one row per recipient, plan batches.

Everything about a job (shape, characters, nesting, sizes, dates, account, options) is checked
before the first write, against its schema (``dispatcher.jobschema``); a job that cannot be read
is stored as a rejected job with a one-line reason and a redacted excerpt of what came in
(``dispatcher.intake``, ``dispatcher.jobrecords``). A recipient that cannot
be sent is stored as a rejected message with its reason while the rest go on.

Recipients are stored in committed chunks. The job row goes in first, ``ingesting``; each
chunk's messages, its whole batches and the job's ``ingested`` count (raw recipients consumed)
commit together. A crash between chunks leaves whole chunks and whole batches, and a second
call with the same job id (a redelivered or retried task) skips the ``ingested`` recipients and
goes on. At the end the job is ``accepted``, or ``rejected`` when nothing can be sent. A
duplicate address is turned away by the unique (job, address) key at constant cost per row. The
same idempotency key, or the id of a finished job, returns the stored job and stores nothing.
Database failures (``OperationalError``, ``InterfaceError``) propagate for the caller to retry:
they are never stored as the job's fault.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from dispatcher.config import AccountConfig
from dispatcher.errors import SourceError
from dispatcher.intake import date_problem, excerpt, storable
from dispatcher.jobrecords import IngestResult, end_ingesting, find_existing, reject_job
from dispatcher.jobschema import InlineJob, JobHeader, describe, header_problem
from dispatcher.models import Job, JobState, Message
from dispatcher.planning import BatchPlanner, first_opening
from dispatcher.recipients import (
    DUPLICATE,
    MAX_REASON_CHARS,
    OPTED_OUT,
    PENDING,
    REJECTED,
    Plan,
    chunks,
    message_row,
    opted_out,
    read_source,
    reject,
)
from dispatcher.vendors import adapter_for

__all__ = ["DUPLICATE", "find_existing", "ingest_job", "ingest_stream", "reject_job"]

#: raw recipients read, stored and committed together; a multiple of every vendor's batch size
#: (1000, 500, 100, 20), so only a chunk's rejected recipients leave a batch short
CHUNK = 2000

#: the job or its header, as ``_read`` reads it
_Model = TypeVar("_Model", bound=JobHeader)


def ingest_job(
    engine: Engine, accounts: Mapping[str, AccountConfig], raw: Any, now: datetime, job_id: str | None = None
) -> IngestResult:
    """Store a whole job (header and inline recipients)."""
    job_id = job_id or str(uuid.uuid4())
    if not isinstance(raw, Mapping):
        return reject_job(engine, job_id, None, f"a job must be a JSON object, not {type(raw).__name__}", now, raw)
    job = _read(engine, job_id, raw, InlineJob, now)
    if isinstance(job, IngestResult):
        return job
    header = JobHeader.model_validate({name: getattr(job, name) for name in JobHeader.model_fields})
    return _ingest(engine, accounts, header, job.recipients, now, job_id, raw)


def ingest_stream(
    engine: Engine,
    accounts: Mapping[str, AccountConfig],
    header: JobHeader | Mapping[str, Any],
    recipients: Iterable[Any],
    now: datetime,
    job_id: str | None = None,
) -> IngestResult:
    """Store a job whose recipients arrive as an iterable, a committed chunk at a time."""
    job_id = job_id or str(uuid.uuid4())
    raw = header.model_dump() if isinstance(header, JobHeader) else header
    if not isinstance(raw, Mapping):
        return reject_job(engine, job_id, None, "a job's header must be an object", now, raw)
    checked = _read(engine, job_id, raw, JobHeader, now)
    if isinstance(checked, IngestResult):
        return checked
    return _ingest(engine, accounts, checked, recipients, now, job_id, raw)


def _read(
    engine: Engine, job_id: str, raw: Mapping[Any, Any], model: type[_Model], now: datetime
) -> _Model | IngestResult:
    """Check a job (or its header) and read it as ``model``; or store its rejection and return that."""
    problem = header_problem(raw)
    if problem:
        return reject_job(engine, job_id, raw.get("account"), problem, now, raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        return reject_job(engine, job_id, raw.get("account"), describe(exc), now, raw)


def _ingest(
    engine: Engine,
    accounts: Mapping[str, AccountConfig],
    header: JobHeader,
    recipients: Iterable[Any],
    now: datetime,
    job_id: str,
    raw: Any,
) -> IngestResult:
    plan = _plan(accounts, header, job_id, now)
    if isinstance(plan, str):
        return reject_job(engine, job_id, header.account, plan, now, raw)
    existing = find_existing(engine, job_id, header.account, header.idempotency_key)
    if existing and (existing.job_id != job_id or existing.state != JobState.INGESTING):
        return existing
    if existing is None and not _begin(engine, header, plan):
        # Another call stored the same id or key first: answer with its job.
        return _stored(engine, header, job_id)
    try:
        finished = _store_chunks(engine, header, plan, recipients, existing.ingested if existing else 0)
    except SourceError as exc:
        return _stop(engine, header, plan, str(exc), raw)
    if not finished:
        return _stored(engine, header, job_id)
    return _finish(engine, header, plan, raw)


def _plan(accounts: Mapping[str, AccountConfig], header: JobHeader, job_id: str, now: datetime) -> Plan | str:
    """Check what needs the account and the clock; return the plan, or why the job is refused."""
    for name in ("send_at", "expires_at"):
        problem = date_problem(name, getattr(header, name), now)
        if problem:
            return problem
    if header.expires_at and header.expires_at <= max(now, header.send_at or now):
        return "expires_at: must be later than now and than send_at"
    config = accounts.get(header.account)
    if config is None:
        return f"unknown account {header.account!r}"
    adapter = adapter_for(config.vendor)
    if header.channel not in adapter.ABILITIES.channels:
        return f"{config.vendor} offers no {header.channel!r} channel"
    vendor_options = dict(header.options)
    if header.channel != "sms":
        vendor_options["channel"] = header.channel
    try:
        options = adapter.validate_options(vendor_options)
    except (ValueError, TypeError) as exc:
        return f"options: {exc}"
    not_before = first_opening(config.policy.window, header.send_at, now)
    deadline = header.expires_at or now + timedelta(seconds=config.policy.max_age)
    return Plan(job_id, header.text, header.channel, config, adapter, options, not_before, deadline, now)


def _begin(engine: Engine, header: JobHeader, plan: Plan) -> bool:
    """Insert the job row, ``ingesting``, in its own commit; False when the id or key is taken."""
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Job).values(
                    id=plan.job_id,
                    account=header.account,
                    idempotency_key=header.idempotency_key,
                    state=JobState.INGESTING,
                    text=header.text,
                    priority=header.priority,
                    options=plan.options,
                    send_at=header.send_at,
                    expires_at=header.expires_at,
                    recipients=0,
                    ingested=0,
                    created_at=plan.now,
                )
            )
    except IntegrityError:
        return False
    return True


def _store_chunks(engine: Engine, header: JobHeader, plan: Plan, recipients: Iterable[Any], start: int) -> bool:
    """Store the recipients after the first ``start``, a committed chunk at a time.

    Return False when another call on the same job moved it on first.
    """
    position = start
    for chunk in chunks(read_source(recipients, start), CHUNK):
        with engine.begin() as conn:
            # The chunk's claim: a concurrent call on the same job (a redelivered task) waits on
            # this row, then finds the count moved and stops, so no chunk is stored twice.
            claimed = conn.execute(
                update(Job)
                .where(Job.id == plan.job_id, Job.state == JobState.INGESTING, Job.ingested == position)
                .values(ingested=position + len(chunk), recipients=Job.recipients + len(chunk))
            ).rowcount
            if claimed != 1:
                return False
            _store_chunk(conn, header.priority, plan, chunk)
        position += len(chunk)
    return True


def _store_chunk(conn: Connection, priority: str, plan: Plan, chunk: list[Any]) -> None:
    """Store one chunk: pending rows in whole batches, each address once; the rest rejected."""
    seen: set[str] = set()
    rows = [message_row(plan, raw, seen) for raw in chunk]
    unwanted = opted_out(conn, plan.config.key, [r["address"] for r in rows if r["state"] == PENDING])
    if unwanted:
        for row in rows:
            if row["state"] == PENDING and row["address"] in unwanted:
                reject(row, OPTED_OUT)
    # The unique (job, address) key turns away an address an earlier chunk stored: the planner
    # stores such a row rejected as a duplicate.
    BatchPlanner(conn, plan.config, plan.job_id, priority, plan.not_before, plan.now).store(rows)


def _finish(engine: Engine, header: JobHeader, plan: Plan, raw: Any) -> IngestResult:
    """Count what was stored and end the job ``accepted``, or ``rejected`` if nothing can go."""
    with engine.begin() as conn:
        counts = dict(
            conn.execute(
                select(Message.state, func.count()).where(Message.job_id == plan.job_id).group_by(Message.state)
            ).all()
        )
        rejected = counts.get(REJECTED, 0)
        sendable = sum(counts.values()) - rejected
        state, reason, payload = JobState.ACCEPTED, None, None
        if not sendable:
            reason = _no_sendable_reason(conn, plan.job_id, rejected)
            state, payload = JobState.REJECTED, excerpt(raw)
        done = conn.execute(
            update(Job)
            .where(Job.id == plan.job_id, Job.state == JobState.INGESTING)
            .values(state=state, reason=reason, payload=payload, recipients=sum(counts.values()))
        ).rowcount
    if not done:
        return _stored(engine, header, plan.job_id)
    counts = {PENDING: sendable, REJECTED: rejected}
    return IngestResult(plan.job_id, state, True, reason, counts, header.account, sendable + rejected)


def _stop(engine: Engine, header: JobHeader, plan: Plan, reason: str, raw: Any) -> IngestResult:
    """End a job whose recipients' source broke: rejected with why; rows still waiting canceled."""
    reason = storable(reason)[:MAX_REASON_CHARS]
    with engine.begin() as conn:
        end_ingesting(conn, plan.job_id, reason, excerpt(raw), plan.now)
    return IngestResult(plan.job_id, JobState.REJECTED, True, reason, {}, header.account)


def _stored(engine: Engine, header: JobHeader, job_id: str) -> IngestResult:
    """The job another call stored or moved on first, under this id or key."""
    found = find_existing(engine, job_id, header.account, header.idempotency_key)
    if found is None:
        raise RuntimeError(f"job {job_id} was taken by another call and then vanished")
    return found


def _no_sendable_reason(conn: Connection, job_id: str, rejected: int) -> str:
    if not rejected:
        return "the job has no recipients"
    first = conn.execute(
        select(Message.reason).where(Message.job_id == job_id).order_by(Message.id).limit(1)
    ).scalar()
    return f"no recipient can be sent: {rejected} rejected (first: {first})"
