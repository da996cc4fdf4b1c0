"""Tables: jobs, batches, messages, their state history, account state and opt-outs.

The database is the truth: a message's ``state`` only moves through guarded updates
(``WHERE state = 'pending'``), so a redelivered task finds nothing to claim.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: an autoincrementing big integer that is also SQLite's rowid
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC on every backend.

    SQLite keeps no offset, so storing UTC everywhere keeps comparisons in SQL right.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class MessageState(enum.StrEnum):
    """Where one recipient's message stands."""

    PENDING = "pending"  #: waiting to be claimed (maybe until ``not_before``)
    SENDING = "sending"  #: claimed by a worker; the request may be in flight
    SENT = "sent"  #: the vendor accepted it (``vendor_id``)
    DELIVERED = "delivered"  #: the handset got it (from DLR)
    FAILED = "failed"  #: the vendor refused it for good, or retries ran out
    REJECTED = "rejected"  #: never sent: bad number, text too long, opted out
    UNKNOWN = "unknown"  #: the request may have been sent; never resent blindly
    CANCELED = "canceled"  #: an operator canceled it
    EXPIRED = "expired"  #: it waited past the job's expiry


#: states a message never leaves on its own
FINAL_STATES = frozenset(
    {
        MessageState.SENT,
        MessageState.DELIVERED,
        MessageState.FAILED,
        MessageState.REJECTED,
        MessageState.UNKNOWN,
        MessageState.CANCELED,
        MessageState.EXPIRED,
    }
)


class JobState(enum.StrEnum):
    """Whether a job was taken in."""

    INGESTING = "ingesting"  #: recipients are being stored in committed chunks (a retry resumes)
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    #: an operator canceled it: its pending rows were canceled and an ingest still running stops
    CANCELED = "canceled"


class BatchState(enum.StrEnum):
    """A batch waits for its time, is queued for a worker, or has nothing left to send."""

    WAITING = "waiting"
    QUEUED = "queued"
    DONE = "done"


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {datetime: UTCDateTime()}


class Job(Base):
    """One send job as it came in; a rejected job keeps its reason."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("account", "idempotency_key", name="uq_jobs_idempotency"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(8), default="bulk")
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    send_at: Mapped[datetime | None]
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    #: raw recipients already read and stored: a retried ingest resumes after them
    ingested: Mapped[int] = mapped_column(Integer, default=0)
    #: past this, a message still waiting ends ``expired`` (else the account's ``max_age``)
    expires_at: Mapped[datetime | None]
    #: what came in, redacted and cut, for an operator reading a rejected job
    payload: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Batch(Base):
    """Recipients of one job sent together, within the vendor's limits."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_release", "state", "not_before"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"))
    account: Mapped[str] = mapped_column(String(100), index=True)
    priority: Mapped[str] = mapped_column(String(8), default="bulk")
    state: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Message(Base):
    """One recipient of one job."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_batch_state", "batch_id", "state"),
        Index("ix_messages_job_state", "job_id", "state"),
        # Constant-cost duplicate check at ingest: insert-or-ignore on this key.
        Index(
            "uq_messages_job_address",
            "job_id",
            "address",
            unique=True,
            postgresql_where=text("state <> 'rejected'"),
            sqlite_where=text("state <> 'rejected'"),
        ),
        Index("ix_messages_state_updated", "state", "updated_at"),
        # A reply with no vendor id is linked to the latest message to its phone on the account.
        Index("ix_messages_account_address", "account", "address"),
        # Beat's expiry sweep looks up pending rows past their deadline every few seconds.
        Index(
            "ix_messages_pending_deadline",
            "deadline",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        # Reports name our message by the vendor's id.
        Index("ix_messages_account_vendor_id", "account", "vendor_id"),
        # Status polls walk an account's sent messages by (sent_at, id) from their cursor.
        Index("ix_messages_account_state_sent", "account", "state", "sent_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"))
    account: Mapped[str] = mapped_column(String(100))
    #: E.164 phone, or the email address on the email channel
    address: Mapped[str] = mapped_column(String(254))
    text: Mapped[str | None] = mapped_column(Text)
    vars: Mapped[dict[str, str] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    vendor_id: Mapped[str | None] = mapped_column(String(100))
    vendor_code: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None]
    #: past this a message not yet sent ends ``expired`` (job's ``expires_at`` or created + max_age)
    deadline: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    #: SHA-256 of a PIN the vendor generated (OTP); the PIN itself is never stored or logged
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    #: the latest delivery state the vendor reported (a final one stops the status polls)
    report_state: Mapped[str | None] = mapped_column(String(16))


class MessageEvent(Base):
    """One state change of one message: the history an operator reads."""

    __tablename__ = "message_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class AccountState(Base):
    """Runtime state of a configured account: paused until a time, and why; its last known balance."""

    __tablename__ = "account_states"

    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused_until: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    #: the credit the vendor reported at the last balance query, if any (``balance_at``)
    balance: Mapped[float | None] = mapped_column(Float)
    balance_at: Mapped[datetime | None]


class OptOut(Base):
    """A phone that asked not to be sent to (per account, or for all with account '*')."""

    __tablename__ = "opt_outs"

    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    phone: Mapped[str] = mapped_column(String(254), primary_key=True)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class InboundMessage(Base):
    """A reply (MO) from a handset, polled or pushed; stored once per vendor reference."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("account", "dedupe_key", name="uq_inbound_once"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(100), index=True)
    phone: Mapped[str] = mapped_column(String(254))
    text: Mapped[str] = mapped_column(Text)
    vendor_id: Mapped[str | None] = mapped_column(String(100))
    #: the vendor's id, or a digest of phone, text and time when it gives none
    dedupe_key: Mapped[str] = mapped_column(String(100))
    #: True when the text is a stop word (the phone is then opted out)
    stop: Mapped[bool] = mapped_column(default=False)
    #: the message this reply answers: by the vendor's id where given, else the latest to the phone
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    received_at: Mapped[datetime]


class PollCursor(Base):
    """Where the last poll of one account and kind (status, replies) got to."""

    __tablename__ = "poll_cursors"

    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    #: when the last poll of this kind started: a second beat's tick before the interval finds it too early
    last_run_at: Mapped[datetime | None]


class DeliveryReport(Base):
    """One delivery report as the vendor gave it, polled or pushed: stored once per id and state."""

    __tablename__ = "delivery_reports"
    __table_args__ = (UniqueConstraint("account", "vendor_id", "state", name="uq_delivery_report_once"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(100))
    vendor_id: Mapped[str] = mapped_column(String(100))
    #: the report's delivery state (queued, sent, delivered, failed)
    state: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(32))
    #: the message it was applied to, when one was found
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime]
