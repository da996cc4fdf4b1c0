"""Batching: cut an account's pending recipients into requests within its vendor's limits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    MetaData,
    Table,
    Text,
    cast,
    delete,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from dispatcher.config import AccountConfig
from dispatcher.models import Batch, BatchState, Message
from dispatcher.recipients import DUPLICATE, PENDING, reject
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
    """Stores one job's message rows a chunk at a time: pending ones in batches, each address once."""

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
        """Store a chunk's rows; return the pending ones the job already held, now rejected duplicates.

        Pending rows go in batches of the vendor's size, rejected ones as they are. Every batch is
        whole when its transaction commits: the caller stores a chunk's rows in one call and
        commits, so no batch waits half-built for the next chunk. One statement makes the chunk's
        batches, one writes its rows, and a third removes the batches left empty.
        """
        pending = [row for row in rows if row["state"] == PENDING]
        batch_ids = self._new_batches(-(-len(pending) // self.size))
        for position, row in enumerate(pending):
            row["batch_id"] = batch_ids[position // self.size]
        stored = insert_once(self.conn, rows)
        turned_away = [row for row in pending if row["address"] not in stored]
        for row in turned_away:
            reject(row, DUPLICATE)
        if turned_away:
            insert_once(self.conn, turned_away)
        used = {row["batch_id"] for row in pending if row["state"] == PENDING}
        empty = [batch_id for batch_id in batch_ids if batch_id not in used]
        if empty:
            self.conn.execute(delete(Batch).where(Batch.id.in_(empty)))
        self.batches += len(batch_ids) - len(empty)
        return turned_away

    def _new_batches(self, count: int) -> list[int]:
        """Insert ``count`` waiting batches of this job in one statement; return their ids."""
        if not count:
            return []
        values = {
            "job_id": self.job_id,
            "account": self.config.key,
            "priority": self.priority,
            "state": BatchState.WAITING,
            "not_before": self.not_before,
            "created_at": self.now,
        }
        stmt = insert(Batch).returning(Batch.id, sort_by_parameter_order=True)
        return list(self.conn.execute(stmt, [values] * count).scalars())


def insert_once(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert message rows of one job, skipping a pending address the job already holds.

    Return the addresses of the pending rows stored (rejected rows are always stored). The partial
    unique index ``uq_messages_job_address`` (job, address, where not rejected) decides, at
    constant cost per row however large the job: no lookup of the job's earlier addresses.
    Every row given must share the job's columns (``_JOB_COLUMNS``).
    """
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        return _copy_once(conn, rows)
    pending = [row for row in rows if row["state"] == PENDING]
    rejected = [row for row in rows if row["state"] != PENDING]
    stored: set[str] = set()
    if pending:
        stmt = sqlite_insert(Message).on_conflict_do_nothing(index_elements=_KEY, index_where=_NOT_REJECTED)
        stored = set(conn.execute(stmt.returning(Message.address), pending).scalars())
    if rejected:
        conn.execute(insert(Message), rejected)
    return stored


def _copy_once(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """PostgreSQL: ``COPY`` the rows into a staging table, then one insert-or-ignore per state.

    ``COPY`` moves the rows' own columns (address, text, variables, batch, state, reason) at the
    server's bulk speed; the columns shared by the whole job are bound once in the
    ``INSERT ... SELECT``. The staging table lives for the transaction only.
    """
    conn.exec_driver_sql(_STAGING_DDL)
    conn.exec_driver_sql(f"TRUNCATE {_STAGING.name}")
    statement = f"COPY {_STAGING.name} ({', '.join(_STAGING.c.keys())}) FROM STDIN"
    driver = conn.connection.driver_connection
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with driver.cursor().copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(
                    (
                        row["address"],
                        row["text"],
                        None if row["vars"] is None else json.dumps(row["vars"]),
                        row["batch_id"],
                        row["state"],
                        row["reason"],
                    )
                )
    except dbapi_error as exc:
        # The driver's own error, raised past SQLAlchemy: made SQLAlchemy's, as every other
        # statement's is, so a lost connection is an OperationalError the caller retries, never
        # the job's fault. (The rollback that follows, through SQLAlchemy, retires the connection.)
        raise DBAPIError.instance(
            statement, None, exc, dbapi_error, hide_parameters=True, dialect=conn.dialect
        ) from exc
    table = Message.__table__
    same = [literal(rows[0][name], table.c[name].type) for name in _JOB_COLUMNS]
    staged = _STAGING.c
    columns = [*_JOB_COLUMNS, "address", "text", "vars", "batch_id", "state", "reason"]
    query = select(
        *same, staged.address, staged.text, cast(staged.vars, JSON), staged.batch_id, staged.state, staged.reason
    )
    stored: set[str] = set()
    if any(row["state"] == PENDING for row in rows):
        pending = (
            pg_insert(Message)
            .from_select(columns, query.where(staged.state == PENDING))
            .on_conflict_do_nothing(index_elements=_KEY, index_where=_NOT_REJECTED)
        )
        stored = set(conn.execute(pending.returning(Message.address)).scalars())
    if any(row["state"] != PENDING for row in rows):
        conn.execute(insert(Message).from_select(columns, query.where(staged.state != PENDING)))
    return stored


#: the unique key that keeps one pending-or-later row per address of a job
_KEY, _NOT_REJECTED = ["job_id", "address"], text("state <> 'rejected'")
#: message columns whose value is the same for every row of a job's chunk
_JOB_COLUMNS = ("job_id", "account", "attempts", "not_before", "deadline", "created_at", "updated_at")
#: where a chunk's rows wait for their insert (PostgreSQL): a temporary table, gone at commit
_STAGING = Table(
    "ingest_rows",
    MetaData(),
    Column("address", Text),
    Column("text", Text),
    Column("vars", Text),
    Column("batch_id", BigInteger),
    Column("state", Text),
    Column("reason", Text),
    prefixes=["TEMPORARY"],
)
_STAGING_DDL = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS ingest_rows "
    "(address text, text text, vars text, batch_id bigint, state text, reason text) ON COMMIT DROP"
)
