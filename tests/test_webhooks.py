"""The webhook app over real HTTP on loopback (uvicorn), on SQLite and PostgreSQL: only a URL
with the account's secret stores anything, each push is stored once, a stop word blocks the
next job before any vendor is called, and smsclouds' keyword push is answered with the text
the account configured."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, event, func, select, text, update

from dispatcher.config import AccountConfig, Settings, parse_accounts
from dispatcher.jobs import ingest_job
from dispatcher.models import DeliveryReport, InboundMessage, Message, MessageEvent, OptOut
from dispatcher.polling import poll_account
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.messages import Progress
from dispatcher.sandbox.world import SECRETS, SMSCLICK_RULE, VOIP_NUMBER, build_world
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from dispatcher.vendors import VENDORS
from dispatcher.vendors.base import DeliveryState, StatusReport
from dispatcher.vendors.push import PushReceiver
from dispatcher.webhooks import MAX_BODY, ReportGroups, make_app
from tests.conftest import BOGOTA_10AM, FakeClock
from tests.workers import free_port

SECRET = SECRETS["SANDBOX_WEBHOOK_SECRET"]
#: keyword auto-reply of the smsclouds sandbox customer, filled with the push's own fields
PROMO_REPLY = "Hola {cellphone}: gracias por escribir {keyword} desde {operador}"

#: one valid push per vendor that pushes: (account, method, query, form)
PUSHES: dict[str, tuple[str, str, dict[str, str], dict[str, str]]] = {
    "smsclouds": (
        "mx-smsclouds",
        "GET",
        {"response": "Gracias", "cellphone": "4498987282", "message_id": "158562", "date": "2026-11-23 10:00:05"},
        {},
    ),
    "itcloud": ("co-itcloud", "GET", {"mensaje": "Gracias", "celular": "573001234567"}, {}),
    "voipcomms": ("us-voipcomms", "POST", {}, {"from": "12812345678", "to": "17134567890", "msg": "Thanks"}),
    "ogangi": (
        "ve-ogangi",
        "POST",
        {},
        {"TYPE": "MO_MESSAGE", "FROM": "584142871901", "TO": "1989", "TEXT": "Hola"},
    ),
}


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def world() -> Iterator[Any]:
    clock = FakeClock(BOGOTA_10AM)
    progress = Progress(delivered_rate=1.0, reply_rate=1.0, stop_rate=0.0)
    port = free_port()
    world = build_world(clock, progress, webhook_url=f"http://127.0.0.1:{port}")
    world.pushes.stop()  # the test runs due pushes itself, after moving the clock
    world.clock, world.hook_port = clock, port
    yield world
    world.stop()


@pytest.fixture
def accounts(world: Any) -> dict[str, AccountConfig]:
    data = tomllib.loads(world.accounts_toml())
    data["accounts"]["mx-smsclouds"]["keyword_replies"] = {"promo": PROMO_REPLY}
    del data["accounts"]["mx-smsclick"]["webhook_secret"]  # SMSClick pushes nothing: no push URL
    return parse_accounts(data, SECRETS)


@pytest.fixture
def hooks(engine: Engine, world: Any, accounts: dict[str, AccountConfig]) -> Iterator[httpx.Client]:
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(engine, accounts, world.clock), port=world.hook_port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{world.hook_port}", timeout=10) as client:
        yield client
    server.should_exit = True
    thread.join(10)


def push(client: httpx.Client, vendor: str, secret: str = SECRET, **changes: str) -> httpx.Response:
    account, method, query, form = PUSHES[vendor]
    query, form = ({**query, **changes}, {}) if method == "GET" else ({}, {**form, **changes})
    url = f"/hooks/{account}/{secret}" if secret else f"/hooks/{account}"
    return client.request(method, url, params=query or None, data=form or None)


def test_every_vendor_that_pushes_has_a_push_sample() -> None:
    assert {key for key, adapter in VENDORS.items() if isinstance(adapter, PushReceiver)} == set(PUSHES)


def test_the_push_side_names_no_vendor() -> None:
    # What a vendor pushes is its adapter's business: the app, the reply store and the opt-out
    # command read the PushReceiver ability and never branch on a vendor's name.
    root = Path(__file__).resolve().parent.parent / "dispatcher"
    for module in ("webhooks.py", "inbound.py", "optouts.py"):
        source = (root / module).read_text().lower()
        assert [key for key in VENDORS if key in source] == [], module


@pytest.mark.parametrize("vendor", sorted(PUSHES))
def test_a_wrong_or_missing_secret_gets_403_and_stores_nothing(
    engine: Engine, hooks: httpx.Client, vendor: str
) -> None:
    # Given a valid push of a stop word, sent with a wrong secret, a near miss and no secret
    account = PUSHES[vendor][0]
    answers = [
        push(hooks, vendor, "not-the-secret-at-all", **_text(vendor, "SALIR")),
        push(hooks, vendor, SECRET[:-1] + "x", **_text(vendor, "SALIR")),
        push(hooks, vendor, "", **_text(vendor, "SALIR")),
        hooks.get(f"/hooks/nobody/{SECRET}"),
        # an account with no webhook_secret has no push URL at all
        hooks.post(f"/hooks/mx-smsclick/{SECRET}", data={"x": "1"}),
    ]
    # Then every one is refused alike, and nothing was stored or opted out
    assert [a.status_code for a in answers] == [403] * 5, account
    assert {a.text for a in answers} == {"forbidden"}
    assert (count(engine, InboundMessage), count(engine, OptOut), count(engine, MessageEvent)) == (0, 0, 0)
    # And the right secret is taken
    assert push(hooks, vendor, **_text(vendor, "SALIR")).status_code == 200
    assert (count(engine, InboundMessage), count(engine, OptOut)) == (1, 1)


def _text(vendor: str, text: str) -> dict[str, str]:
    field = {"smsclouds": "response", "itcloud": "mensaje", "voipcomms": "msg", "ogangi": "TEXT"}[vendor]
    return {field: text}


def test_a_malformed_push_gets_400_with_the_reason_and_a_large_one_413(
    engine: Engine, hooks: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    missing_phone = push(hooks, "itcloud", celular="")
    assert (missing_phone.status_code, missing_phone.text) == (
        400,
        "an itcloud reply needs 'mensaje' and the digits of 'celular'",
    )
    no_type = push(hooks, "ogangi", TYPE="")
    assert (no_type.status_code, no_type.text) == (400, "ogangi callback without TYPE")
    too_big = push(hooks, "voipcomms", msg="x" * (MAX_BODY + 1))
    assert too_big.status_code == 413
    wrong_method = hooks.post(f"/hooks/mx-smsclouds/{SECRET}", data=PUSHES["smsclouds"][2])
    assert wrong_method.status_code == 405
    json_body = hooks.post(f"/hooks/ve-ogangi/{SECRET}", json={"TYPE": "MO_MESSAGE"})
    assert json_body.status_code == 415
    assert count(engine, InboundMessage) == 0
    # And the refusals were logged with their reasons, never with the URL's secret
    assert "push refused: ogangi callback without TYPE" in caplog.text
    assert SECRET not in caplog.text


def test_a_keyword_push_is_answered_with_the_accounts_text_and_stored_once(
    engine: Engine, hooks: httpx.Client
) -> None:
    # Given smsclouds' keyword push (GET with keyword and operador), sent twice
    fields = {"response": "PROMO", "cellphone": "4498987282", "keyword": "promo", "date": "2026-11-23 10:00:05",
              "operador": "telcel"}  # fmt: skip
    answers = [hooks.get(f"/hooks/mx-smsclouds/{SECRET}", params=fields) for _ in range(2)]
    # Then the answer's body is the configured reply filled with the sender's data, each time
    assert [(a.status_code, a.text) for a in answers] == [
        (200, "Hola 4498987282: gracias por escribir promo desde telcel")
    ] * 2
    # And the push is stored once
    assert count(engine, InboundMessage) == 1
    # And a keyword the account has no text for gets an empty body (smsclouds sends no auto-reply)
    other = hooks.get(f"/hooks/mx-smsclouds/{SECRET}", params={**fields, "keyword": "otra"})
    assert (other.status_code, other.text) == (200, "")
    # And a plain MO push gets the "ok" the manual asks for
    assert push(hooks, "smsclouds").text == "ok"


JOBS = {
    "mx-smsclouds": (["+524498987282"], {}),
    "mx-smsclick": (["+525526632636"], {"ID_REGLA_INTERACTIVA": SMSCLICK_RULE}),
    "us-voipcomms": (["+12812345678"], {"from": VOIP_NUMBER}),
    "ve-ogangi": (["+584142871901"], {}),
    "co-itcloud": (["+573001234567"], {"metodo_envio": "2via"}),
}


def send_jobs(engine: Engine, world: Any, accounts: dict[str, AccountConfig]) -> Services:
    ctx = Services(engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL="sqlite://"), world.clock)
    for account, (phones, options) in JOBS.items():
        job = {"account": account, "text": "Hola", "recipients": phones, "options": options}
        ingest_job(engine, accounts, job, world.clock.now())
    release_due(engine, ctx.settings, world.clock.now(), lambda batch, _p: send_batch(ctx, batch))
    return ctx


def test_each_vendors_pushes_are_stored_once_when_pushed_twice_and_polled(
    engine: Engine, world: Any, accounts: dict[str, AccountConfig], hooks: httpx.Client
) -> None:
    # Given one job per vendor, sent through the simulators
    ctx = send_jobs(engine, world, accounts)
    assert count(engine, Message) == 5
    # When time passes, the simulators push to the app over HTTP, and beat polls
    world.clock.advance(30)
    assert world.pushes.run_due() >= 4
    first = list(world.pushes.sent)
    assert {status for _push, status in first} == {200}
    for config in accounts.values():
        poll_account(ctx, config)
    replies, events = count(engine, InboundMessage), count(engine, MessageEvent)
    pushed_by = {p.url.split("/hooks/")[1].split("/")[0] for p, _s in first}
    assert pushed_by == {"mx-smsclouds", "co-itcloud", "us-voipcomms", "ve-ogangi"}
    # And every push is made a second time, and beat polls again
    for p, _status in first:
        again = hooks.request(p.method, p.url, params=p.params or None, data=p.form or None)
        assert again.status_code == 200, again.text
    for config in accounts.values():
        poll_account(ctx, config)
    # Then nothing new was stored: each reply once, each report's state change once
    assert (count(engine, InboundMessage), count(engine, MessageEvent)) == (replies, events)
    with engine.connect() as conn:
        by_account = dict(
            conn.execute(select(InboundMessage.account, func.count()).group_by(InboundMessage.account)).all()
        )
        delivered = conn.execute(select(Message.account).where(Message.state == "delivered")).scalars().all()
    assert set(by_account) == set(JOBS) and set(by_account.values()) == {1}
    assert "ve-ogangi" in delivered  # its report came by push only
    # And each reply is linked to the message it answers
    with engine.connect() as conn:
        links = conn.execute(
            select(InboundMessage.account, Message.account, Message.address, InboundMessage.phone).join(
                Message, Message.id == InboundMessage.message_id
            )
        ).all()
    assert len(links) == len(JOBS) and all(r[0] == r[1] and r[2] == r[3] for r in links)


def test_a_salir_reply_blocks_the_next_job_to_that_phone_before_any_vendor_is_called(
    engine: Engine, world: Any, accounts: dict[str, AccountConfig], hooks: httpx.Client
) -> None:
    # Given a message sent to a phone through smsclouds
    ctx = send_jobs(engine, world, accounts)
    sends = dict(world.ledger.sends)
    # When the phone answers SALIR by push
    answer = push(hooks, "smsclouds", response="SALIR")
    assert (answer.status_code, answer.text) == (200, "ok")
    # Then the next job to that phone is refused at ingest with reason opted_out
    job = {"account": "mx-smsclouds", "text": "Oferta", "recipients": ["+524498987282", "+524492799694"]}
    result = ingest_job(engine, accounts, job, world.clock.now())
    with engine.connect() as conn:
        rows = dict(
            conn.execute(select(Message.address, Message.reason).where(Message.job_id == result.job_id)).all()
        )
    assert rows == {"+524498987282": "opted_out", "+524492799694": None}
    # And releasing it calls the vendor for the other phone only
    release_due(engine, ctx.settings, world.clock.now(), lambda batch, _p: send_batch(ctx, batch))
    new = {phone: n - sends.get(phone, 0) for phone, n in world.ledger.sends.items() if n > sends.get(phone, 0)}
    assert [phone[-10:] for phone in new] == ["4492799694"]


def test_the_app_serves_metrics_for_prometheus(hooks: httpx.Client) -> None:
    # Given a delivery report pushed and stored
    assert push(hooks, "ogangi").status_code == 200
    # When Prometheus scrapes the app
    scraped = hooks.get("/metrics")
    # Then it gets the text format, with no secret in it
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert "# TYPE python_info gauge" in scraped.text
    assert SECRET not in scraped.text and all(value not in scraped.text for value in SECRETS.values())


def _sent_ogangi_messages(engine: Engine, accounts: dict[str, AccountConfig], n: int) -> list[str]:
    """``n`` sent messages of the Ogangi sandbox customer; their vendor ids."""
    phones = [f"+58414{i:07d}" for i in range(n)]
    ingest_job(engine, accounts, {"account": "ve-ogangi", "text": "Hola", "recipients": phones}, BOGOTA_10AM)
    with engine.begin() as conn:
        ids = conn.execute(select(Message.id).order_by(Message.id)).scalars().all()
        for row_id in ids:
            conn.execute(
                update(Message).where(Message.id == row_id).values(state="sent", vendor_id=f"og-{row_id}")
            )
    return [f"og-{row_id}" for row_id in ids]


def _report(vendor_id: str) -> dict[str, str]:
    return {"TYPE": "SMS", "MESSANGI_ID": vendor_id, "STATUS": "DELIVRD"}


@pytest.fixture
def refuse(pg_engine: Engine) -> Iterator[Any]:
    """``refuse(vendor_id)`` makes storing a report of that vendor id fail in the database, as a
    full disk or a lost connection would (a trigger that raises); dropped after the test."""

    def refuse_one(vendor_id: str) -> None:
        with pg_engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_report() RETURNS trigger AS $$ BEGIN"
                    f" IF NEW.vendor_id = '{vendor_id}' THEN RAISE EXCEPTION 'disk full'; END IF;"
                    " RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(text("DROP TRIGGER IF EXISTS refuse_report ON delivery_reports"))
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_report BEFORE INSERT ON delivery_reports"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_report()"
                )
            )

    yield refuse_one
    with pg_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS refuse_report ON delivery_reports"))
        conn.execute(text("DROP FUNCTION IF EXISTS refuse_report()"))


def test_concurrent_pushes_are_each_answered_200_only_once_their_report_is_committed(
    pg_engine: Engine, world: Any, accounts: dict[str, AccountConfig], refuse: Any
) -> None:
    # Given twelve sent Ogangi messages, and a database that refuses to store the report of one
    engine = pg_engine
    vendor_ids = _sent_ogangi_messages(engine, accounts, 12)
    refuse(vendor_ids[0])
    app = make_app(engine, accounts, world.clock)

    # When their delivery reports are pushed all at once (they are stored as groups)
    async def push_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
            url = f"/hooks/ve-ogangi/{SECRET}"
            return await asyncio.gather(*(client.post(url, data=_report(v)) for v in vendor_ids))

    answers = asyncio.run(push_all())
    # Then the push whose report could not be stored is not answered 200 (its vendor sends it
    # again), every other push is, and each of those reports is in the database
    assert [a.status_code for a in answers] == [500] + [200] * 11
    with engine.connect() as conn:
        delivered = set(conn.execute(select(Message.vendor_id).where(Message.state == "delivered")).scalars())
        stored = set(conn.execute(select(DeliveryReport.vendor_id)).scalars())
    assert delivered == stored == set(vendor_ids[1:])


def test_a_group_of_pushes_is_stored_in_one_transaction_and_a_failing_push_fails_alone(
    pg_engine: Engine, world: Any, accounts: dict[str, AccountConfig], refuse: Any
) -> None:
    # Given three sent Ogangi messages, the database refusing the report of the second
    engine = pg_engine
    vendor_ids = _sent_ogangi_messages(engine, accounts, 3)
    groups = ReportGroups(engine, world.clock)
    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))

    # When the three pushes wait together, then three good ones
    async def store(ids: list[str]) -> list[Any]:
        reports = [[StatusReport(v, DeliveryState.DELIVERED, "DELIVRD")] for v in ids]
        return await asyncio.gather(*(groups.store("ve-ogangi", r) for r in reports), return_exceptions=True)

    assert asyncio.run(store(vendor_ids)) == [None, None, None]
    # Then they were committed together
    assert len(commits) == 1
    # And when one of a group cannot be stored, the others still are, each alone
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="sent", report_state=None))
        conn.execute(DeliveryReport.__table__.delete())
    refuse(vendor_ids[1])
    commits.clear()
    first, second, third = asyncio.run(store(vendor_ids))
    assert first is None and third is None and isinstance(second, Exception)
    with engine.connect() as conn:
        stored = set(conn.execute(select(DeliveryReport.vendor_id)).scalars())
    assert stored == {vendor_ids[0], vendor_ids[2]}


def test_the_webhooks_command_serves_pushes_from_several_processes(
    pg_engine: Engine, pg_url: str, world: Any, accounts: dict[str, AccountConfig], tmp_path: Path
) -> None:
    # Given sent Ogangi messages and `dispatcher webhooks --workers 2` over the database
    vendor_ids = _sent_ogangi_messages(pg_engine, accounts, 6)
    accounts_file = tmp_path / "accounts.toml"
    accounts_file.write_text(world.accounts_toml())
    port = free_port()
    env = {**os.environ, **SECRETS, "DATABASE_URL": pg_url, "DISPATCHER_ACCOUNTS": str(accounts_file),
           "REDIS_URL": "memory://"}  # fmt: skip
    command = [sys.executable, "-m", "dispatcher.cli", "webhooks", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None, "the app did not start"
                    time.sleep(0.2)
            # When each report is pushed
            answers = [client.post(f"/hooks/ve-ogangi/{SECRET}", data=_report(v)) for v in vendor_ids]
    finally:
        server.terminate()
        server.wait(20)
    # Then each was answered 200 with its message already delivered
    assert [a.status_code for a in answers] == [200] * 6
    with pg_engine.connect() as conn:
        delivered = set(conn.execute(select(Message.vendor_id).where(Message.state == "delivered")).scalars())
    assert delivered == set(vendor_ids)
