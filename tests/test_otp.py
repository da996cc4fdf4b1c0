"""A PIN the vendor generated is checked against the salted hash stored on its message, never stored."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from dispatcher.config import parse_accounts
from dispatcher.jobs import ingest_job
from dispatcher.models import Message
from dispatcher.otp import verify_pin
from dispatcher.vendors.pins import hash_pin
from tests.conftest import BOGOTA_10AM

PIN = "482913"


def test_a_pin_matches_only_the_message_it_was_sent_in(engine: Engine) -> None:
    # Given a job of two messages, the first of which carried a PIN the vendor made
    accounts = parse_accounts({"accounts": {"mx": {"vendor": "smsclouds", "token": "tok-123456"}}}, {})
    job = {"account": "mx", "text": "Hola", "recipients": ["+524498987282", "+524492799694"]}
    ingest_job(engine, accounts, job, BOGOTA_10AM)
    with engine.begin() as conn:
        with_pin, without_pin = conn.execute(select(Message.id).order_by(Message.id)).scalars().all()
        conn.execute(update(Message).where(Message.id == with_pin).values(pin_hash=hash_pin(PIN)))
        stored = conn.execute(select(Message.pin_hash).where(Message.id == with_pin)).scalar_one()
    # Then only the hash is stored, the right PIN matches it, and nothing else does
    assert PIN not in stored
    assert verify_pin(engine, with_pin, PIN)
    assert not verify_pin(engine, with_pin, "000000")
    assert not verify_pin(engine, without_pin, PIN)
    assert not verify_pin(engine, without_pin + 1000, PIN)
