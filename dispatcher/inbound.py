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
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Connection, Engine, Row, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.config import ReplyRules
from dispatcher.errors import BadNumber
from dispatcher.models import DeliveryReport, InboundMessage, Message, MessageEvent, MessageState, OptOut
from dispatcher.phones import to_e164
from dispatcher.vendors.base import DeliveryState, Inbound, StatusReport


def record_statuses(
    engine: Engine, account: str, reports: Iterable[StatusReport], now: datetime
) -> dict[str, int]:
    """Store each report once and move its message forward only; return how many moved to each state."""
    moved: dict[str, int] = {}
    seen: set[tuple[str, DeliveryState]] = set()
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for report in sorted(reports, key=lambda r: _RANK[r.state]):
            if not report.vendor_id or (report.vendor_id, report.state) in seen:
                continue
            seen.add((report.vendor_id, report.state))
            # A report for no message of ours yet (its send reply not recorded) is not stored:
            # the next poll or push brings it again.
            row = _message_for(conn, account, report)
            if row is None or not _store_once(conn, dialect, account, report, row.id, now):
                continue
            to_state = _apply(conn, row, report, now)
            if to_state:
                moved[to_state] = moved.get(to_state, 0) + 1
    return moved


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
#: a message as a report finds it: id, state, report_state
_MessageRow: TypeAlias = "Row[int, str, str | None]"  # a string: SQLAlchemy 2.0's Row takes one argument


def _message_for(conn: Connection, account: str, report: StatusReport) -> _MessageRow | None:
    """The message a report names: by the vendor id stored, else the one unknown row of its phone."""
    columns = (Message.id, Message.state, Message.report_state)
    rows = conn.execute(
        select(*columns).where(Message.account == account, Message.vendor_id == report.vendor_id).limit(2)
    ).all()
    if rows:
        return rows[0] if len(rows) == 1 else None
    if not report.phone:
        return None
    unknown = conn.execute(
        select(*columns)
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


def _store_once(
    conn: Connection, dialect: Any, account: str, report: StatusReport, message_id: int, now: datetime
) -> bool:
    """Insert-or-ignore the report; True when it is new."""
    values = {
        "account": account,
        "vendor_id": report.vendor_id,
        "state": report.state.value,
        "code": report.code,
        "message_id": message_id,
        "received_at": now,
    }
    stored = conn.execute(
        dialect.insert(DeliveryReport).values(values).on_conflict_do_nothing().returning(DeliveryReport.id)
    ).first()
    return stored is not None


def _apply(conn: Connection, row: _MessageRow, report: StatusReport, now: datetime) -> str | None:
    """Move the message forward, or record a late or contrary report in its history only."""
    target = _PROVES[report.state]
    newer = row.report_state is None or _RANK[report.state] >= _RANK[DeliveryState(row.report_state)]
    report_state = report.state.value if newer else row.report_state
    moves = row.state in _MOVABLE and target.value != row.state
    values: dict[str, Any] = {"report_state": report_state}
    if moves:
        values.update(
            state=target.value, updated_at=now, sent_at=func.coalesce(Message.sent_at, Message.updated_at)
        )
    changed = conn.execute(
        update(Message).where(Message.id == row.id, Message.state == row.state).values(**values)
    ).rowcount
    late = not moves and row.state != target.value and row.state not in _MOVABLE
    if changed and (moves or late):
        was = "resolved from delivery report" if row.state == MessageState.UNKNOWN.value else "delivery report"
        conn.execute(
            insert(MessageEvent).values(
                message_id=row.id,
                from_state=row.state,
                to_state=target.value if moves else row.state,
                code=report.code,
                reason=was if moves else f"late delivery report: {report.state.value} (state kept)",
                at=now,
            )
        )
    return target.value if changed and moves else None


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
