"""cursored polls: reports stored once, the last state reported, last-run stamps, poll indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dispatcher.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("vendor_id", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("received_at", dispatcher.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account", "vendor_id", "state", name="uq_delivery_report_once"),
    )
    with op.batch_alter_table("poll_cursors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_run_at", dispatcher.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_state", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_messages_account_vendor_id", ["account", "vendor_id"], unique=False)
        batch_op.create_index(
            "ix_messages_account_state_sent", ["account", "state", "sent_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_account_state_sent")
        batch_op.drop_index("ix_messages_account_vendor_id")
        batch_op.drop_column("report_state")
    with op.batch_alter_table("poll_cursors", schema=None) as batch_op:
        batch_op.drop_column("last_run_at")
    op.drop_table("delivery_reports")
