"""Pausing an account (no credit, bad credentials): its messages wait, nothing is failed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.models import AccountState


def paused_until(conn: Connection, account: str, now: datetime) -> datetime | None:
    """Return until when the account is paused, or None if it may send."""
    until = conn.execute(select(AccountState.paused_until).where(AccountState.account == account)).scalar()
    return until if until and until > now else None


def pause(conn: Connection, account: str, until: datetime | None, reason: str | None, now: datetime) -> None:
    """Pause an account until a time (None resumes it), recording why."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = {"account": account, "paused_until": until, "pause_reason": reason, "updated_at": now}
    statement = dialect.insert(AccountState).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[AccountState.account],
        set_={"paused_until": until, "pause_reason": reason, "updated_at": now},
    )
    conn.execute(statement)
