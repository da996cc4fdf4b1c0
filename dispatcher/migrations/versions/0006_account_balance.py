"""an account's last known balance, for the operator's ``dispatcher accounts``

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("balance", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("balance_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account_states", schema=None) as batch_op:
        batch_op.drop_column("balance_at")
        batch_op.drop_column("balance")
