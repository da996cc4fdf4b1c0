"""The operator's decision to send a job's ``unknown`` messages again.

An ``unknown`` message may have reached the handset; nothing resends it on its own. A row whose
vendor id is stored was taken by the vendor, so only a report resolves it: it is never resent.
The rest go back to ``pending`` (a new attempt) with a history entry naming who decided and when;
the update is guarded by ``state = 'unknown'``, so one decision never resends a row twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, insert, select, update

from dispatcher.models import Batch, BatchState, Message, MessageEvent, MessageState


@dataclass(frozen=True)
class UnknownRow:
    """One message a resend would put back to pending."""

    id: int
    account: str
    address: str
    since: datetime


def _resendable(job_id: str) -> tuple[ColumnElement[bool], ...]:
    return (
        Message.job_id == job_id,
        Message.state == MessageState.UNKNOWN.value,
        Message.vendor_id.is_(None),
    )


def unknown_rows(engine: Engine, job_id: str) -> list[UnknownRow]:
    """Return the job's unknown messages that a resend would put back to pending."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.id, Message.account, Message.address, Message.updated_at)
            .where(*_resendable(job_id))
            .order_by(Message.id)
        ).all()
    return [UnknownRow(row.id, row.account, row.address, row.updated_at) for row in rows]


def resend_unknown(engine: Engine, job_id: str, ids: list[int], by: str, now: datetime) -> int:
    """Put these unknown messages of the job back to pending, recording who decided; return how many."""
    if not ids:
        return 0
    with engine.begin() as conn:
        rows = conn.execute(
            update(Message)
            .where(*_resendable(job_id), Message.id.in_(ids))
            .values(state=MessageState.PENDING.value, not_before=None, reason=None, updated_at=now)
            .returning(Message.id, Message.batch_id)
        ).all()
        if not rows:
            return 0
        conn.execute(
            insert(MessageEvent),
            [
                {
                    "message_id": row.id,
                    "from_state": MessageState.UNKNOWN.value,
                    "to_state": MessageState.PENDING.value,
                    "reason": f"resend-unknown decided by {by}",
                    "at": now,
                }
                for row in rows
            ],
        )
        # Their batches wait again, due now: beat's next sweep queues them.
        batches = sorted({row.batch_id for row in rows if row.batch_id is not None})
        conn.execute(
            update(Batch)
            .where(Batch.id.in_(batches), Batch.state == BatchState.DONE.value)
            .values(state=BatchState.WAITING.value, not_before=None)
        )
    return len(rows)


def command(job_id: str, yes: bool, by: str | None) -> int:
    """``dispatcher resend-unknown JOB``: list, ask, resend; return the exit code."""
    import getpass

    from dispatcher.clock import make_clock
    from dispatcher.config import Settings
    from dispatcher.db import make_engine

    settings = Settings()
    engine = make_engine(settings.database_url)
    rows = unknown_rows(engine, job_id)
    if not rows:
        print(f"job {job_id}: no unknown message to resend")
        return 0
    for row in rows:
        print(f"{row.id}\t{row.account}\t{row.address}\tunknown since {row.since:%Y-%m-%d %H:%M:%S} UTC")
    print(f"{len(rows)} message(s) may have reached the handset already; resending may deliver them twice.")
    if not yes and input("Resend them? [y/N] ").strip().lower() not in ("y", "yes"):
        print("nothing resent")
        return 1
    done = resend_unknown(
        engine, job_id, [row.id for row in rows], by or getpass.getuser(), make_clock(settings.clock_file).now()
    )
    print(f"{done} message(s) back to pending")
    return 0
