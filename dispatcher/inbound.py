"""What comes back from vendors: delivery reports move messages on, replies are stored once,
and a stop word opts the phone out of the account (checked at ingest from then on).

A reply is linked to the message it answers: the one with the vendor's id where the vendor
gives it (and the phones agree), else the latest message sent to that phone on that account.
The account's stop and start words come from its ``ReplyRules``.

Messages never move backwards: only a ``sent`` message becomes ``delivered`` or ``failed``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.config import ReplyRules
from dispatcher.models import InboundMessage, Message, MessageEvent, MessageState, OptOut
from dispatcher.phones import BadNumber, to_e164
from dispatcher.vendors.base import DeliveryState, Inbound, StatusReport

_FINAL = {DeliveryState.DELIVERED: MessageState.DELIVERED, DeliveryState.FAILED: MessageState.FAILED}


def record_statuses(
    engine: Engine, account: str, reports: Iterable[StatusReport], now: datetime
) -> dict[str, int]:
    """Move sent messages to delivered or failed; return how many moved to each."""
    moved: dict[str, int] = {}
    by_state: dict[MessageState, dict[str, StatusReport]] = {}
    for report in reports:
        if report.state in _FINAL and report.vendor_id:
            by_state.setdefault(_FINAL[report.state], {})[report.vendor_id] = report
    with engine.begin() as conn:
        for state, reports_by_id in by_state.items():
            rows = conn.execute(
                update(Message)
                .where(
                    Message.account == account,
                    Message.vendor_id.in_(list(reports_by_id)),
                    Message.state == MessageState.SENT.value,
                )
                .values(state=state.value, updated_at=now)
                .returning(Message.id, Message.vendor_id)
            ).all()
            if rows:
                conn.execute(
                    insert(MessageEvent),
                    [
                        {
                            "message_id": row.id,
                            "from_state": MessageState.SENT.value,
                            "to_state": state.value,
                            "code": reports_by_id[row.vendor_id].code,
                            "reason": "delivery report",
                            "at": now,
                        }
                        for row in rows
                    ],
                )
            moved[state.value] = len(rows)
    return moved


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
    query = select(Message.id).where(Message.account == account, Message.phone == phone).limit(1)
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
