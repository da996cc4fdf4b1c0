"""The release sweep: queue batches whose time has come, recover lost tasks and lost workers.

Run by beat every few seconds, and by a task right after a job is stored or a batch finishes.
Only ``max_queued_batches`` batches of one account sit in the broker at once; the rest wait in
the database, so a million-recipient job never floods the queue with tasks that would only
wait for the account's pause.

A batch's state is kept here too: a send task ``settle``s it (done, waiting until its next
pending row is due, or queued again soon) and marks it in flight while it runs. Messages past
their ``deadline`` end ``expired`` (``expire``): the sweep takes those nobody claims, a bounded
number at a time, and a send task those of its own batch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)

from dispatcher import account_state, metrics
from dispatcher.config import Settings
from dispatcher.db import is_postgres, transaction
from dispatcher.models import AccountState, Batch, BatchState, Message, MessageEvent, MessageState

#: enqueue(batch_id, priority) hands a batch to the broker
Enqueue = Callable[[int, str], None]

STALE_REASON = "no reply was stored: the worker may have died mid-request (not resent)"
EXPIRED_PREFIX = "expired before it could be sent: "
#: messages one sweep expires at most; the rest wait for the next sweep
EXPIRE_PER_SWEEP = 1000


def release_due(
    engine: Engine, settings: Settings, now: datetime, enqueue: Enqueue, account: str | None = None
) -> int:
    """Queue the due batches (of one account, or all); return how many were queued."""
    queued = 0
    for name in _accounts_with_due_batches(engine, settings, now, account):
        queued += _release_account(engine, settings, now, enqueue, name)
    return queued


def expire_stale_sending(engine: Engine, settings: Settings, now: datetime) -> int:
    """Rows left 'sending' past the timeout become 'unknown'; return how many."""
    limit = now - timedelta(seconds=settings.sending_timeout)
    with engine.begin() as conn:
        stale = Message.updated_at < limit
        return len(transition(conn, stale, MessageState.SENDING, MessageState.UNKNOWN, STALE_REASON, now))


def expire_overdue(
    engine: Engine, now: datetime, configured: Collection[str], limit: int = EXPIRE_PER_SWEEP
) -> int:
    """Pending messages past their deadline end 'expired', at most ``limit``; return how many.

    The sweep's share is the messages nobody claims (paused, windowed or unconfigured accounts);
    a sending task expires those of its batch itself. A NULL deadline is no deadline.
    """
    with engine.begin() as conn:
        overdue = (
            select(Message.id)
            .where(Message.state == MessageState.PENDING.value, Message.deadline <= now)
            .limit(limit)
        )
        if is_postgres(engine):
            overdue = overdue.with_for_update(skip_locked=True)
        # A CTE is read once; as a subquery PostgreSQL may rescan it, and each rescan skips the
        # rows this very statement already updated, so the limit would not hold.
        picked = overdue.cte("overdue")
        return len(expire(conn, now, Message.id.in_(select(picked.c.id)), configured))


def expire(
    conn: Connection, now: datetime, which: ColumnElement[bool], configured: Collection[str] | None = None
) -> list[int]:
    """pending → expired for the rows ``which`` selects whose deadline passed, each saying why it waited."""
    reason = literal(EXPIRED_PREFIX) + _why_waiting(now, configured)
    overdue = and_(which, Message.deadline <= now)
    return transition(conn, overdue, MessageState.PENDING, MessageState.EXPIRED, reason, now)


def _why_waiting(now: datetime, configured: Collection[str] | None) -> ColumnElement[str]:
    paused = (AccountState.account == Message.account, AccountState.paused_until > now)
    pause_reason = select(AccountState.pause_reason).where(*paused).scalar_subquery()
    whens: list[tuple[ColumnElement[bool], ColumnElement[str]]] = [
        (exists().where(*paused), literal("the account is paused: ") + func.coalesce(pause_reason, "no reason"))
    ]
    if configured is not None:
        unknown = literal("the account '") + Message.account + "' is not configured"
        whens.append((Message.account.not_in(list(configured)), unknown))
    # The last reason a row went back to pending (a retryable error, the vendor's window code).
    whens.append((Message.reason.is_not(None), literal("waiting to try again after: ") + Message.reason))
    whens.append((Message.not_before.is_not(None), literal("its sending window or send time had not come")))
    return case(*whens, else_=literal("its turn had not come"))


def transition(
    conn: Connection,
    which: ColumnElement[bool],
    old: MessageState,
    new: MessageState,
    reason: str | ColumnElement[str],
    now: datetime,
) -> list[int]:
    """Guarded old → new for the rows ``which`` selects, one history event each; return their ids."""
    rows = conn.execute(
        update(Message)
        .where(which, Message.state == old.value)
        .values(state=new.value, reason=reason, updated_at=now)
        .returning(Message.id, Message.reason, Message.account)
    ).all()
    metrics.count_moved(new.value, [r.account for r in rows])
    if rows:
        conn.execute(
            insert(MessageEvent),
            [
                {"message_id": r.id, "from_state": old.value, "to_state": new.value, "reason": r.reason, "at": now}
                for r in rows
            ],
        )
    return [r.id for r in rows]


def mark_queued(conn: Connection, batch_id: int, now: datetime) -> None:
    """The batch's task is running or re-queued itself: it is in flight as of now."""
    conn.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.state != BatchState.DONE.value)
        .values(state=BatchState.QUEUED.value, enqueued_at=now)
    )


def settle(
    engine: Engine, settings: Settings, batch_id: int, account: str, now: datetime, hold: float | None
) -> tuple[str, float | None]:
    """Mark a batch done, waiting, or queued again soon; return its state and the countdown.

    ``hold`` puts its next look that many seconds away. Rows another task holds ('sending') never
    make the batch due: that task settles the batch itself, and if it died the stale sweep
    declares them unknown once the sending timeout has passed.
    """
    return transaction(engine, partial(_settle, settings, batch_id, account, now, hold))


def _settle(
    settings: Settings, batch_id: int, account: str, now: datetime, hold: float | None, conn: Connection
) -> tuple[str, float | None]:
    pending = Message.state == MessageState.PENDING.value
    due_now = pending & (Message.not_before.is_(None) | (Message.not_before <= now))
    waiting, due, next_pending, held_since = conn.execute(
        select(
            func.count(case((pending, 1))),
            func.count(case((due_now, 1))),
            func.min(case((pending, Message.not_before))),
            func.min(case((Message.state == MessageState.SENDING.value, Message.updated_at))),
        ).where(
            Message.batch_id == batch_id,
            Message.state.in_([MessageState.PENDING.value, MessageState.SENDING.value]),
        )
    ).one()
    paused = account_state.paused_until(conn, account, now)
    next_due, again_in = None, None
    if waiting == 0 and held_since is None:
        state = BatchState.DONE.value
    elif waiting == 0:
        # Only held rows: look again once the stale sweep may have settled them, not before.
        state, next_due = BatchState.WAITING.value, held_since + timedelta(seconds=settings.sending_timeout)
    else:
        next_due = now if due else next_pending
        if hold is not None:
            next_due = now + timedelta(seconds=hold)
        if paused:
            next_due = max(next_due, paused)
        again_in = max(0.0, (next_due - now).total_seconds())
        state = BatchState.QUEUED.value if again_in <= settings.max_countdown else BatchState.WAITING.value
    conn.execute(
        update(Batch)
        .where(Batch.id == batch_id)
        .values(state=state, not_before=next_due, **({"enqueued_at": now} if state == "queued" else {}))
    )
    return state, again_in if state == BatchState.QUEUED.value else None


def _is_due(settings: Settings, now: datetime) -> ColumnElement[bool]:
    lost = now - timedelta(seconds=settings.requeue_after)
    waiting_due = (Batch.state == BatchState.WAITING.value) & (
        Batch.not_before.is_(None) | (Batch.not_before <= now)
    )
    queued_lost = (Batch.state == BatchState.QUEUED.value) & (Batch.enqueued_at <= lost)
    return waiting_due | queued_lost


def _accounts_with_due_batches(
    engine: Engine, settings: Settings, now: datetime, account: str | None
) -> list[str]:
    query = select(Batch.account).where(_is_due(settings, now)).distinct()
    if account is not None:
        query = query.where(Batch.account == account)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _release_account(engine: Engine, settings: Settings, now: datetime, enqueue: Enqueue, account: str) -> int:
    lost = now - timedelta(seconds=settings.requeue_after)
    with engine.begin() as conn:
        if account_state.paused_until(conn, account, now):
            return 0
        # Each lane has its own room in the broker: bulk batches waiting for the account's slot
        # never keep an OTP batch in the database.
        is_otp = Batch.priority == "otp"
        in_flight = dict(
            conn.execute(
                select(is_otp, func.count())
                .where(Batch.account == account, Batch.state == BatchState.QUEUED.value, Batch.enqueued_at > lost)
                .group_by(is_otp)
            ).all()
        )
        picked: list[Row[int, str, str]] = []
        for otp in (True, False):
            room = settings.max_queued_batches - in_flight.get(otp, 0)
            if room > 0:
                picked += conn.execute(
                    select(Batch.id, Batch.priority, Batch.state)
                    .where(Batch.account == account, is_otp if otp else ~is_otp, _is_due(settings, now))
                    .order_by(Batch.id)
                    .limit(room)
                ).all()
        if not picked:
            return 0
        won = []
        for row in picked:
            # Guarded: of two sweeps running side by side, only one queues a batch.
            result = conn.execute(
                update(Batch)
                .where(Batch.id == row.id, Batch.state == row.state)
                .values(state=BatchState.QUEUED.value, enqueued_at=now)
            )
            if result.rowcount == 1:
                won.append(row)
    for row in won:
        enqueue(row.id, row.priority)
    return len(won)
