"""messages.pin_hash holds a whole ``pbkdf2_sha256$rounds$salt$hash`` value (118 characters)

It was VARCHAR(64): PostgreSQL refused a stored hash, so recording an accepted send whose vendor
made the PIN failed there. SQLite does not enforce a VARCHAR length; its declared type changes
in place (a new column takes the values, the old one is dropped and the new one renamed), so the
largest table is not copied and the tables that point at it are untouched.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _retype(64, 255)


def downgrade() -> None:
    # a longer value cannot go back into VARCHAR(64); a PIN's hash is only checked, so it goes
    op.execute("UPDATE messages SET pin_hash = NULL WHERE length(pin_hash) > 64")
    _retype(255, 64)


def _retype(old: int, new: int) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("messages", "pin_hash", type_=sa.String(length=new), existing_type=sa.String(length=old))
        return
    op.execute(f"ALTER TABLE messages ADD COLUMN pin_hash_retyped VARCHAR({new})")
    op.execute("UPDATE messages SET pin_hash_retyped = pin_hash")
    op.execute("ALTER TABLE messages DROP COLUMN pin_hash")
    op.execute("ALTER TABLE messages RENAME COLUMN pin_hash_retyped TO pin_hash")
