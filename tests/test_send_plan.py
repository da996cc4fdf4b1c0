"""A batch's requests are planned once per pass, and each still goes out only if it may (SQLite and PostgreSQL).

The send loop builds a pass's requests once and sends them in turn; before each one it still
checks what could have changed since the plan: the window, the account's pause (in the claim),
and whether the rows are still this task's. A pooled connection the database dropped is
replaced at the claim, so nothing is lost or sent twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.pool import NullPool

from dispatcher import account_state, sending
from dispatcher.config import Settings, parse_accounts
from dispatcher.db import make_engine
from dispatcher.jobs import ingest_job
from dispatcher.models import Message
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.smsclick import SmsclickSim
from dispatcher.services import Services
from dispatcher.transport import Transport
from dispatcher.vendors import adapter_for
from dispatcher.vendors import base as vendor_base
from tests.conftest import BOGOTA_10AM, FakeClock
from tests.test_send_loop import SlowVendorTransport

APIKEY = "click-key-0123456789"
ROWS = 20


@pytest.fixture
def click() -> Iterator[tuple[SandboxServer, SmsclickSim]]:
    """The one-number-a-request simulator on loopback, at 10:00 in Bogota."""
    sim = SmsclickSim(Ledger(), FakeClock(BOGOTA_10AM))
    sim.add_customer("mx-click", APIKEY, credit=10_000)
    server = SandboxServer({"smsclick": sim}).start()
    yield server, sim
    server.stop()


def services(engine: Engine, server: SandboxServer, transport: Transport | None = None, **spec: Any) -> Services:
    clock = FakeClock(BOGOTA_10AM)
    account = {"vendor": "smsclick", "base_url": server.url("smsclick"), "apikey": APIKEY, **spec}
    data: dict[str, Any] = {"accounts": {"mx-click": account}}
    if "window" in spec:
        data["windows"] = {"short": {"timezone": "America/Bogota", "start": "08:00", "end": "10:01"}}
    accounts = parse_accounts(data, {})
    if isinstance(transport, SlowVendorTransport):
        transport.clock = clock
    settings = Settings(DATABASE_URL="sqlite://")
    return Services(engine, accounts, MemoryLimiter(), transport or Transport(), settings, clock)


def one_batch(ctx: Services) -> int:
    recipients = [{"phone": f"+52552663{i:04d}"} for i in range(ROWS)]
    job = {"account": "mx-click", "text": "Hola", "recipients": recipients}
    ingest_job(ctx.engine, ctx.accounts, job, ctx.clock.now())
    queued: list[int] = []
    release_due(ctx.engine, ctx.settings, ctx.clock.now(), lambda batch, _p: queued.append(batch))
    (batch,) = queued
    return batch


def counted(sim: SmsclickSim) -> tuple[int, dict[str, int]]:
    ledger = sim.ledger
    return len(ledger.of("smsclick", "sendMsg.json")), ledger.duplicates()


def by_state(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Message.state, func.count()).group_by(Message.state)).all())  # type: ignore[arg-type]


class CountingAdapter:
    """The vendor's adapter, counting the calls to ``build_send`` and the recipients they carried."""

    def __init__(self, adapter: vendor_base.Adapter):
        self.adapter, self.calls = adapter, [0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)

    def build_send(self, account: Any, outgoing: vendor_base.Outgoing) -> Sequence[vendor_base.SendRequest]:
        self.calls[0] += 1
        return self.adapter.build_send(account, outgoing)


def test_a_batch_of_n_rows_is_planned_once(engine: Engine, click, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch of 20 numbers on a vendor that takes one number a request
    server, sim = click
    ctx = services(engine, server)
    batch = one_batch(ctx)
    adapter = CountingAdapter(adapter_for("smsclick"))
    monkeypatch.setattr(sending, "adapter_for", lambda _vendor: adapter)
    # When its task runs
    report = sending.send_batch(ctx, batch)
    # Then its 20 requests were built by one call, and each number went out once
    assert (report.requests, report.state) == (ROWS, "done")
    assert adapter.calls == [1]
    assert counted(sim) == (ROWS, {}) and by_state(engine) == {"sent": ROWS}


def test_a_window_closing_mid_pass_stops_the_planned_requests(engine: Engine, click) -> None:
    # Given a window that closes at 10:01 in Bogota and a vendor taking 15 s per request
    server, sim = click
    ctx = services(engine, server, SlowVendorTransport(FakeClock(BOGOTA_10AM), 15.0), window="short")
    batch = one_batch(ctx)
    # When the batch's task runs from 10:00
    report = sending.send_batch(ctx, batch)
    # Then the requests planned at 10:00 went out only while the window was open (10:00:00 to
    # 10:00:45), and the rest wait for the next opening instead
    assert report.requests == 4 and counted(sim) == (4, {})
    assert by_state(engine) == {"sent": 4, "pending": ROWS - 4}
    with engine.connect() as conn:
        waiting = conn.execute(select(func.min(Message.not_before)).where(Message.state == "pending")).scalar()
    assert waiting is not None and waiting > ctx.clock.now()


def test_a_pause_set_by_another_task_mid_pass_holds_the_rest_of_the_plan(engine: Engine, click) -> None:
    # Given a batch of 20 numbers, and another task of the same account pausing it (its request
    # was refused for lack of credit) while this task's third request is in flight
    server, sim = click
    transport = SlowVendorTransport(FakeClock(BOGOTA_10AM), 1.0)
    ctx = services(engine, server, transport)
    batch = one_batch(ctx)

    def another_task_pauses() -> None:
        if len(transport.spans) == 2:  # the third request, before its span is written
            with engine.begin() as conn:
                until = ctx.clock.now() + timedelta(minutes=10)
                account_state.pause(conn, "mx-click", until, "another batch: no credit", ctx.clock.now())

    transport.during = another_task_pauses
    # When this task runs
    sending.send_batch(ctx, batch)
    # Then no planned request went out after the pause, and nothing was lost
    assert counted(sim) == (3, {})
    assert by_state(engine) == {"sent": 3, "pending": ROWS - 3}


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    from tests.conftest import _wipe

    engine = make_engine(pg_url)
    _wipe(engine)
    yield engine
    engine.dispose()


def test_a_connection_dropped_at_the_claim_neither_loses_nor_duplicates(
    pg_engine: Engine, pg_url: str, click
) -> None:
    # Given a batch of 20 numbers, and the database dropping the connection the claims run on
    # (a restart, a proxy, an idle timeout) twice during the send: the pool pings no connection
    server, sim = click
    ctx = services(pg_engine, server)
    batch = one_batch(ctx)
    admin = make_engine(pg_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    claims = [0]

    def drop_before_some_claims(
        conn: Any, _cursor: DBAPICursor, statement: str, _params: Any, _context: ExecutionContext, _many: bool
    ) -> None:
        if statement.lstrip().startswith("WITH picked"):
            claims[0] += 1
            if claims[0] in (1, 7):
                pid = conn.connection.dbapi_connection.info.backend_pid
                with admin.connect() as other:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(pg_engine, "before_cursor_execute", drop_before_some_claims)
    try:
        # When its task runs
        report = sending.send_batch(ctx, batch)
    finally:
        event.remove(pg_engine, "before_cursor_execute", drop_before_some_claims)
        admin.dispose()
    # Then the claims that met a dead connection ran again on a fresh one: every number went out
    # once, none is left pending, sending or unknown
    assert claims[0] >= ROWS + 2
    assert (report.requests, report.state) == (ROWS, "done")
    assert counted(sim) == (ROWS, {}) and by_state(pg_engine) == {"sent": ROWS}
