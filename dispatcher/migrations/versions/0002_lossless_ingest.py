"""lossless ingest: resumable chunks, a unique duplicate key, deadlines

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import dispatcher.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOT_REJECTED = sa.text("state <> 'rejected'")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ingested", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("expires_at", dispatcher.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deadline", dispatcher.models.UTCDateTime(), nullable=True))
        batch_op.drop_index("ix_messages_job_phone")
        batch_op.create_index(
            "uq_messages_job_phone",
            ["job_id", "phone"],
            unique=True,
            postgresql_where=NOT_REJECTED,
            sqlite_where=NOT_REJECTED,
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("uq_messages_job_phone")
        batch_op.create_index("ix_messages_job_phone", ["job_id", "phone"], unique=False)
        batch_op.drop_column("deadline")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("payload")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("ingested")
