"""The release sweep: queue batches whose time has come, recover lost tasks and lost workers.

Run by beat every few seconds, and by a task right after a job is stored or a batch finishes.
Only ``max_queued_batches`` batches of one account sit in the broker at once; the rest wait in
the database, so a million-recipient job never floods the queue with tasks that would only
wait for the account's pause.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, func, insert, select, update

from dispatcher import account_state
from dispatcher.config import Settings
from dispatcher.models import Batch, BatchState, Message, MessageEvent, MessageState

#: enqueue(batch_id, priority) hands a batch to the broker
Enqueue = Callable[[int, str], None]

STALE_REASON = "no reply was stored: the worker may have died mid-request (not resent)"


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
        ids = (
            conn.execute(
                update(Message)
                .where(Message.state == MessageState.SENDING.value, Message.updated_at < limit)
                .values(state=MessageState.UNKNOWN.value, reason=STALE_REASON, updated_at=now)
                .returning(Message.id)
            )
            .scalars()
            .all()
        )
        if ids:
            conn.execute(
                insert(MessageEvent),
                [
                    {
                        "message_id": i,
                        "from_state": "sending",
                        "to_state": "unknown",
                        "reason": STALE_REASON,
                        "at": now,
                    }
                    for i in ids
                ],
            )
    return len(ids)


def _is_due(settings: Settings, now: datetime):  # type: ignore[no-untyped-def]
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
        in_flight = conn.execute(
            select(func.count()).where(
                Batch.account == account, Batch.state == BatchState.QUEUED.value, Batch.enqueued_at > lost
            )
        ).scalar_one()
        room = settings.max_queued_batches - in_flight
        if room <= 0:
            return 0
        otp_first = case((Batch.priority == "otp", 0), else_=1)
        picked = conn.execute(
            select(Batch.id, Batch.priority, Batch.state)
            .where(Batch.account == account, _is_due(settings, now))
            .order_by(otp_first, Batch.id)
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
