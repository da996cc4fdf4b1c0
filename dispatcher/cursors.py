"""Durable poll cursors: where the last poll of one account and kind got to, and when it ran.

A poll claims its turn with a guarded update of ``last_run_at``: a second beat (or a worker
redelivering the task) that ticks before the account's interval has passed finds it too early
and does nothing. The cursor's value is written in the same database as what the poll stored,
so a restarted beat or worker resumes where the last finished poll stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.models import PollCursor

STATUS = "status"
REPLIES = "replies"


def claim_turn(engine: Engine, account: str, kind: str, now: datetime, interval: float) -> bool:
    """Stamp this poll's start if the account's interval has passed since the last; False if too early."""
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(PollCursor)
            .values(account=account, kind=kind, value=None, updated_at=now, last_run_at=None)
            .on_conflict_do_nothing()
        )
        claimed = conn.execute(
            update(PollCursor)
            .where(
                PollCursor.account == account,
                PollCursor.kind == kind,
                or_(
                    PollCursor.last_run_at.is_(None),
                    PollCursor.last_run_at <= now - timedelta(seconds=interval),
                    # The clock was set back by more than an interval: the stamp says nothing.
                    PollCursor.last_run_at > now + timedelta(seconds=interval),
                ),
            )
            .values(last_run_at=now)
        )
        return claimed.rowcount == 1


def read(engine: Engine, account: str, kind: str) -> str | None:
    """Return the cursor's value, or None where no poll has stored one."""
    with engine.connect() as conn:
        return conn.execute(
            select(PollCursor.value).where(PollCursor.account == account, PollCursor.kind == kind)
        ).scalar()


def write(engine: Engine, account: str, kind: str, value: str | None, now: datetime) -> None:
    """Store where the poll got to."""
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(PollCursor)
            .values(account=account, kind=kind, value=value, updated_at=now)
            .on_conflict_do_update(index_elements=["account", "kind"], set_={"value": value, "updated_at": now})
        )
