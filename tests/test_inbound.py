"""What comes back: reports move sent messages on, replies are stored once, stop words opt out.
Polled from the simulators and pushed through the webhook app (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import tomllib
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from dispatcher.config import Settings, parse_accounts
from dispatcher.inbound import record_replies, record_statuses
from dispatcher.jobs import ingest_job
from dispatcher.models import InboundMessage, Message, OptOut
from dispatcher.polling import poll_account
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.core import Progress
from dispatcher.sandbox.world import SECRETS, SMSCLICK_RULE, build_world
from dispatcher.sending import SendContext, send_batch
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
    assert job.state == "rejected" and "opted out" in job.reason


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
    ctx = SendContext(
        engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL="sqlite://"), world.clock
    )
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
