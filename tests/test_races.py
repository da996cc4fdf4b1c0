"""Racing senders on vendors without a pause between requests: only the claim keeps a message
to one send.

IT Cloud's pause (a Redis lease) serialises its senders on its own; SMSClick (one number per
request) and smsclouds (500 per request) have none, so several workers on one batch overlap for
real. Each sender here has its own engine and HTTP client, as a worker process would, and the
simulators on loopback answer slowly enough for the requests to be in flight together. The
simulators' per-phone send counts say whether any number got the message twice.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from dispatcher.config import AccountConfig, Settings, parse_accounts
from dispatcher.db import make_engine
from dispatcher.jobs import ingest_job
from dispatcher.models import Batch, Message, MessageEvent
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import expire_stale_sending
from dispatcher.sandbox.core import Faults, Ledger, SandboxServer, SimRequest, SimResponse
from dispatcher.sandbox.smsclick import SmsclickSim
from dispatcher.sandbox.smsclouds import SmscloudsSim
from dispatcher.sending import SendReport, send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from tests.conftest import FakeClock

MX_10AM = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 10:00 in Mexico City
SECRETS = {"SMSCLICK_APIKEY": "race-smsclick-apikey-1234", "SMSCLOUDS_TOKEN": "race-smsclouds-token-5678"}
#: senders racing on the same batches (threads or processes)
SENDERS = 4
#: seconds a barrier waits for every sender before the test gives up on a stuck one
BARRIER_TIMEOUT = 120.0
#: seconds each simulator holds its reply, so that racing requests are in flight together
SMSCLICK_LATENCY, SMSCLOUDS_LATENCY = 0.02, 0.2


@pytest.fixture
def vendors() -> Iterator[SandboxServer]:
    """SMSClick and smsclouds on loopback, one customer each, answering after a short latency."""
    ledger, clock = Ledger(), FakeClock(MX_10AM)
    smsclick = SmsclickSim(ledger, clock, faults=Faults(latency=SMSCLICK_LATENCY))
    smsclick.add_customer("race", SECRETS["SMSCLICK_APIKEY"], credit=100_000)
    smsclouds = SmscloudsSim(ledger, clock, faults=Faults(latency=SMSCLOUDS_LATENCY))
    smsclouds.add_customer("race@example.com", SECRETS["SMSCLOUDS_TOKEN"], credit=100_000)
    server = SandboxServer({"smsclick": smsclick, "smsclouds": smsclouds}).start()
    server.ledger, server.clock = ledger, clock
    yield server
    server.stop()


def accounts_of(server: SandboxServer) -> dict[str, AccountConfig]:
    """The two accounts, pointed at the simulators."""
    spec = {
        "mx-smsclick": {"vendor": "smsclick", "base_url": server.url("smsclick"), "apikey": "${SMSCLICK_APIKEY}"},
        "mx-smsclouds": {
            "vendor": "smsclouds",
            "base_url": server.url("smsclouds"),
            "token": "${SMSCLOUDS_TOKEN}",
        },
    }
    return parse_accounts({"accounts": spec}, SECRETS)


def sender(url: str, accounts: Mapping[str, AccountConfig], clock: FakeClock) -> Services:
    """What one worker process holds: its own engine and HTTP client."""
    settings = Settings(DATABASE_URL=url)
    return Services(make_engine(url), accounts, MemoryLimiter(), Transport(), settings, clock)


def url_of(engine: Engine) -> str:
    """The engine's URL with its password, for another engine on the same database."""
    return engine.url.render_as_string(hide_password=False)


def submit(
    engine: Engine, accounts: Mapping[str, AccountConfig], account: str, count: int
) -> tuple[str, list[int]]:
    """Ingest a job of ``count`` Mexican numbers; return its id and its batches."""
    recipients = [{"phone": f"+5255{i:08d}"} for i in range(count)]
    job = {"account": account, "text": "Hola", "recipients": recipients}
    job_id = ingest_job(engine, accounts, job, MX_10AM).job_id
    with engine.connect() as conn:
        batches = conn.execute(select(Batch.id).where(Batch.job_id == job_id).order_by(Batch.id)).scalars().all()
    return job_id, list(batches)


def send_every_batch(ctx: Services, batches: Sequence[int], barrier) -> list[SendReport]:  # type: ignore[no-untyped-def]
    """Send each batch once the other senders are at the same batch, so they start together."""
    reports = []
    try:
        for batch in batches:
            barrier.wait(BARRIER_TIMEOUT)
            reports.append(send_batch(ctx, batch))
    finally:
        ctx.transport.close()
        ctx.engine.dispose()
    return reports


def race_in_threads(url: str, accounts: Mapping[str, AccountConfig], clock: FakeClock, batches: list[int]) -> int:
    """Race SENDERS threads over the batches; return the requests they say they sent."""
    barrier = threading.Barrier(SENDERS)
    reports: list[SendReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.extend(send_every_batch(sender(url, accounts, clock), batches, barrier))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, name=f"sender-{i}") for i in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return sum(r.requests for r in reports)


def _process_sender(url: str, accounts, when: datetime, batches: list[int], barrier, requests) -> None:  # type: ignore[no-untyped-def]
    """One forked worker process: a fresh engine and client, the same batches as the others."""
    try:
        reports = send_every_batch(sender(url, accounts, FakeClock(when)), batches, barrier)
    except BaseException:
        barrier.abort()
        raise
    requests.put(sum(r.requests for r in reports))


def race_in_processes(
    url: str, accounts: Mapping[str, AccountConfig], clock: FakeClock, batches: list[int]
) -> int:
    """Race SENDERS forked processes over the batches; return the requests they say they sent."""
    # Forked, not spawned: nothing is imported again in the child (the test modules claim
    # resources on import), and the accounts never travel through a pipe.
    mp = multiprocessing.get_context("fork")
    barrier, requests = mp.Barrier(SENDERS), mp.Queue()
    procs = [
        mp.Process(target=_process_sender, args=(url, accounts, clock.now(), batches, barrier, requests))
        for _ in range(SENDERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(BARRIER_TIMEOUT * 2)
    assert [p.exitcode for p in procs] == [0] * SENDERS
    return sum(requests.get(timeout=5) for _ in procs)


def assert_each_sent_once(engine: Engine, ledger: Ledger, job_id: str, vendor: str, path: str) -> None:
    """Every phone sent once at the vendor; every row sent once, with one id and one event."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.id, Message.address, Message.state, Message.vendor_id, Message.attempts).where(
                Message.job_id == job_id
            )
        ).all()
        events = conn.execute(
            select(MessageEvent.message_id, MessageEvent.from_state, MessageEvent.to_state)
            .join(Message, Message.id == MessageEvent.message_id)
            .where(Message.job_id == job_id)
        ).all()
    phones = {r.address for r in rows}
    twice = {phone: n for phone, n in ledger.duplicates().items() if phone in phones}
    assert twice == {}, f"{len(twice)} phones sent more than once, e.g. {sorted(twice.items())[:3]}"
    assert {phone: ledger.sends[phone] for phone in phones} == dict.fromkeys(phones, 1)
    assert Counter(r.state for r in rows) == {"sent": len(rows)}
    assert [r for r in rows if r.attempts != 1] == []
    assert len({r.vendor_id for r in rows if r.vendor_id}) == len(rows)
    history = Counter((e.message_id, e.from_state, e.to_state) for e in events)
    assert history == {(r.id, "sending", "sent"): 1 for r in rows}
    assert len(ledger.of(vendor, path)) == len(ledger.of(vendor))


def test_racing_threads_send_each_smsclick_number_once(engine: Engine, vendors: SandboxServer) -> None:
    # Given 200 Mexican numbers for SMSClick (one number per request, no pause): 10 batches
    accounts = accounts_of(vendors)
    job_id, batches = submit(engine, accounts, "mx-smsclick", 200)
    # When four senders, each with its own engine, run every batch at the same time
    requests = race_in_threads(url_of(engine), accounts, vendors.clock, batches)
    # Then each number went out once, in one request each
    assert_each_sent_once(engine, vendors.ledger, job_id, "smsclick", "/sendMsg.json")
    assert requests == len(vendors.ledger.of("smsclick")) == 200


def test_racing_threads_send_each_smsclouds_number_once(engine: Engine, vendors: SandboxServer) -> None:
    # Given 2,000 numbers for smsclouds (500 per request, no pause): 4 batches
    accounts = accounts_of(vendors)
    job_id, batches = submit(engine, accounts, "mx-smsclouds", 2000)
    # When four senders run every batch at the same time
    requests = race_in_threads(url_of(engine), accounts, vendors.clock, batches)
    # Then each number went out once (racing claims may split a batch over several requests)
    assert_each_sent_once(engine, vendors.ledger, job_id, "smsclouds", "/api/v1/message")
    assert requests == len(vendors.ledger.of("smsclouds"))


@pytest.mark.parametrize(
    ("account", "count", "vendor", "path"),
    [
        ("mx-smsclick", 200, "smsclick", "/sendMsg.json"),
        ("mx-smsclouds", 2000, "smsclouds", "/api/v1/message"),
    ],
)
def test_racing_processes_send_each_number_once(
    engine: Engine, vendors: SandboxServer, account: str, count: int, vendor: str, path: str
) -> None:
    # Given a job for a vendor without a pause
    accounts = accounts_of(vendors)
    job_id, batches = submit(engine, accounts, account, count)
    # When four worker processes run every batch at the same time
    engine.dispose()  # no pooled connection of ours crosses the fork
    requests = race_in_processes(url_of(engine), accounts, vendors.clock, batches)
    # Then each number went out once
    assert_each_sent_once(engine, vendors.ledger, job_id, vendor, path)
    assert requests == len(vendors.ledger.of(vendor))


class HeldSmsclick(SmsclickSim):
    """SMSClick that takes each message at once but holds the reply until the test lets it go."""

    def __init__(self, *args, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kw)
        self.arrived, self.gate = threading.Event(), threading.Event()

    def dispatch(self, request: SimRequest) -> SimResponse:
        response = super().dispatch(request)
        self.arrived.set()
        self.gate.wait(BARRIER_TIMEOUT)
        return response


def test_a_late_reply_does_not_change_a_row_declared_unknown(engine: Engine) -> None:
    # Given SMSClick takes a message but its reply is held up
    ledger, clock = Ledger(), FakeClock(MX_10AM)
    sim = HeldSmsclick(ledger, clock)
    sim.add_customer("race", SECRETS["SMSCLICK_APIKEY"])
    server = SandboxServer({"smsclick": sim}).start()
    try:
        accounts = accounts_of(server)
        ctx = Services(engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL="sqlite://"), clock)
        job_id, (batch,) = submit(engine, accounts, "mx-smsclick", 1)
        worker = threading.Thread(target=send_batch, args=(ctx, batch))
        worker.start()
        assert sim.arrived.wait(BARRIER_TIMEOUT)
        # When the sending timeout passes and the sweep declares the row unknown
        clock.advance(ctx.settings.sending_timeout + 1)
        assert expire_stale_sending(engine, ctx.settings, clock.now()) == 1
        # And then the vendor's reply (accepted, with an id) arrives
        sim.gate.set()
        worker.join(BARRIER_TIMEOUT)
    finally:
        sim.gate.set()
        server.stop()
    # Then the row stays unknown: the reply came for a claim the sweep had already closed
    with engine.connect() as conn:
        state = conn.execute(select(Message.state).where(Message.job_id == job_id)).scalar_one()
    assert not worker.is_alive()
    assert state == "unknown"
    assert sum(ledger.sends.values()) == 1
