"""The job contract and ingest: validate, normalise, store one row per recipient, plan batches.

A job that cannot be read is stored as a rejected job with its reason; a recipient that cannot
be sent is stored as a rejected message while the rest go on. The same idempotency key (or the
same job id, as a redelivered task brings) returns the stored job and stores nothing new.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from dispatcher.config import AccountConfig
from dispatcher.models import Job, JobState, Message, MessageState, OptOut
from dispatcher.phones import BadNumber, to_e164
from dispatcher.planning import BatchPlanner, first_opening
from dispatcher.text import TemplateError, render
from dispatcher.vendors import adapter_for
from dispatcher.vendors.base import Recipient

#: characters a job's text template may have
MAX_TEMPLATE_CHARS = 4096
#: recipients one job message may carry inline (larger lists go through ``dispatcher submit``)
MAX_INLINE_RECIPIENTS = 200_000
#: recipients validated and stored per round trip
CHUNK = 1000
DUPLICATE = "duplicate of an earlier recipient of this job"


class JobHeader(BaseModel):
    """Everything of a job but its recipients."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    send_at: AwareDatetime | None = None
    priority: Literal["bulk", "otp"] = "bulk"
    #: sms everywhere; email and voice where the account's vendor offers them
    channel: Literal["sms", "email", "voice"] = "sms"
    options: dict[str, Any] = Field(default_factory=dict)


class InlineJob(JobHeader):
    """A job with its recipients inline, as the queue and ``submit_job`` take it."""

    recipients: list[Any] = Field(min_length=1, max_length=MAX_INLINE_RECIPIENTS)


@dataclass
class IngestResult:
    """What ingest did with a job."""

    job_id: str
    state: str
    created: bool
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    account: str | None = None


def ingest_job(
    engine: Engine, accounts: Mapping[str, AccountConfig], raw: Any, now: datetime, job_id: str | None = None
) -> IngestResult:
    """Store a whole job (header and inline recipients)."""
    job_id = job_id or str(uuid.uuid4())
    if not isinstance(raw, Mapping):
        return reject_job(engine, job_id, None, f"a job must be a JSON object, not {type(raw).__name__}", now)
    try:
        job = InlineJob.model_validate(raw)
    except ValidationError as exc:
        return reject_job(engine, job_id, raw.get("account"), describe(exc), now)
    header = JobHeader.model_validate(job.model_dump(exclude={"recipients"}))
    return ingest_stream(engine, accounts, header, job.recipients, now, job_id)


def ingest_stream(
    engine: Engine,
    accounts: Mapping[str, AccountConfig],
    header: JobHeader | Mapping[str, Any],
    recipients: Iterable[Any],
    now: datetime,
    job_id: str | None = None,
) -> IngestResult:
    """Store a job whose recipients arrive as an iterable, a chunk at a time."""
    job_id = job_id or str(uuid.uuid4())
    if not isinstance(header, JobHeader):
        try:
            header = JobHeader.model_validate(header)
        except ValidationError as exc:
            return reject_job(engine, job_id, dict(header).get("account"), describe(exc), now)
    config = accounts.get(header.account)
    if config is None:
        return reject_job(engine, job_id, header.account, f"unknown account {header.account!r}", now)
    adapter = adapter_for(config.vendor)
    if header.channel not in getattr(adapter, "channels", ("sms",)):
        return reject_job(
            engine, job_id, header.account, f"{config.vendor} offers no {header.channel!r} channel", now
        )
    vendor_options = dict(header.options)
    if header.channel != "sms":
        vendor_options["channel"] = header.channel
    try:
        options = adapter.validate_options(vendor_options)
    except ValueError as exc:
        return reject_job(engine, job_id, header.account, f"options: {exc}", now)
    existing = find_existing(engine, job_id, header.account, header.idempotency_key)
    if existing:
        return existing
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Job).values(
                    id=job_id,
                    account=header.account,
                    idempotency_key=header.idempotency_key,
                    state=JobState.ACCEPTED,
                    text=header.text,
                    priority=header.priority,
                    options=options,
                    send_at=header.send_at,
                    recipients=0,
                    created_at=now,
                )
            )
            not_before = first_opening(config.policy.window, header.send_at, now)
            planner = BatchPlanner(conn, config, job_id, header.priority, not_before, now)
            counts = _store_recipients(conn, config, header, options, recipients, planner, not_before, now)
            state, reason = JobState.ACCEPTED, None
            if counts["pending"] == 0:
                state, reason = JobState.REJECTED, _no_sendable_reason(conn, job_id, counts)
            conn.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(recipients=sum(counts.values()), state=state, reason=reason)
            )
    except IntegrityError:
        # Another worker stored the same key first: answer with its job.
        existing = find_existing(engine, job_id, header.account, header.idempotency_key)
        if existing:
            return existing
        raise
    return IngestResult(job_id, state, True, reason, counts, header.account)


def _no_sendable_reason(conn: Any, job_id: str, counts: Mapping[str, int]) -> str:
    first = conn.execute(
        select(Message.reason).where(Message.job_id == job_id).order_by(Message.id).limit(1)
    ).scalar()
    if not counts["rejected"]:
        return "the job has no recipients"
    return f"no recipient can be sent: {counts['rejected']} rejected (first: {first})"


def find_existing(engine: Engine, job_id: str, account: str, key: str | None) -> IngestResult | None:
    """Return the job already stored under this id or idempotency key, if any."""
    condition = Job.id == job_id
    if key is not None:
        condition = condition | ((Job.account == account) & (Job.idempotency_key == key))
    with engine.connect() as conn:
        row = conn.execute(select(Job.id, Job.state, Job.reason, Job.account).where(condition)).first()
    if row is None:
        return None
    return IngestResult(row.id, row.state, False, row.reason, {}, row.account)


def _store_recipients(
    conn: Any,
    config: AccountConfig,
    header: JobHeader,
    options: Mapping[str, Any],
    recipients: Iterable[Any],
    planner: BatchPlanner,
    not_before: datetime | None,
    now: datetime,
) -> dict[str, int]:
    adapter = adapter_for(config.vendor)
    counts = {MessageState.PENDING.value: 0, MessageState.REJECTED.value: 0}
    for chunk in _chunks(recipients, CHUNK):
        # Duplicates are found among this chunk and the rows not stored yet, then in the database:
        # memory stays bounded by the chunk, however long the job.
        seen = planner.buffered_phones()
        rows = [_recipient_row(config, header, options, adapter, raw, seen, now) for raw in chunk]
        for row in rows:
            row["job_id"] = planner.job_id
        phones = [r["phone"] for r in rows if r["state"] == "pending"]
        earlier, opted_out = _in_job(conn, planner.job_id, phones), _opted_out(conn, config.key, phones)
        for row in rows:
            if row["state"] != "pending":
                continue
            if row["phone"] in earlier:
                row.update(state=MessageState.REJECTED.value, reason=DUPLICATE, text=None)
            elif row["phone"] in opted_out:
                row.update(state=MessageState.REJECTED.value, reason="the number opted out", text=None)
        rejected = [r for r in rows if r["state"] == "rejected"]
        pending = [r for r in rows if r["state"] == "pending"]
        for row in pending:
            row["not_before"] = not_before
        if rejected:
            conn.execute(insert(Message), rejected)
        planner.add(pending)
        counts["pending"] += len(pending)
        counts["rejected"] += len(rejected)
    planner.flush()
    return counts


def _recipient_row(
    config: AccountConfig,
    header: JobHeader,
    options: Mapping[str, Any],
    adapter: Any,
    raw: Any,
    seen: set[str],
    now: datetime,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "job_id": None,
        "account": config.key,
        "phone": "",
        "text": None,
        "vars": None,
        "state": MessageState.PENDING.value,
        "reason": None,
        "attempts": 0,
        "not_before": None,
        "created_at": now,
        "updated_at": now,
        "batch_id": None,
    }
    field = "email" if header.channel == "email" else "phone"
    # Keep what was given as the address even when the rest is wrong, for the operator.
    given = raw.get(field) if isinstance(raw, Mapping) else raw
    row["phone"] = str(given)[:254] if isinstance(given, (str, int)) else ""
    try:
        address, variables = _read_recipient(raw, field)
        row["vars"] = variables or None
        row["phone"] = _address(address, header.channel, config.account.country)
        if row["phone"] in seen:
            raise ValueError(DUPLICATE)
        seen.add(row["phone"])
        text = render(header.text, variables)
        if not text.strip():
            raise ValueError("text is empty for this recipient")
        limit = adapter.text_limit(text, options)
        if len(text) > limit:
            raise ValueError(f"text is {len(text)} characters; {config.vendor} takes at most {limit}")
        why = adapter.check_recipient(Recipient(0, row["phone"], text, variables), options)
        if why:
            raise ValueError(why)
        row["text"] = text
    except (BadNumber, TemplateError, ValueError) as exc:
        row.update(state=MessageState.REJECTED.value, reason=str(exc))
    return row


def _address(raw: Any, channel: str, country: str) -> str:
    if channel != "email":
        return to_e164(raw, country)
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 254:
        raise ValueError("email must be an address of at most 254 characters")
    return raw.strip().lower()


def _read_recipient(raw: Any, field: str = "phone") -> tuple[Any, dict[str, str]]:
    if isinstance(raw, (str, int)) and not isinstance(raw, bool):
        return raw, {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"a recipient must be an object with {field!r}, not {type(raw).__name__}")
    unknown = set(raw) - {field, "vars"}
    if unknown:
        raise ValueError(f"unknown recipient field {sorted(map(str, unknown))[0]!r}")
    if field not in raw:
        raise ValueError(f"recipient has no {field!r}")
    variables = raw.get("vars") or {}
    if not isinstance(variables, Mapping):
        raise ValueError("'vars' must be an object of names to values")
    clean: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"variable {name!r} must be text or a number")
        clean[str(name)] = str(value)
    return raw[field], clean


def _in_job(conn: Any, job_id: str, phones: list[str]) -> set[str]:
    if not phones:
        return set()
    query = select(Message.phone).where(Message.job_id == job_id, Message.phone.in_(phones))
    return set(conn.execute(query).scalars())


def _opted_out(conn: Any, account: str, phones: list[str]) -> set[str]:
    if not phones:
        return set()
    query = select(OptOut.phone).where(OptOut.account.in_([account, "*"]), OptOut.phone.in_(phones))
    return set(conn.execute(query).scalars())


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def reject_job(engine: Engine, job_id: str, account: Any, reason: str, now: datetime) -> IngestResult:
    """Store a job that cannot be read, with its reason; its key stays free for a fixed retry."""
    account_text = account[:100] if isinstance(account, str) else None
    with engine.begin() as conn:
        if conn.execute(select(Job.id).where(Job.id == job_id)).first() is None:
            conn.execute(
                insert(Job).values(
                    id=job_id,
                    account=account_text,
                    state=JobState.REJECTED,
                    reason=reason,
                    priority="bulk",
                    recipients=0,
                    created_at=now,
                )
            )
    return IngestResult(job_id, JobState.REJECTED, True, reason, {}, account_text)


def describe(exc: ValidationError) -> str:
    """Say what is wrong with a job in one line, without echoing its (maybe huge) values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "job"
        problems.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
