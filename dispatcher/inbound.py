"""What comes back from vendors: delivery reports move messages on, replies are stored once,
and a stop word opts the phone out of the account (checked at ingest from then on).

A reply is linked to the message it answers: the one with the vendor's id where the vendor
gives it (and the phones agree), else the latest message sent to that phone on that account.
The account's stop and start words come from its ``ReplyRules``.

Messages never move backwards: a report moves a ``sent`` message to ``delivered`` or ``failed`` and
resolves an ``unknown`` one; a late or contrary report is kept in the message's history only.
Each report is stored once (``delivery_reports``), so a report polled twice, pushed twice, or
pushed and polled moves a message and writes its history once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Engine,
    Row,
    String,
    Text,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from dispatcher.config import ReplyRules
from dispatcher.errors import BadNumber
from dispatcher.models import (
    DeliveryReport,
    InboundMessage,
    Message,
    MessageEvent,
    MessageState,
    OptOut,
    UTCDateTime,
)
from dispatcher.phones import to_e164
from dispatcher.vendors.base import DeliveryState, Inbound, StatusReport


def record_statuses(
    engine: Engine, account: str, reports: Iterable[StatusReport], now: datetime
) -> dict[str, int]:
    """Store each report once and move its message forward only; return how many moved to each state.

    Set-wise, ``CHUNK`` reports per statement: the messages named are read (and locked) with one
    query, the new reports stored with one insert-or-ignore, the messages moved with one guarded
    update and their history written with one insert, all in one transaction.
    """
    with engine.begin() as conn:
        return store_statuses(conn, account, reports, now)


def store_statuses(
    conn: Connection, account: str, reports: Iterable[StatusReport], now: datetime
) -> dict[str, int]:
    """``record_statuses`` within the caller's transaction (several accounts' reports commit together)."""
    moved: dict[str, int] = {}
    unique: dict[tuple[str, DeliveryState], StatusReport] = {}
    for report in reports:
        if report.vendor_id:
            unique.setdefault((report.vendor_id, report.state), report)
    ordered = sorted(unique.values(), key=lambda r: (_RANK[r.state], r.vendor_id))
    for start in range(0, len(ordered), CHUNK):
        for state, count in _record_chunk(conn, account, ordered[start : start + CHUNK], now).items():
            moved[state] = moved.get(state, 0) + count
    return moved


#: reports stored per statement
CHUNK = 1000
#: how far along a delivery state is: a report never takes a message back
_RANK = {DeliveryState.QUEUED: 0, DeliveryState.SENT: 1, DeliveryState.DELIVERED: 2, DeliveryState.FAILED: 2}
#: the message state a report proves
_PROVES = {
    DeliveryState.QUEUED: MessageState.SENT,
    DeliveryState.SENT: MessageState.SENT,
    DeliveryState.DELIVERED: MessageState.DELIVERED,
    DeliveryState.FAILED: MessageState.FAILED,
}
_MOVABLE = {MessageState.SENT.value, MessageState.UNKNOWN.value}
#: a message as a report finds it: id, vendor_id, state, report_state
_MessageRow: TypeAlias = (
    "Row[int, str | None, str, str | None]"  # a string: SQLAlchemy 2.0's Row takes one argument
)
_COLUMNS = (Message.id, Message.vendor_id, Message.state, Message.report_state)


@dataclass
class _Change:
    """What the reports of one batch do to one message, worked out in rank order as if one by one."""

    id: int
    was: str  #: the state read (the update's guard)
    state: str
    report_state: str | None
    moved: bool = False  #: the state changed (updated_at and sent_at are set)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: target state of each report that moved the message, for the counts returned
    moves: list[str] = field(default_factory=list)

    def apply(self, report: StatusReport, now: datetime) -> None:
        target = _PROVES[report.state].value
        newer = self.report_state is None or _RANK[report.state] >= _RANK[DeliveryState(self.report_state)]
        if newer:
            self.report_state = report.state.value
        moves = self.state in _MOVABLE and target != self.state
        late = not moves and self.state != target and self.state not in _MOVABLE
        if moves or late:
            resolved = self.state == MessageState.UNKNOWN.value
            self.events.append(
                {
                    "message_id": self.id,
                    "from_state": self.state,
                    "to_state": target if moves else self.state,
                    "code": report.code,
                    "reason": ("resolved from delivery report" if resolved else "delivery report")
                    if moves
                    else f"late delivery report: {report.state.value} (state kept)",
                    "at": now,
                }
            )
        if moves:
            self.state, self.moved = target, True
            self.moves.append(target)


def _record_chunk(
    conn: Connection, account: str, reports: Sequence[StatusReport], now: datetime
) -> dict[str, int]:
    postgres = conn.dialect.name == "postgresql"
    rows = _messages_for(conn, account, reports)
    # A report for no message of ours yet (its send reply not recorded) is not stored:
    # the next poll or push brings it again.
    found = [report for report in reports if report.vendor_id in rows]
    if not found:
        return {}
    stored = _store_reports(conn, postgres, account, found, rows, now)
    new = {(vendor_id, state) for vendor_id, state in stored}
    changes: dict[int, _Change] = {}
    for report in found:  # in rank order
        if (report.vendor_id, report.state.value) not in new:
            continue  # stored before: polled twice, pushed twice, or pushed and polled
        row = rows[report.vendor_id]
        change = changes.setdefault(row.id, _Change(row.id, row.state, row.state, row.report_state))
        change.apply(report, now)
    changed = _update(conn, postgres, list(changes.values()), now)
    events = [event for change in changes.values() if change.id in changed for event in change.events]
    if events:
        _write_history(conn, postgres, events, now)
    moved: dict[str, int] = {}
    for change in changes.values():
        if change.id in changed:
            for target in change.moves:
                moved[target] = moved.get(target, 0) + 1
    return moved


def _messages_for(conn: Connection, account: str, reports: Sequence[StatusReport]) -> dict[str, _MessageRow]:
    """The message each report names, by vendor id: the one row holding that vendor id (locked),
    else the one unknown row of the report's phone. A vendor id on several messages names none."""
    wanted = sorted({report.vendor_id for report in reports})
    named = conn.execute(
        select(*_COLUMNS)
        .where(Message.account == account, _among(conn, Message.vendor_id, wanted))
        .order_by(Message.id)
        .with_for_update()
    ).all()
    by_id: dict[str, list[_MessageRow]] = {}
    for row in named:
        by_id.setdefault(row.vendor_id or "", []).append(row)
    rows = {vendor_id: found[0] for vendor_id, found in by_id.items() if len(found) == 1}
    for report in reports:
        if report.vendor_id not in by_id and report.vendor_id not in rows:
            claimed = _unknown_by_phone(conn, account, report)
            if claimed is not None:
                rows[report.vendor_id] = claimed
    return rows


def _among(conn: Connection, column: Any, values: Sequence[str]) -> Any:
    """``column = ANY(:values)`` on PostgreSQL (one plan whatever the count), ``IN`` elsewhere."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("among", list(values), type_=ARRAY(String)))
    return column.in_(values)


def _unknown_by_phone(conn: Connection, account: str, report: StatusReport) -> _MessageRow | None:
    """The one unknown row of the report's phone with no vendor id, which takes the report's vendor id."""
    if not report.phone:
        return None
    unknown = conn.execute(
        select(*_COLUMNS)
        .where(
            Message.account == account,
            Message.address == report.phone,
            Message.state == MessageState.UNKNOWN.value,
            Message.vendor_id.is_(None),
        )
        .limit(2)
    ).all()
    if len(unknown) != 1:
        return None  # none, or several the report could belong to: left for the operator
    claimed = conn.execute(
        update(Message)
        .where(Message.id == unknown[0].id, Message.vendor_id.is_(None))
        .values(vendor_id=report.vendor_id)
    )
    return unknown[0] if claimed.rowcount == 1 else None


#: the new reports of one chunk, stored once (PostgreSQL: one statement text, arrays bound)
_STORE_MANY = text(
    "INSERT INTO delivery_reports (account, vendor_id, state, code, message_id, received_at)"
    " SELECT :account, v.vendor_id, v.state, v.code, v.message_id, :now"
    " FROM unnest(:vendor_ids, :states, :codes, :message_ids) AS v(vendor_id, state, code, message_id)"
    " ON CONFLICT ON CONSTRAINT uq_delivery_report_once DO NOTHING"
    " RETURNING vendor_id, state"
).bindparams(
    bindparam("now", type_=UTCDateTime()),
    bindparam("vendor_ids", type_=ARRAY(String)),
    bindparam("states", type_=ARRAY(String)),
    bindparam("codes", type_=ARRAY(String)),
    bindparam("message_ids", type_=ARRAY(BigInteger)),
)
#: the history rows of one chunk (PostgreSQL)
_HISTORY_MANY = text(
    "INSERT INTO message_events (message_id, from_state, to_state, code, reason, at)"
    " SELECT v.message_id, v.from_state, v.to_state, v.code, v.reason, :now"
    " FROM unnest(:message_ids, :from_states, :to_states, :codes, :reasons)"
    " AS v(message_id, from_state, to_state, code, reason)"
).bindparams(
    bindparam("now", type_=UTCDateTime()),
    bindparam("message_ids", type_=ARRAY(BigInteger)),
    bindparam("from_states", type_=ARRAY(String)),
    bindparam("to_states", type_=ARRAY(String)),
    bindparam("codes", type_=ARRAY(String)),
    bindparam("reasons", type_=ARRAY(Text)),
)


def _store_reports(
    conn: Connection,
    postgres: bool,
    account: str,
    reports: Sequence[StatusReport],
    rows: dict[str, _MessageRow],
    now: datetime,
) -> list[tuple[str, str]]:
    """Insert-or-ignore the reports in one statement; return the (vendor id, state) of the new ones."""
    if postgres:
        arrays = {
            "vendor_ids": [r.vendor_id for r in reports],
            "states": [r.state.value for r in reports],
            "codes": [r.code for r in reports],
            "message_ids": [rows[r.vendor_id].id for r in reports],
        }
        return [(v, s) for v, s in conn.execute(_STORE_MANY, {"account": account, "now": now, **arrays})]
    values = [
        {
            "account": account,
            "vendor_id": r.vendor_id,
            "state": r.state.value,
            "code": r.code,
            "message_id": rows[r.vendor_id].id,
            "received_at": now,
        }
        for r in reports
    ]
    insert_or_ignore = sqlite.insert(DeliveryReport).on_conflict_do_nothing()
    stored = conn.execute(insert_or_ignore.returning(DeliveryReport.vendor_id, DeliveryReport.state), values)
    return [(v, s) for v, s in stored]


def _write_history(conn: Connection, postgres: bool, events: list[dict[str, Any]], now: datetime) -> None:
    """Insert the history rows in one statement."""
    if not postgres:
        conn.execute(insert(MessageEvent), events)
        return
    columns = ("message_id", "from_state", "to_state", "code", "reason")
    conn.execute(_HISTORY_MANY, {"now": now, **{f"{c}s": [e[c] for e in events] for c in columns}})


#: one guarded update of many messages, each with its own values (PostgreSQL)
_MOVE_MANY = text(
    "UPDATE messages AS m SET state = v.state, report_state = v.report_state,"
    " updated_at = CASE WHEN v.moved THEN :now ELSE m.updated_at END,"
    " sent_at = CASE WHEN v.moved THEN coalesce(m.sent_at, m.updated_at) ELSE m.sent_at END"
    " FROM unnest(:ids, :was, :states, :report_states, :moved) AS v(id, was, state, report_state, moved)"
    " WHERE m.id = v.id AND m.state = v.was"
    " RETURNING m.id"
).bindparams(
    bindparam("now", type_=UTCDateTime()),
    bindparam("ids", type_=ARRAY(BigInteger)),
    bindparam("was", type_=ARRAY(String)),
    bindparam("states", type_=ARRAY(String)),
    bindparam("report_states", type_=ARRAY(String)),
    bindparam("moved", type_=ARRAY(Boolean)),
)


def _update(conn: Connection, postgres: bool, changes: Sequence[_Change], now: datetime) -> set[int]:
    """Write each change where the message is still in the state read; return the ids written."""
    if not changes:
        return set()
    if postgres:
        result = conn.execute(
            _MOVE_MANY,
            {
                "now": now,
                "ids": [c.id for c in changes],
                "was": [c.was for c in changes],
                "states": [c.state for c in changes],
                "report_states": [c.report_state for c in changes],
                "moved": [c.moved for c in changes],
            },
        )
        return set(result.scalars())
    written: set[int] = set()
    for change in changes:  # SQLite: the transaction holds the one write lock
        values: dict[str, Any] = {"report_state": change.report_state}
        if change.moved:
            values.update(
                state=change.state, updated_at=now, sent_at=func.coalesce(Message.sent_at, Message.updated_at)
            )
        guarded = update(Message).where(Message.id == change.id, Message.state == change.was).values(**values)
        if conn.execute(guarded).rowcount:
            written.add(change.id)
    return written


def record_replies(
    engine: Engine,
    account: str,
    country: str,
    replies: Iterable[Inbound],
    now: datetime,
    rules: ReplyRules | None = None,
) -> tuple[int, int]:
    """Store each reply once, linked to what it answers; apply stop/start words; return (new, opt-outs)."""
    rules = rules or ReplyRules()
    new = opted = 0
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for reply in replies:
            phone = _e164(reply.phone, country)
            word = reply.text.strip().upper()
            stored = conn.execute(
                dialect.insert(InboundMessage)
                .values(
                    account=account,
                    phone=phone,
                    text=reply.text,
                    vendor_id=reply.vendor_id,
                    dedupe_key=_dedupe_key(reply, phone),
                    stop=word in rules.stop_words,
                    message_id=answered(conn, account, phone, reply.vendor_id),
                    received_at=now,
                )
                .on_conflict_do_nothing()
                .returning(InboundMessage.id)
            ).first()
            if stored is None:
                continue  # already stored (pushed twice, or pushed and polled): already acted on
            new += 1
            if word in rules.stop_words:
                opted += opt_out(conn, account, [phone], f"replied {reply.text.strip()!r}", now)
            elif word in rules.start_words and rules.allow_resubscribe:
                opt_in(conn, account, [phone])
    return new, opted


def answered(conn: Connection, account: str, phone: str, vendor_id: str | None) -> int | None:
    """The id of the message a reply answers: by the vendor's id, else the latest sent to the phone."""
    query = select(Message.id).where(Message.account == account, Message.address == phone).limit(1)
    if vendor_id:
        # Some vendors' reply ids are the reply's own, not our message's: the phone must agree.
        found = conn.execute(query.where(Message.vendor_id == vendor_id).order_by(Message.id.desc())).scalar()
        if found is not None:
            return found
    latest = query.where(Message.sent_at.is_not(None)).order_by(Message.sent_at.desc(), Message.id.desc())
    return conn.execute(latest).scalar()


def opt_out(conn: Connection, account: str, phones: Collection[str], reason: str, now: datetime) -> int:
    """Put phones on the account's opt-out list (ingest refuses them from then on); return how many are new."""
    if not phones:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [{"account": account, "phone": phone, "reason": reason, "created_at": now} for phone in phones]
    added = conn.execute(dialect.insert(OptOut).values(rows).on_conflict_do_nothing().returning(OptOut.phone))
    return len(added.all())


def opt_in(conn: Connection, account: str, phones: Collection[str]) -> int:
    """Take phones off the account's own opt-out list (a list for all accounts stays); return how many."""
    if not phones:
        return 0
    return conn.execute(delete(OptOut).where(OptOut.account == account, OptOut.phone.in_(list(phones)))).rowcount


def _e164(phone: str, country: str) -> str:
    try:
        return to_e164(phone, country)
    except BadNumber:
        return phone


def _dedupe_key(reply: Inbound, phone: str) -> str:
    if reply.vendor_id:
        # Some vendors' id is that of our message answered, not the reply's own: a second reply
        # to one message (a STOP after a "thanks") is another reply, so text and time count too.
        digest = hashlib.sha256(f"{reply.vendor_id}|{phone}|{reply.text}|{reply.at}".encode()).hexdigest()
        return f"ref:{digest[:64]}"
    digest = hashlib.sha256(f"{phone}|{reply.text}|{reply.at}".encode()).hexdigest()
    return f"sha:{digest[:64]}"
