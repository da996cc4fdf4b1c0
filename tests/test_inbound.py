"""What comes back: reports move sent messages on, replies are stored once, stop words opt out.
Polled from the simulators and pushed through the webhook app (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, update

from dispatcher.config import ReplyRules, Settings, parse_accounts
from dispatcher.inbound import opt_out, record_replies, record_statuses
from dispatcher.jobs import ingest_job
from dispatcher.models import InboundMessage, Message, OptOut
from dispatcher.polling import poll_account
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.messages import Progress
from dispatcher.sandbox.world import SECRETS, SMSCLICK_RULE, build_world
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from dispatcher.vendors.base import DeliveryState, Inbound, StatusReport
from dispatcher.webhooks import make_app
from tests.conftest import BOGOTA_10AM, FakeClock


def count(engine: Engine, model: Any, **where: Any) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return conn.execute(query).scalar_one()


def test_reports_never_move_a_message_backwards(engine: Engine) -> None:
    accounts = parse_accounts({"accounts": {"mx": {"vendor": "smsclouds", "token": "tok-123456"}}}, {})
    job = ingest_job(
        engine, accounts, {"account": "mx", "text": "Hola", "recipients": ["+524498987282"]}, BOGOTA_10AM
    )
    with engine.begin() as conn:
        conn.execute(Message.__table__.update().values(state="sent", vendor_id="40"))
    record_statuses(engine, "mx", [StatusReport("40", DeliveryState.DELIVERED, "2")], BOGOTA_10AM)
    moved = record_statuses(engine, "mx", [StatusReport("40", DeliveryState.FAILED, "3")], BOGOTA_10AM)
    assert moved == {}
    assert count(engine, Message, job_id=job.job_id, state="delivered") == 1


def test_a_reply_is_stored_once_and_a_stop_word_opts_the_phone_out(engine: Engine) -> None:
    replies = [Inbound("4498987282", "SALIR", vendor_id="7"), Inbound("+524498987282", "Gracias")]
    assert record_replies(engine, "mx", "MX", replies, BOGOTA_10AM) == (2, 1)
    assert record_replies(engine, "mx", "MX", replies, BOGOTA_10AM) == (0, 0)
    with engine.connect() as conn:
        assert conn.execute(select(OptOut.phone)).scalars().all() == ["+524498987282"]
    # And the opted-out phone is refused by the next job of that account
    accounts = parse_accounts({"accounts": {"mx": {"vendor": "smsclouds", "token": "tok-123456"}}}, {})
    job = ingest_job(
        engine, accounts, {"account": "mx", "text": "Hola", "recipients": ["+524498987282"]}, BOGOTA_10AM
    )
    assert job.state == "rejected" and "(first: opted_out)" in job.reason


@pytest.fixture
def world() -> Any:
    clock = FakeClock(BOGOTA_10AM)
    progress = Progress(delivered_rate=1.0, reply_rate=1.0, stop_rate=1.0)
    world = build_world(clock, progress, webhook_url="http://hooks")
    world.pushes.stop()  # the test hands the pushes to the app itself
    world.clock = clock
    yield world
    world.stop()


JOBS = {
    "mx-smsclouds": (["+524498987282", "+524492799694"], {}),
    "mx-smsclick": (["+525526632636"], {"ID_REGLA_INTERACTIVA": SMSCLICK_RULE}),
    "us-voipcomms": (["+12812345678"], {}),
    "ve-ogangi": (["+584142871901"], {}),
    "co-itcloud": (["+573001234567"], {"metodo_envio": "2via"}),
}


def test_polls_and_pushes_bring_back_reports_replies_and_opt_outs(engine: Engine, world: Any) -> None:
    # Given one job per vendor, sent, and the webhook app the simulators push to
    accounts = parse_accounts(tomllib.loads(world.accounts_toml()), SECRETS)
    ctx = Services(engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL="sqlite://"), world.clock)
    for account, (phones, options) in JOBS.items():
        ingest_job(
            engine,
            accounts,
            {"account": account, "text": "Hola", "recipients": phones, "options": options},
            world.clock.now(),
        )
    release_due(engine, ctx.settings, world.clock.now(), lambda batch, _p: send_batch(ctx, batch))
    assert count(engine, Message, state="sent") == 6
    app = make_app(engine, accounts, world.clock)
    # When time passes, beat polls, and the vendors' pushes reach the app
    world.clock.advance(30)
    for config in accounts.values():
        poll_account(ctx, config)
    pushes = world.pushes.pending
    world.pushes.pending = []
    asyncio.run(_deliver(app, pushes))
    # Then every vendor that reports delivery has moved its messages on
    with engine.connect() as conn:
        states = dict(conn.execute(select(Message.account, Message.state)).all())
    assert states["mx-smsclick"] == "delivered"  # getMsg: received
    assert states["us-voipcomms"] == "delivered"  # sms/summary
    assert states["ve-ogangi"] == "delivered"  # pushed TYPE=SMS
    assert states["mx-smsclouds"] == "sent" and states["co-itcloud"] == "sent"  # no handset receipts
    # And the two-way replies were stored once each, all stop words (stop_rate 1.0), opting out
    replies = count(engine, InboundMessage)
    assert replies >= 4 and count(engine, OptOut) == replies
    for config in accounts.values():
        poll_account(ctx, config)
    assert count(engine, InboundMessage) == replies


async def _deliver(app: Any, pushes: list) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
        for push in pushes:
            url = push.url if push.url.startswith("http") else f"http://hooks{push.url}"
            response = await client.request(push.method, url, params=push.params or None, data=push.form or None)
            assert response.status_code == 200, response.text


def test_an_accounts_own_stop_words_count_and_a_start_word_resubscribes_only_where_allowed(engine: Engine) -> None:
    # Given two accounts with their own stop word; only "mx" lets phones come back
    mx = ReplyRules(stop_words=frozenset({"BASTA"}), allow_resubscribe=True)
    us = ReplyRules(stop_words=frozenset({"BASTA"}))
    for account, rules in (("mx", mx), ("us", us)):
        # When a phone says a default word the account dropped, then its own stop word
        record_replies(engine, account, "MX", [Inbound("4498987282", "SALIR", at="1")], BOGOTA_10AM, rules)
        assert count(engine, OptOut, account=account) == 0
        record_replies(engine, account, "MX", [Inbound("4498987282", " basta ", at="2")], BOGOTA_10AM, rules)
        assert count(engine, OptOut, account=account) == 1
        # And then a start word
        record_replies(engine, account, "MX", [Inbound("4498987282", "Alta", at="3")], BOGOTA_10AM, rules)
    # Then the phone is back only where the account allows it
    assert (count(engine, OptOut, account="mx"), count(engine, OptOut, account="us")) == (0, 1)
    # And the list for all accounts is not touched by an account's start word
    with engine.begin() as conn:
        opt_out(conn, "*", ["+524498987282"], "operator", BOGOTA_10AM)
    record_replies(engine, "mx", "MX", [Inbound("4498987282", "ALTA", at="4")], BOGOTA_10AM, mx)
    assert count(engine, OptOut, account="*") == 1


def test_a_reply_is_linked_by_the_vendors_id_where_the_phone_agrees_else_to_the_latest_message(
    engine: Engine,
) -> None:
    # Given two jobs sent to one phone (ids 40 then 41) and one to another (id 50)
    accounts = parse_accounts({"accounts": {"mx": {"vendor": "smsclouds", "token": "tok-123456"}}}, {})
    ids = {}
    for vendor_id, phone, minute in (
        ("40", "+524498987282", 1),
        ("41", "+524498987282", 2),
        ("50", "+524492799694", 3),
    ):
        job = {"account": "mx", "text": "Hola", "recipients": [phone]}
        result = ingest_job(engine, accounts, job, BOGOTA_10AM)
        with engine.begin() as conn:
            conn.execute(
                update(Message)
                .where(Message.job_id == result.job_id)
                .values(state="sent", vendor_id=vendor_id, sent_at=BOGOTA_10AM + timedelta(minutes=minute))
            )
            ids[vendor_id] = conn.execute(select(Message.id).where(Message.job_id == result.job_id)).scalar_one()
    # When replies come: one naming message 40, one naming no message, one naming another phone's message
    replies = [
        Inbound("4498987282", "Si", vendor_id="40"),
        Inbound("4498987282", "No", at="later"),
        Inbound("4498987282", "Quizas", vendor_id="50"),
    ]
    record_replies(engine, "mx", "MX", replies, BOGOTA_10AM)
    # Then the first answers 40, and the others the latest message sent to their phone (41)
    with engine.connect() as conn:
        links = dict(conn.execute(select(InboundMessage.text, InboundMessage.message_id)).all())
    assert links == {"Si": ids["40"], "No": ids["41"], "Quizas": ids["41"]}


def test_a_second_reply_to_one_message_is_stored_and_its_stop_word_counts(engine: Engine) -> None:
    # Given a vendor whose replies carry the id of our message answered (smsclouds' message_id)
    first = Inbound("4498987282", "Gracias", vendor_id="158562", at="2026-11-23 10:00:05")
    second = Inbound("4498987282", "SALIR", vendor_id="158562", at="2026-11-23 10:04:10")
    # When the phone answers that one message twice, and each reply is read twice
    stored = [record_replies(engine, "mx", "MX", [reply], BOGOTA_10AM) for reply in (first, second, first, second)]
    # Then both replies are stored once each, and the stop word opted the phone out
    assert stored == [(1, 0), (1, 1), (0, 0), (0, 0)]
    assert count(engine, InboundMessage) == 2 and count(engine, OptOut) == 1
