"""Turning per-recipient results into message states, with history, in one transaction.

Every update is guarded by ``state = 'sending'``: only the worker that claimed a row records it,
and only the rows it still holds get a history event, pause the account or opt a phone out (a
reply that comes after the sweep declared its rows ``unknown`` changes nothing).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Connection, Integer, Text, bindparam, insert, select, text, update

from dispatcher import account_state, metrics
from dispatcher.config import AccountConfig, AccountPolicy
from dispatcher.db import is_postgres
from dispatcher.inbound import opt_out
from dispatcher.models import Batch, BatchState, Message, MessageEvent, MessageState, UTCDateTime
from dispatcher.vendors.base import Outcome, Result

log = logging.getLogger("dispatcher.outcomes")

#: seconds before re-trying a number the vendor said is outside its hours while ours say open
WINDOW_RECHECK = 900.0


@dataclass(frozen=True)
class Claimed:
    """A row this worker claimed: what the outcome needs to know about it."""

    message_id: int
    #: E.164 phone, or the email address on the email channel
    address: str
    attempts: int
    created_at: datetime


def backoff(
    attempt: int, base: float, cap: float, retry_after: float | None = None, jitter: float | None = None
) -> float:
    """Seconds to wait before try ``attempt + 1``: exponential, capped, with jitter (0..1)."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return max(_jittered(ceiling, jitter), retry_after or 0.0)


def defer_delay(
    age: float, base: float, cap: float, retry_after: float | None = None, jitter: float | None = None
) -> float:
    """Seconds to wait after a 'nothing sent, come back later': up to a quarter of the message's age.

    A deferral spends no attempt, so the attempt count cannot grow the wait; the age does, which
    still backs off exponentially (each wait adds up to a quarter of the time already waited).
    """
    ceiling = min(cap, max(base, age / 4))
    return max(_jittered(ceiling, jitter), retry_after or 0.0)


def _jittered(ceiling: float, jitter: float | None) -> float:
    """Between half the ceiling and the ceiling."""
    return ceiling / 2 + ceiling / 2 * (random.random() if jitter is None else jitter)


def record(
    conn: Connection,
    config: AccountConfig,
    claimed: dict[int, Claimed],
    results: Sequence[Result],
    now: datetime,
    retry_after: float | None = None,
) -> dict[str, int]:
    """Store each result as the message's new state; return the count per new state."""
    results = [r for r in results if r.message_id in claimed]
    # One jitter for the whole reply: rows that failed together wait together and go out again in
    # one request, instead of one request each.
    jitter = random.random()
    # Only a deferral reads the deadline (past it, the row expires instead of waiting again).
    deadlines = _deadlines(conn, [r.message_id for r in results if r.outcome is Outcome.DEFER])
    rows = {
        r.message_id: _transition(
            config, claimed[r.message_id], r, now, retry_after, jitter, deadlines.get(r.message_id)
        )
        for r in results
    }
    mine = _store(conn, list(rows.values()), now)
    if len(mine) < len(results):
        # The sweep declared them unknown before this reply came: history must agree with state.
        log.warning(
            "a reply came for rows no longer sending; their state is kept",
            extra={"account": config.key, "rows": len(results) - len(mine)},
        )
    results = [r for r in results if r.message_id in mine]
    stored = [rows[r.message_id] for r in results]
    _pause_and_opt_out(conn, config, claimed, results, now)
    _split_batch(conn, [r.message_id for r in results if r.split], now)
    counts: dict[str, int] = {}
    for row in stored:
        counts[row["b_state"]] = counts.get(row["b_state"], 0) + 1
    metrics.count_recorded(
        config.key, config.vendor, [(r.outcome, row["b_state"]) for r, row in zip(results, stored, strict=True)]
    )
    return counts


def _deadlines(conn: Connection, ids: Sequence[int]) -> dict[int, datetime | None]:
    if not ids:
        return {}
    rows = conn.execute(select(Message.id, Message.deadline).where(Message.id.in_(ids)))
    return {row.id: row.deadline for row in rows}


def _pause_and_opt_out(
    conn: Connection, config: AccountConfig, claimed: dict[int, Claimed], results: Sequence[Result], now: datetime
) -> None:
    """What recorded results say about the account (pause) and about phones (opt out)."""
    pausing = [r for r in results if r.outcome is Outcome.PAUSE_ACCOUNT]
    if pausing:
        until = now + timedelta(seconds=config.policy.pause_seconds)
        account_state.pause(conn, config.key, until, pausing[-1].reason or "the vendor refused the account", now)
    blocked = [r for r in results if r.opt_out]
    if blocked:
        reason = f"the vendor blocks it: {blocked[0].reason}"
        opt_out(conn, config.key, sorted({claimed[r.message_id].address for r in blocked}), reason, now)


def _split_batch(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Rows refused as too many for one request: half of each batch's move to a batch of their own.

    The next request of either batch then carries at most half as many numbers; a repeated
    refusal halves them again.
    """
    if len(ids) < 2:
        return
    rows = conn.execute(
        select(Message.id, Message.batch_id, Message.not_before)
        .where(Message.id.in_(ids), Message.state == MessageState.PENDING.value)
        .order_by(Message.id)
    ).all()
    by_batch: dict[int, list[Any]] = {}
    for row in rows:
        by_batch.setdefault(row.batch_id, []).append(row)
    for batch_id, members in by_batch.items():
        moved = members[len(members) // 2 :]
        if len(moved) == len(members):
            continue
        batch = conn.execute(select(Batch).where(Batch.id == batch_id)).one()
        new_id = conn.execute(
            insert(Batch)
            .values(
                job_id=batch.job_id,
                account=batch.account,
                priority=batch.priority,
                state=BatchState.WAITING.value,
                not_before=min((r.not_before for r in moved if r.not_before), default=None),
                created_at=now,
            )
            .returning(Batch.id)
        ).scalar_one()
        conn.execute(update(Message).where(Message.id.in_([r.id for r in moved])).values(batch_id=new_id))


#: the column each key of ``_transition``'s row sets
_STORED = {
    "state": "b_state",
    "reason": "b_reason",
    "vendor_id": "b_vendor_id",
    "vendor_code": "b_code",
    "not_before": "b_not_before",
    "sent_at": "b_sent_at",
    "attempts": "b_attempts",
    "pin_hash": "b_pin_hash",
}


def _store(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> set[int]:
    """Write the new states of the rows still 'sending' and one history event each; return their ids.

    The update is guarded by ``state = 'sending'`` and takes the rows' locks, so the stale sweep
    cannot turn a row 'unknown' between the check and the write. On PostgreSQL it is one
    statement, ``UPDATE ... FROM (VALUES ...)``; the events are one multi-row insert.
    """
    if not rows:
        return set()
    if is_postgres(conn.engine):
        mine = _store_set_wise(conn, rows, now)
    else:
        held = conn.execute(
            update(Message)
            .where(Message.id.in_([r["b_id"] for r in rows]), Message.state == MessageState.SENDING.value)
            .values(updated_at=now)
            .returning(Message.id)
        )
        mine = set(held.scalars())
        if mine:
            conn.execute(
                update(Message)
                .where(Message.id == bindparam("b_id"), Message.state == MessageState.SENDING.value)
                .values(**{name: bindparam(key) for name, key in _STORED.items()}, updated_at=now),
                [r for r in rows if r["b_id"] in mine],
            )
    if mine:
        conn.execute(
            insert(MessageEvent),
            [
                {
                    "message_id": r["b_id"],
                    "from_state": MessageState.SENDING.value,
                    "to_state": r["b_state"],
                    "code": r["b_code"],
                    "reason": r["b_reason"],
                    "at": now,
                }
                for r in rows
                if r["b_id"] in mine
            ],
        )
    return mine


#: the guarded update of a whole reply in one statement (PostgreSQL): one array per column, so
#: its text (and the server's plan) is the same for 1 row or 1000
_UPDATE_FROM_ARRAYS = text(
    """
    UPDATE messages AS m
    SET state = r.state, reason = r.reason, vendor_id = r.vendor_id, vendor_code = r.vendor_code,
        not_before = r.not_before, sent_at = r.sent_at, attempts = r.attempts, pin_hash = r.pin_hash,
        updated_at = :now
    FROM unnest(:id, :state, :reason, :vendor_id, :vendor_code, :not_before, :sent_at, :attempts, :pin_hash)
        AS r (id, state, reason, vendor_id, vendor_code, not_before, sent_at, attempts, pin_hash)
    WHERE m.id = r.id AND m.id = ANY(:id) AND m.state = 'sending'
    RETURNING m.id
    """
).bindparams(
    bindparam("now", type_=UTCDateTime()),
    bindparam("id", type_=ARRAY(BigInteger())),
    bindparam("state", type_=ARRAY(Text())),
    bindparam("reason", type_=ARRAY(Text())),
    bindparam("vendor_id", type_=ARRAY(Text())),
    bindparam("vendor_code", type_=ARRAY(Text())),
    bindparam("not_before", type_=ARRAY(UTCDateTime())),
    bindparam("sent_at", type_=ARRAY(UTCDateTime())),
    bindparam("attempts", type_=ARRAY(Integer())),
    bindparam("pin_hash", type_=ARRAY(Text())),
)


def _store_set_wise(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> set[int]:
    """The guarded update of all rows in one statement (PostgreSQL)."""
    arrays = {name: [r[key] for r in rows] for name, key in _STORED.items()}
    stored = conn.execute(_UPDATE_FROM_ARRAYS, {"now": now, "id": [r["b_id"] for r in rows], **arrays})
    return set(stored.scalars())


def _transition(
    config: AccountConfig,
    row: Claimed,
    result: Result,
    now: datetime,
    retry_after: float | None,
    jitter: float | None = None,
    deadline: datetime | None = None,
) -> dict[str, Any]:
    policy = config.policy
    values: dict[str, Any] = {
        "b_id": row.message_id,
        "b_state": MessageState.FAILED.value,
        "b_reason": result.reason or None,
        "b_vendor_id": result.vendor_id,
        "b_code": result.code,
        "b_not_before": None,
        "b_sent_at": None,
        "b_attempts": row.attempts,
        "b_pin_hash": result.pin_hash,
    }
    outcome = result.outcome
    if outcome is Outcome.ACCEPTED:
        values.update(b_state=MessageState.SENT.value, b_sent_at=now, b_reason=None)
    elif outcome is Outcome.UNKNOWN:
        values.update(b_state=MessageState.UNKNOWN.value)
    elif outcome is Outcome.RETRY:
        age = (now - row.created_at).total_seconds()
        if row.attempts >= policy.max_attempts or age >= policy.max_age:
            values["b_reason"] = f"gave up after {row.attempts} attempts: {result.reason}"
        else:
            delay = backoff(row.attempts, policy.retry_base, policy.retry_max, retry_after, jitter)
            values.update(b_state=MessageState.PENDING.value, b_not_before=now + timedelta(seconds=delay))
    elif outcome is Outcome.DEFER:
        values.update(_deferred(policy, row, result, now, retry_after, jitter, deadline))
    elif outcome is Outcome.WAIT_WINDOW:
        opening = policy.window.next_opening(now, row.address)
        if opening <= now:
            opening = now + timedelta(seconds=WINDOW_RECHECK)
        # Waiting for the window is not a failed attempt.
        values.update(b_state=MessageState.PENDING.value, b_not_before=opening, b_attempts=row.attempts - 1)
    elif outcome is Outcome.PAUSE_ACCOUNT:
        until = now + timedelta(seconds=policy.pause_seconds)
        values.update(b_state=MessageState.PENDING.value, b_not_before=until, b_attempts=row.attempts - 1)
    return values


def _deferred(
    policy: AccountPolicy,
    row: Claimed,
    result: Result,
    now: datetime,
    retry_after: float | None,
    jitter: float | None,
    deadline: datetime | None,
) -> dict[str, Any]:
    """Nothing was sent: wait without spending the attempt; past the message's deadline it expires."""
    deadline = deadline or row.created_at + timedelta(seconds=policy.max_age)
    if now >= deadline:
        reason = f"expired while the vendor said to come back later: {result.reason}"
        return {"b_state": MessageState.EXPIRED.value, "b_reason": reason, "b_attempts": row.attempts - 1}
    age = (now - row.created_at).total_seconds()
    delay = defer_delay(age, policy.retry_base, policy.retry_max, retry_after, jitter)
    return {
        "b_state": MessageState.PENDING.value,
        "b_not_before": now + timedelta(seconds=delay),
        "b_attempts": row.attempts - 1,
    }
