"""One-time PINs a vendor generated and sent (an adapter's PIN method): checked, never stored."""

from __future__ import annotations

from sqlalchemy import Engine, select

from dispatcher.models import Message
from dispatcher.vendors.pins import pin_matches


def verify_pin(engine: Engine, message_id: int, pin: str) -> bool:
    """Say whether ``pin`` is the PIN sent in message ``message_id``."""
    with engine.connect() as conn:
        stored = conn.execute(select(Message.pin_hash).where(Message.id == message_id)).scalar()
    return bool(stored and pin_matches(pin, stored))
