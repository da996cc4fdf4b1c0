"""A job's row as ingest answers for it: ``IngestResult``, the lookup by id or idempotency key, and
the rejection stored for a job that cannot be read (or whose recipients' source broke).

A rejected job keeps a one-line reason and a redacted excerpt of what came in; its idempotency key
stays free for a fixed retry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from dispatcher.intake import excerpt, storable
from dispatcher.models import Job, JobState, Message, MessageState
from dispatcher.recipients import MAX_REASON_CHARS, PENDING


@dataclass
class IngestResult:
    """What ingest did with a job."""

    job_id: str
    state: str
    created: bool
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    account: str | None = None
    #: raw recipients stored so far (a job still ``ingesting`` resumes after them)
    ingested: int = 0


def find_existing(engine: Engine, job_id: str, account: str, key: str | None) -> IngestResult | None:
    """Return the job already stored under this id or idempotency key, if any."""
    condition = Job.id == job_id
    if key is not None:
        condition = condition | ((Job.account == account) & (Job.idempotency_key == key))
    query = select(Job.id, Job.state, Job.reason, Job.account, Job.ingested).where(condition)
    with engine.connect() as conn:
        # The row under this id first: a resumed job is found even when another holds the key.
        rows = sorted(conn.execute(query).all(), key=lambda r: r.id != job_id)
    if not rows:
        return None
    row = rows[0]
    return IngestResult(row.id, row.state, False, row.reason, {}, row.account, row.ingested or 0)


def reject_job(
    engine: Engine, job_id: str, account: Any, reason: str, now: datetime, raw: Any = None
) -> IngestResult:
    """Store a job that cannot be read, with its reason and an excerpt of what came in.

    Its idempotency key stays free for a fixed retry. A finished job already stored under the id
    is kept; one still ingesting (a retry that now fails a check, e.g. its expiry passed) ends.
    """
    account_text = storable(account[:100]) if isinstance(account, str) else None
    reason = storable(reason)[:MAX_REASON_CHARS]
    payload = None if raw is None else excerpt(raw)
    with engine.begin() as conn:
        stored = conn.execute(select(Job.id, Job.state, Job.reason, Job.account).where(Job.id == job_id)).first()
        if stored is not None and stored.state == JobState.INGESTING:
            end_ingesting(conn, job_id, reason, payload or "", now)
            return IngestResult(stored.id, JobState.REJECTED, False, reason, {}, stored.account)
        if stored is not None:
            return IngestResult(stored.id, stored.state, False, stored.reason, {}, stored.account)
        conn.execute(
            insert(Job).values(
                id=job_id,
                account=account_text,
                state=JobState.REJECTED,
                reason=reason,
                priority="bulk",
                recipients=0,
                payload=payload,
                created_at=now,
            )
        )
    return IngestResult(job_id, JobState.REJECTED, True, reason, {}, account_text)


def end_ingesting(conn: Connection, job_id: str, reason: str, payload: str, now: datetime) -> None:
    """End a job still ingesting: rejected with why; its rows still waiting canceled."""
    # Half a job is not the job that was asked for: what still waits is canceled; what already
    # went out (batches of a job still ingesting may be released early) stays as it is.
    conn.execute(
        update(Message)
        .where(Message.job_id == job_id, Message.state == PENDING)
        .values(state=MessageState.CANCELED.value, reason=f"canceled: {reason}"[:MAX_REASON_CHARS], updated_at=now)
    )
    conn.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.INGESTING)
        .values(state=JobState.REJECTED, reason=reason, payload=payload)
    )
