"""Pausing an account (no credit, bad credentials): its messages wait, nothing is failed.

A pause is a time in ``account_states``; the messages it held carry it as their ``not_before``
(and their batches too). Resuming clears all three, so the waiting messages are due at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.models import AccountState, Batch, BatchState, Message, MessageState

#: how the reason of a pause an operator asked for begins: only an operator ends such a pause
OPERATOR_PAUSE = "operator: "


def paused_until(conn: Connection, account: str, now: datetime) -> datetime | None:
    """Return until when the account is paused, or None if it may send."""
    until = conn.execute(select(AccountState.paused_until).where(AccountState.account == account)).scalar()
    return until if until and until > now else None


def pause(conn: Connection, account: str, until: datetime, reason: str, now: datetime) -> None:
    """Pause an account until a time, recording why."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {"account": account, "paused_until": until, "pause_reason": reason, "updated_at": now}
    statement = dialect.insert(AccountState).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[AccountState.account],
        set_={"paused_until": until, "pause_reason": reason, "updated_at": now},
    )
    conn.execute(statement)


def is_operator_pause(reason: str | None) -> bool:
    """Say whether a pause's reason marks it as an operator's (``dispatcher pause``)."""
    return bool(reason and reason.startswith(OPERATOR_PAUSE))


def record_balance(conn: Connection, account: str, credit: float, now: datetime) -> None:
    """Keep the credit a balance query reported, for ``dispatcher accounts``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {"balance": credit, "balance_at": now}
    statement = dialect.insert(AccountState).values(account=account, updated_at=now, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=[AccountState.account], set_=values))


def resume(conn: Connection, account: str, now: datetime) -> None:
    """End an account's pause: its messages and batches waiting for the pause's end are due now.

    Whatever waits no later than the pause's end is made due; a row whose window is still closed
    is moved to the next opening again when its batch is sent, so nothing goes out of hours.
    """
    until = paused_until(conn, account, now)
    conn.execute(
        update(AccountState)
        .where(AccountState.account == account)
        .values(paused_until=None, pause_reason=None, updated_at=now)
    )
    if until is None:
        return
    open_batches = select(Batch.id).where(Batch.account == account, Batch.state != BatchState.DONE.value)
    conn.execute(
        update(Message)
        .where(
            Message.batch_id.in_(open_batches.scalar_subquery()),
            Message.state == MessageState.PENDING.value,
            Message.not_before > now,
            Message.not_before <= until,
        )
        .values(not_before=None, updated_at=now)
    )
    conn.execute(
        update(Batch)
        .where(
            Batch.account == account,
            Batch.state == BatchState.WAITING.value,
            Batch.not_before > now,
            Batch.not_before <= until,
        )
        .values(not_before=None)
    )
