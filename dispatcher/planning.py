"""Batching: cut an account's pending recipients into requests within its vendor's limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from dispatcher.config import AccountConfig
from dispatcher.models import Batch, BatchState, Message
from dispatcher.vendors import adapter_for
from dispatcher.windows import Window

#: recipients of one task for vendors that take one number per request (one request each)
SINGLE_RECIPIENT_BATCH = 20


def batch_size(config: AccountConfig) -> int:
    """Recipients per batch (one task): the vendor's request size, never above its hard cap.

    Where a request carries one number, a task carries a few, so a job is not one task per
    recipient; few enough that their requests fit the task's time limit.
    """
    limits = adapter_for(config.vendor).limits
    if limits.hard_max_recipients == 1:
        return SINGLE_RECIPIENT_BATCH
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
    """Collects pending message rows of one job and stores them batch by batch."""

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
        self._rows: list[dict[str, Any]] = []
        self.batches = 0

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Take pending rows; every full batch is stored at once."""
        self._rows.extend(rows)
        while len(self._rows) >= self.size:
            self._store(self._rows[: self.size])
            del self._rows[: self.size]

    def buffered_phones(self) -> set[str]:
        """Phones of the rows taken but not stored yet."""
        return {row["phone"] for row in self._rows}

    def flush(self) -> None:
        """Store the last, partial batch."""
        if self._rows:
            self._store(self._rows)
            self._rows = []

    def _store(self, rows: Sequence[dict[str, Any]]) -> None:
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
        self.conn.execute(insert(Message), list(rows))
        self.batches += 1
