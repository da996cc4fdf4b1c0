"""Batching: cut an account's pending recipients into requests within its vendor's limits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Text, bindparam, cast, delete, func, insert, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dispatcher.config import AccountConfig
from dispatcher.models import Batch, BatchState, Message
from dispatcher.vendors import adapter_for
from dispatcher.vendors.base import Limits
from dispatcher.windows import Window

#: recipients of one task for vendors that take one number per request (one request each)
SINGLE_RECIPIENT_BATCH = 20


def batch_size(config: AccountConfig) -> int:
    """Recipients per batch (one task): the vendor's request size, never above its hard cap.

    Where a request carries one number, a task carries a few, so a job is not one task per
    recipient; few enough that their requests fit the task's time limit.
    """
    limits: Limits = adapter_for(config.vendor).limits
    if limits.hard_max_recipients == 1:
        # Requests in flight together go out as one task's: a task carries as many rounds of them.
        return SINGLE_RECIPIENT_BATCH * config.policy.max_in_flight
    return max(1, min(limits.batch_size, limits.hard_max_recipients))


def first_opening(window: Window, send_at: datetime | None, now: datetime) -> datetime | None:
    """Return when a job may first go out, or None for right away.

    Only windows with a fixed zone are known before the phone; a window read in the
    destination's zone is checked per message when the batch is sent.
    """
    start = max(send_at, now) if send_at else now
    if window.timezone:
        start = window.next_opening(start)
    return start if start > now else None


class BatchPlanner:
    """Stores pending message rows of one job batch by batch, each address once per job."""

    def __init__(
        self,
        conn: Connection,
        config: AccountConfig,
        job_id: str,
        priority: str,
        not_before: datetime | None,
        now: datetime,
    ):
        self.conn = conn
        self.config = config
        self.job_id = job_id
        self.priority = priority
        self.not_before = not_before
        self.now = now
        self.size = batch_size(config)
        self.batches = 0

    def store(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store rows in batches of the vendor's size; return those the job already holds.

        Every batch is whole when its transaction commits: the caller stores a chunk's rows in
        one call and commits, so no batch waits half-built for the next chunk.
        """
        turned_away: list[dict[str, Any]] = []
        for start in range(0, len(rows), self.size):
            turned_away += self._store(rows[start : start + self.size])
        return turned_away

    def _store(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        batch_id = self.conn.execute(
            insert(Batch)
            .values(
                job_id=self.job_id,
                account=self.config.key,
                priority=self.priority,
                state=BatchState.WAITING,
                not_before=self.not_before,
                created_at=self.now,
            )
            .returning(Batch.id)
        ).scalar_one()
        for row in rows:
            row["batch_id"] = batch_id
        stored = insert_once(self.conn, rows)
        if not stored:
            self.conn.execute(delete(Batch).where(Batch.id == batch_id))
            return list(rows)
        self.batches += 1
        return [row for row in rows if row["address"] not in stored]


def insert_once(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert message rows of one batch, skipping an address the job already holds; return those stored.

    The partial unique index ``uq_messages_job_address`` (job, address, where not rejected) decides,
    at constant cost per row however large the job: no lookup of the job's earlier addresses.
    """
    stmt: SqliteInsert | PgInsert
    if conn.dialect.name != "postgresql":
        stmt = sqlite_insert(Message).on_conflict_do_nothing(index_elements=_KEY, index_where=_NOT_REJECTED)
        return set(conn.execute(stmt.returning(Message.address), list(rows)).scalars())
    # PostgreSQL gets the rows as three arrays: one short statement per batch instead of a
    # thousand-row VALUES list, whose fourteen thousand parameters cost more to convert and
    # parse than the rows cost to write. The other columns are the same for the whole batch.
    given = (
        func.unnest(
            bindparam("addresses", [r["address"] for r in rows], type_=ARRAY(Text)),
            bindparam("texts", [r["text"] for r in rows], type_=ARRAY(Text)),
            bindparam(
                "vars", [None if r["vars"] is None else json.dumps(r["vars"]) for r in rows], type_=ARRAY(Text)
            ),
        )
        .table_valued("address", "text", "vars")
        .render_derived(name="given")
    )
    table = Message.__table__
    same = {name: literal(rows[0][name], table.c[name].type) for name in _BATCH_COLUMNS}
    query = select(*same.values(), given.c.address, given.c.text, cast(given.c.vars, JSON))
    stmt = (
        pg_insert(Message)
        .from_select([*same, "address", "text", "vars"], query)
        .on_conflict_do_nothing(index_elements=_KEY, index_where=_NOT_REJECTED)
    )
    return set(conn.execute(stmt.returning(Message.address)).scalars())


#: the unique key that keeps one pending-or-later row per address of a job
_KEY, _NOT_REJECTED = ["job_id", "address"], text("state <> 'rejected'")
#: message columns whose value is the same for every row of a batch
_BATCH_COLUMNS = (
    "job_id", "batch_id", "account", "state", "attempts", "not_before", "deadline", "created_at", "updated_at",
)  # fmt: skip
