"""Cursored polls against the simulators on loopback (SQLite and PostgreSQL): every message that
can still change is asked about, newest included, and none forever; reports are stored once and
never move a message back; ``unknown`` rows are resolved where a report names them."""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, update

from dispatcher import cursors, polling
from dispatcher.config import AccountConfig, Settings, parse_accounts
from dispatcher.inbound import CHUNK, record_statuses
from dispatcher.jobs import ingest_job
from dispatcher.models import DeliveryReport, Job, Message, MessageEvent
from dispatcher.polling import poll_account
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.messages import Progress
from dispatcher.sandbox.world import SECRETS, build_world
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from dispatcher.vendors.base import DeliveryState, StatusReport
from tests.conftest import BOGOTA_10AM, FakeClock

#: seconds between two polls of the test accounts
INTERVAL = 60


@pytest.fixture
def world() -> Iterator[Any]:
    clock = FakeClock(BOGOTA_10AM)
    world = build_world(clock, Progress(to_sent=2, to_final=120, delivered_rate=0.5, reply_rate=0))
    world.clock = clock
    yield world
    world.stop()


def context(engine: Engine, world: Any) -> Services:
    """A fresh context, as a restarted worker builds it (nothing carried over but the database)."""
    extra = {"status_poll_seconds": INTERVAL, "reply_poll_seconds": INTERVAL}
    accounts = parse_accounts(tomllib.loads(world.accounts_toml()), SECRETS)
    for key, config in accounts.items():
        spec = {"vendor": config.vendor, **config.account.params, "base_url": config.account.base_url, **extra}
        accounts[key] = parse_accounts({"accounts": {key: spec}}, {})[key]
    return Services(
        engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL="sqlite://"), world.clock
    )


def send(ctx: Services, account: str, phones: list[str], **options: str) -> str:
    """Store a job and send it through the simulator; return the job id."""
    job = ingest_job(
        ctx.engine,
        ctx.accounts,
        {"account": account, "text": "Hola", "recipients": phones, "options": options},
        ctx.clock.now(),
    )
    release_due(ctx.engine, ctx.settings, ctx.clock.now(), lambda batch, _p: send_batch(ctx, batch))
    assert states(ctx.engine, account)["sent"] >= len(phones), states(ctx.engine, account)
    return job.job_id


def phones(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:06d}" for n in range(count)]


def states(engine: Engine, account: str) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(Message.state).where(Message.account == account)).scalars()
        return Counter(rows)


def rows_of(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def poll_every_interval(ctx: Services, config: AccountConfig, times: int) -> None:
    for _ in range(times):
        ctx.clock.advance(INTERVAL)
        poll_account(ctx, config)


def asked_ids(world: Any) -> list[int]:
    return [i for request in world.ledger.of("smsclouds", "/status") for i in request.json()["message_ids"]]


def test_status_polls_walk_every_sent_message_from_the_cursor_and_stop_at_final(
    engine: Engine, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 25 smsclouds messages the vendor still holds (queued), and polls that ask about 10 a time
    monkeypatch.setattr(polling, "STATUS_BATCH", 10)
    sim, progress = world.sims["smsclouds"], world.sims["smsclouds"].store.progress
    sim.store.progress = Progress(to_sent=10_000, to_final=20_000)
    ctx = context(engine, world)
    send(ctx, "mx-smsclouds", phones("+524498", 25))
    with engine.connect() as conn:
        vendor_ids = sorted(int(v) for v in conn.execute(select(Message.vendor_id)).scalars())
    # When beat polls every interval, a new worker (fresh context) each time
    for _ in range(3):
        ctx = context(engine, world)
        poll_every_interval(ctx, ctx.accounts["mx-smsclouds"], 1)
    # Then one cycle asked about each message once, the newest included
    assert Counter(asked_ids(world)) == Counter(vendor_ids)
    # And once the vendor's "sent", its final word, has settled, a cycle later no id is asked about again
    sim.store.progress = progress
    world.clock.advance(2 * 3600)
    poll_every_interval(ctx, ctx.accounts["mx-smsclouds"], 3)
    world.ledger.requests.clear()
    poll_every_interval(ctx, ctx.accounts["mx-smsclouds"], 3)
    assert asked_ids(world) == []
    with engine.connect() as conn:
        both = Counter(conn.execute(select(Message.state, Message.report_state)).all())
    assert set(both) <= {("sent", "sent"), ("failed", "failed")} and both.total() == 25, both


def test_a_failure_after_sent_is_seen_while_sent_has_not_settled(engine: Engine, world: Any) -> None:
    # Given an smsclouds message that the vendor will say "sent", then "failed" two minutes on
    world.sims["smsclouds"].store.progress = Progress(to_sent=2, to_final=120, delivered_rate=0.0)
    ctx = context(engine, world)
    send(ctx, "mx-smsclouds", ["+524498987282"])
    # When beat polls once while it is "sent", and again after
    poll_every_interval(ctx, ctx.accounts["mx-smsclouds"], 1)
    assert states(engine, "mx-smsclouds") == {"sent": 1}
    poll_every_interval(ctx, ctx.accounts["mx-smsclouds"], 1)
    # Then the failure was seen
    assert states(engine, "mx-smsclouds") == {"failed": 1}


def test_a_message_older_than_the_horizon_is_not_asked_about(engine: Engine, world: Any) -> None:
    # Given a message sent, still queued at the vendor, and the horizon passed
    ctx = context(engine, world)
    send(ctx, "mx-smsclouds", ["+524498987282"])
    config = ctx.accounts["mx-smsclouds"]
    with engine.begin() as conn:
        conn.execute(update(Message).values(sent_at=ctx.clock.now().replace(year=2025)))
    # When beat polls
    poll_every_interval(ctx, config, 1)
    # Then nothing was asked
    assert asked_ids(world) == []


def test_smsclick_report_windows_bring_every_message_to_its_final_state_once(engine: Engine, world: Any) -> None:
    # Given 40 SMSClick messages sent (one request each)
    ctx = context(engine, world)
    send(ctx, "mx-smsclick", phones("+525526", 40))
    config = ctx.accounts["mx-smsclick"]
    # When the vendor has decided them all and beat polls
    world.clock.advance(200)
    poll_every_interval(ctx, config, 1)
    # Then each is delivered or failed, as the vendor says
    final = states(engine, "mx-smsclick")
    assert final["delivered"] + final["failed"] == 40, final
    reports, events = rows_of(engine, DeliveryReport), rows_of(engine, MessageEvent)
    # And a second poll stores nothing: no report, no history
    poll_every_interval(ctx, config, 1)
    assert (rows_of(engine, DeliveryReport), rows_of(engine, MessageEvent)) == (reports, events)
    assert not world.ledger.of("smsclick", "getMsg.json")  # every message was in a report window


def test_a_message_no_report_window_named_is_asked_about_alone(engine: Engine, world: Any) -> None:
    # Given an SMSClick message whose send time we hold as an hour after the vendor's
    ctx = context(engine, world)
    send(ctx, "mx-smsclick", ["+525526632636"])
    with engine.begin() as conn:
        conn.execute(update(Message).values(sent_at=ctx.clock.now() + timedelta(hours=1)))
    # When two hours pass and beat polls
    world.clock.advance(2 * 3600)
    poll_every_interval(ctx, ctx.accounts["mx-smsclick"], 1)
    # Then the report window missed it, and getMsg asked about it alone and moved it on
    assert len(world.ledger.of("smsclick", "getMsg.json")) == 1
    assert set(states(engine, "mx-smsclick")) <= {"delivered", "failed"}


def test_out_of_order_and_duplicate_reports_end_right_and_history_holds_each_once(engine: Engine) -> None:
    # Given a sent message
    accounts = parse_accounts({"accounts": {"mx": {"vendor": "smsclouds", "token": "tok-123456"}}}, {})
    ingest_job(engine, accounts, {"account": "mx", "text": "Hola", "recipients": ["+524498987282"]}, BOGOTA_10AM)
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="sent", vendor_id="40", sent_at=BOGOTA_10AM))
    delivered, sent = StatusReport("40", DeliveryState.DELIVERED, "3"), StatusReport("40", DeliveryState.SENT, "2")
    # When "delivered" comes before "sent", twice each, in one batch and again later
    record_statuses(engine, "mx", [delivered, sent, delivered], BOGOTA_10AM)
    record_statuses(engine, "mx", [sent, delivered], BOGOTA_10AM)
    # Then the message is delivered, and history holds the move once
    with engine.connect() as conn:
        assert conn.execute(select(Message.state, Message.report_state)).one() == ("delivered", "delivered")
        history = conn.execute(select(MessageEvent.from_state, MessageEvent.to_state, MessageEvent.reason)).all()
    assert history == [("sent", "delivered", "delivery report")]
    # And a late "sent" after "delivered" is kept in history only, once
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="sent", report_state=None))
        conn.execute(DeliveryReport.__table__.delete())
        conn.execute(MessageEvent.__table__.delete())
    record_statuses(engine, "mx", [delivered], BOGOTA_10AM)
    record_statuses(engine, "mx", [sent], BOGOTA_10AM)
    record_statuses(engine, "mx", [sent], BOGOTA_10AM)
    with engine.connect() as conn:
        assert conn.execute(select(Message.state)).scalar() == "delivered"
        reasons = conn.execute(select(MessageEvent.reason).order_by(MessageEvent.id)).scalars().all()
    assert reasons == ["delivery report", "late delivery report: sent (state kept)"]


def test_an_unknown_row_is_resolved_from_a_report_naming_its_phone(engine: Engine, world: Any) -> None:
    # Given two SMSClick messages the vendor took, but whose replies were lost: unknown, no vendor id
    ctx = context(engine, world)
    send(ctx, "mx-smsclick", ["+525526632636", "+525554542570"])
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="unknown", vendor_id=None, sent_at=None))
    # When the vendor has decided them and beat polls its report
    world.clock.advance(200)
    poll_every_interval(ctx, ctx.accounts["mx-smsclick"], 1)
    # Then each row took its vendor id and final state, and history says it was resolved
    with engine.connect() as conn:
        rows = conn.execute(select(Message.state, Message.vendor_id)).all()
        reasons = (
            conn.execute(select(MessageEvent.reason).where(MessageEvent.from_state == "unknown")).scalars().all()
        )
    assert all(state in ("delivered", "failed") and vendor_id for state, vendor_id in rows), rows
    assert reasons == ["resolved from delivery report"] * 2


def test_an_unknown_voipcomms_row_is_resolved_from_its_summary_pages(engine: Engine, world: Any) -> None:
    # Given a voipcomms message the vendor took, whose reply was lost: unknown, no vendor id
    ctx = context(engine, world)
    send(ctx, "us-voipcomms", ["+12812345678"], **{"from": "17134567890"})
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="unknown", vendor_id=None, sent_at=None))
    # When the vendor has decided it and beat polls the summary pages
    world.clock.advance(200)
    poll_every_interval(ctx, ctx.accounts["us-voipcomms"], 1)
    # Then the row took its vendor id and final state from the row naming its phone
    with engine.connect() as conn:
        state, vendor_id = conn.execute(select(Message.state, Message.vendor_id)).one()
    assert state in ("delivered", "failed") and vendor_id


def test_an_unknown_row_the_report_cannot_tell_apart_stays_unknown(engine: Engine, world: Any) -> None:
    # Given two unknown rows to one phone (two jobs) and one report naming that phone
    ctx = context(engine, world)
    send(ctx, "mx-smsclick", ["+525526632636"])
    send(ctx, "mx-smsclick", ["+525526632636"])
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="unknown", vendor_id=None))
    report = StatusReport("999", DeliveryState.DELIVERED, "3", phone="+525526632636")
    # When it is recorded
    record_statuses(engine, "mx-smsclick", [report], ctx.clock.now())
    # Then both stay unknown: the operator decides
    assert states(engine, "mx-smsclick") == {"unknown": 2}


def test_a_second_beat_ticking_before_the_interval_does_nothing(engine: Engine) -> None:
    now = BOGOTA_10AM
    assert cursors.claim_turn(engine, "mx", cursors.STATUS, now, INTERVAL)
    assert not cursors.claim_turn(engine, "mx", cursors.STATUS, now.replace(second=30), INTERVAL)
    assert cursors.claim_turn(engine, "mx", cursors.REPLIES, now, INTERVAL)  # each kind its own turn
    assert cursors.claim_turn(engine, "mx", cursors.STATUS, now.replace(minute=1), INTERVAL)
    # A clock set back by more than an interval (a demo, an operator) does not stop the polls for good
    assert cursors.claim_turn(engine, "mx", cursors.STATUS, now.replace(hour=10), INTERVAL)


def test_voipcomms_pages_are_read_until_every_open_message_was_seen(engine: Engine, world: Any) -> None:
    # Given voipcomms messages sent
    ctx = context(engine, world)
    job = ingest_job(
        ctx.engine,
        ctx.accounts,
        {
            "account": "us-voipcomms",
            "text": "Hola",
            "recipients": phones("+12812", 5),
            "options": {"from": "17134567890"},
        },
        ctx.clock.now(),
    )
    assert job.state == "accepted", job.reason
    release_due(ctx.engine, ctx.settings, ctx.clock.now(), lambda batch, _p: send_batch(ctx, batch))
    # When the vendor has decided them and beat polls
    world.clock.advance(200)
    poll_every_interval(ctx, ctx.accounts["us-voipcomms"], 1)
    final = states(engine, "us-voipcomms")
    assert final["delivered"] + final["failed"] == 5, final
    # Then the next poll asks nothing: no message of the account can change any more
    world.ledger.requests.clear()
    poll_every_interval(ctx, ctx.accounts["us-voipcomms"], 1)
    assert world.ledger.of("voipcomms", "sms/summary") == []


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def _sent_rows(engine: Engine, account: str, n: int) -> None:
    """``n`` sent messages of one job on the account, vendor ids v-0 .. v-<n-1>."""
    with engine.begin() as conn:
        conn.execute(insert(Job).values(id="j-many", account=account, state="accepted", created_at=BOGOTA_10AM))
        rows = [
            {
                "job_id": "j-many",
                "account": account,
                "address": f"+5255{i:08d}",
                "state": "sent",
                "vendor_id": f"v-{i}",
                "created_at": BOGOTA_10AM,
                "updated_at": BOGOTA_10AM,
                "sent_at": BOGOTA_10AM,
            }
            for i in range(n)
        ]
        conn.execute(insert(Message), rows)


def test_a_polls_reports_are_stored_set_wise_a_few_statements_per_thousand(pg_engine: Engine) -> None:
    # Given 2,500 sent messages
    _sent_rows(pg_engine, "mx", 2500)
    statements: list[str] = []
    event.listen(pg_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    # When one poll brings back a report for each, and a second one for a tenth of them
    reports = [StatusReport(f"v-{i}", DeliveryState.DELIVERED, "3") for i in range(2500)]
    reports += [StatusReport(f"v-{i}", DeliveryState.SENT, "2") for i in range(0, 2500, 10)]
    moved = record_statuses(pg_engine, "mx", reports, BOGOTA_10AM)
    ran = list(statements)
    # Then every message moved once, with its history
    assert moved == {"delivered": 2500}
    assert (count(pg_engine, DeliveryReport), count(pg_engine, MessageEvent)) == (2750, 2500)
    # And it took four statements per chunk of reports (lookup, reports, messages, history),
    # not four per report
    chunks = -(-2750 // CHUNK)
    assert len(ran) <= 4 * chunks, [statement[:40] for statement in ran]


def test_an_unknown_message_reported_sent_and_delivered_at_once_is_resolved_then_delivered(engine: Engine) -> None:
    # Given an unknown message
    _sent_rows(engine, "mx", 1)
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="unknown", sent_at=None))
    # When one poll says both "sent" and "delivered", delivered first
    reports = [StatusReport("v-0", DeliveryState.DELIVERED, "3"), StatusReport("v-0", DeliveryState.SENT, "2")]
    moved = record_statuses(engine, "mx", reports, BOGOTA_10AM)
    # Then it was resolved, then delivered, each step once in its history, as if reported one by one
    assert moved == {"sent": 1, "delivered": 1}
    with engine.connect() as conn:
        assert conn.execute(select(Message.state, Message.report_state)).one() == ("delivered", "delivered")
        history = conn.execute(
            select(MessageEvent.from_state, MessageEvent.to_state, MessageEvent.reason).order_by(MessageEvent.id)
        ).all()
    assert history == [
        ("unknown", "sent", "resolved from delivery report"),
        ("sent", "delivered", "delivery report"),
    ]
