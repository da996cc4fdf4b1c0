"""What an operator does without a database shell: cancel a job, list jobs, see, pause and resume accounts.

Plain functions over the engine that return plain data; ``dispatcher.console`` renders them and
``dispatcher.cli`` wires them to commands (and queues what a resume made due).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import Connection, Engine, and_, func, insert, literal, not_, select, update

from dispatcher import account_state, release
from dispatcher.config import AccountConfig
from dispatcher.models import AccountState, Batch, BatchState, Job, JobState, Message, MessageEvent, MessageState

#: the reason a canceled row carries
CANCEL_REASON = "canceled by an operator"
#: how long ``dispatcher pause`` holds an account when no --until is given: until resumed, in practice
PAUSE_FOREVER = timedelta(days=3650)
#: job states whose messages may still be sent, so a cancel stops them
CANCELABLE = (JobState.INGESTING.value, JobState.ACCEPTED.value)


class AccountOverview(TypedDict):
    """One configured account as ``dispatcher accounts`` shows it (times in UTC)."""

    account: str
    vendor: str
    window: str
    window_open: bool
    next_opening: datetime | None
    paused: bool
    paused_until: datetime | None
    pause_reason: str | None
    balance: float | None
    balance_at: datetime | None
    waiting: int


@dataclass
class CancelResult:
    """What ``cancel_job`` did: rows canceled now, rows still in flight (they finish)."""

    job_id: str
    found: bool
    state: str | None = None
    canceled: int = 0
    in_flight: int = 0


def cancel_job(engine: Engine, job_id: str, now: datetime) -> CancelResult:
    """Cancel a job: its pending rows end ``canceled`` (one event each), its batches done."""
    with engine.begin() as conn:
        # The job row first. An ingest still storing recipients claims every chunk with an update
        # guarded on state='ingesting': once this commits, no chunk is added. On PostgreSQL this
        # waits for a chunk being stored, and the row update below (a new snapshot) sees its rows.
        conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(CANCELABLE))
            .values(state=JobState.CANCELED.value, reason=CANCEL_REASON)
        )
        state = conn.execute(select(Job.state).where(Job.id == job_id)).scalar()
        if state is None:
            return CancelResult(job_id, False)
        canceled = _cancel_pending(conn, Message.job_id == job_id, now)
        conn.execute(
            update(Batch)
            .where(Batch.job_id == job_id, Batch.state != BatchState.DONE.value)
            .values(state=BatchState.DONE.value)
        )
        in_flight = conn.execute(
            select(func.count()).where(Message.job_id == job_id, Message.state == MessageState.SENDING.value)
        ).scalar_one()
    return CancelResult(job_id, True, state, canceled, in_flight)


def _cancel_pending(conn: Connection, which: Any, now: datetime) -> int:
    """pending → canceled for the rows ``which`` selects, and one history event each, set-wise.

    Guarded on state='pending': a row a worker claimed first is in flight and finishes; a row
    canceled here can never be claimed (the claim is guarded the same way).
    """
    moved = conn.execute(
        update(Message)
        .where(which, Message.state == MessageState.PENDING.value)
        .values(state=MessageState.CANCELED.value, reason=CANCEL_REASON, updated_at=now)
    ).rowcount
    if moved:
        # The rows this statement moved are the canceled ones stamped now with this reason that
        # have no cancel event yet; a million rows never travel to Python and back.
        already = select(MessageEvent.id).where(
            MessageEvent.message_id == Message.id, MessageEvent.to_state == MessageState.CANCELED.value
        )
        mine = select(
            Message.id, literal(MessageState.PENDING.value), Message.state, Message.reason, Message.updated_at
        ).where(
            which, Message.state == MessageState.CANCELED.value, Message.updated_at == now,
            Message.reason == CANCEL_REASON, not_(already.exists()),
        )  # fmt: skip
        columns = ["message_id", "from_state", "to_state", "reason", "at"]
        conn.execute(insert(MessageEvent).from_select(columns, mine))
    return moved


def cancel_stragglers(conn: Connection, batch_id: int, now: datetime) -> bool:
    """Cancel a canceled job's rows that came back to pending after the cancel; True if its job is canceled.

    A row in flight at the cancel finishes, but a retryable answer puts it back to pending: the
    send path calls this before picking due rows, so such a row is canceled, never sent again.
    """
    job_state = conn.execute(
        select(Job.state).join(Batch, Batch.job_id == Job.id).where(Batch.id == batch_id)
    ).scalar()
    if job_state != JobState.CANCELED.value:
        return False
    which = Message.batch_id == batch_id
    release.transition(conn, which, MessageState.PENDING, MessageState.CANCELED, CANCEL_REASON, now)
    return True


def list_jobs(
    engine: Engine, account: str | None = None, state: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The most recent jobs (newest first), each with its counts per message state."""
    query = select(Job.id, Job.account, Job.state, Job.reason, Job.recipients, Job.created_at)
    if account:
        query = query.where(Job.account == account)
    if state:
        query = query.where(Job.state == state)
    with engine.connect() as conn:
        jobs = conn.execute(query.order_by(Job.created_at.desc(), Job.id).limit(limit)).all()
        counts: dict[str, dict[str, int]] = {job.id: {} for job in jobs}
        if jobs:
            rows = conn.execute(
                select(Message.job_id, Message.state, func.count())
                .where(Message.job_id.in_(list(counts)))
                .group_by(Message.job_id, Message.state)
            ).all()
            for job_id, message_state, n in rows:
                counts[job_id][message_state] = n
    return [{**job._asdict(), "counts": counts[job.id]} for job in jobs]


def accounts_overview(
    engine: Engine, accounts: Mapping[str, AccountConfig], now: datetime
) -> list[AccountOverview]:
    """Per configured account: vendor, window, pause, last balance and messages waiting."""
    with engine.connect() as conn:
        states = {row.account: row for row in conn.execute(select(AccountState)).all()}
        waiting = dict(
            conn.execute(
                select(Message.account, func.count())
                .where(Message.state == MessageState.PENDING.value)
                .group_by(Message.account)
            ).all()
        )
    overview: list[AccountOverview] = []
    for key, config in sorted(accounts.items()):
        window = config.policy.window
        opening = window.next_opening(now)
        state = states.get(key)
        paused = state is not None and state.paused_until is not None and state.paused_until > now
        overview.append(
            {
                "account": key,
                "vendor": config.vendor,
                "window": window.name,
                # A window read in each destination's zone is shown in UTC here.
                "window_open": opening == now,
                "next_opening": None if opening == now else opening,
                "paused": paused,
                "paused_until": state.paused_until if state is not None and paused else None,
                "pause_reason": state.pause_reason if state is not None and paused else None,
                "balance": state.balance if state is not None else None,
                "balance_at": state.balance_at if state is not None else None,
                "waiting": waiting.get(key, 0),
            }
        )
    return overview


def pause_account(
    engine: Engine, account: str, until: datetime | None, reason: str | None, now: datetime
) -> datetime:
    """Pause an account until a time (or for good, in practice); return until when."""
    until = until or now + PAUSE_FOREVER
    with engine.begin() as conn:
        account_state.pause(
            conn, account, until, account_state.OPERATOR_PAUSE + (reason or "no reason given"), now
        )
    return until


def resume_account(engine: Engine, account: str, now: datetime) -> int:
    """End an account's pause: what it held is due now; return how many messages wait on it."""
    with engine.begin() as conn:
        account_state.resume(conn, account, now)
        return conn.execute(
            select(func.count()).where(
                and_(Message.account == account, Message.state == MessageState.PENDING.value)
            )
        ).scalar_one()
