"""messages.phone becomes messages.address: on the email channel it holds an email address

The column and the two indexes named after it are renamed in place on both backends (SQLite
renames a column since 3.25); copying the table would rebuild every index of the largest table
and drop a table that message_events and inbound_messages point at.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NOT_REJECTED = sa.text("state <> 'rejected'")


def upgrade() -> None:
    _rename("phone", "address")


def downgrade() -> None:
    _rename("address", "phone")


def _indexes(column: str) -> list[tuple[str, list[str], dict[str, Any]]]:
    """The indexes that carry the column's name: name, columns and options, as in the models."""
    unique = {"unique": True, "postgresql_where": NOT_REJECTED, "sqlite_where": NOT_REJECTED}
    return [
        (f"uq_messages_job_{column}", ["job_id", column], unique),
        (f"ix_messages_account_{column}", ["account", column], {"unique": False}),
    ]


def _rename(old: str, new: str) -> None:
    renamed = [(was[0], now) for was, now in zip(_indexes(old), _indexes(new), strict=True)]
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("messages", schema=None, recreate="never") as batch_op:
        batch_op.alter_column(old, new_column_name=new, existing_type=sa.String(254), existing_nullable=False)
        if not postgres:
            # SQLite cannot rename an index: it is built again under its new name.
            for old_index, (new_index, columns, options) in renamed:
                batch_op.drop_index(old_index)
                batch_op.create_index(new_index, columns, **options)
    if postgres:
        # PostgreSQL renames an index in place, without building the unique one again.
        for old_index, (new_index, _, _) in renamed:
            op.execute(f"ALTER INDEX {old_index} RENAME TO {new_index}")
