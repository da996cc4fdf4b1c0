"""A personalised job on a vendor that fills fields itself: one request per batch, the texts ours.

Through the real send path (ingest, release, ``send_batch``) against the smsclouds simulator on
loopback, on SQLite and PostgreSQL: requests are counted where the vendor gets them, and each
number's text as the vendor rendered it is compared with the text stored for that message.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from dispatcher.config import Settings, parse_accounts
from dispatcher.jobs import ingest_job
from dispatcher.models import Message
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.smsclouds import SmscloudsSim
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from tests.conftest import FakeClock

TOKEN = "tok-combination-5e4d3c2b1a"
HOLA = "Hola {name}, su codigo es {code}"
NOON = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 12:00 in Mexico City


@pytest.fixture
def vendor() -> Iterator[Any]:
    """The smsclouds simulator on loopback with one customer, at noon in Mexico City."""
    ledger, clock = Ledger(), FakeClock(NOON)
    sim = SmscloudsSim(ledger, clock)
    sim.add_customer("ops@example.com", TOKEN, credit=100_000)
    server = SandboxServer({"smsclouds": sim}).start()
    server.ledger, server.sim, server.clock = ledger, sim, clock
    yield server
    server.stop()


def context(engine: Engine, vendor: Any) -> Services:
    spec = {"vendor": "smsclouds", "base_url": vendor.url("smsclouds"), "token": "${TOKEN}"}
    accounts = parse_accounts({"accounts": {"mx-main": spec}}, {"TOKEN": TOKEN})
    settings = Settings(DATABASE_URL="sqlite://")
    return Services(engine, accounts, MemoryLimiter(), Transport(), settings, vendor.clock)


def run(ctx: Services, job: dict[str, Any]) -> str:
    """Ingest a job and send every batch it made; return its id."""
    job_id = ingest_job(ctx.engine, ctx.accounts, {"account": "mx-main", **job}, ctx.clock.now()).job_id
    queued: list[int] = []
    release_due(ctx.engine, ctx.settings, ctx.clock.now(), lambda batch, _p: queued.append(batch))
    for batch in queued:
        assert send_batch(ctx, batch).again_in is None
    return job_id


def stored(engine: Engine, job_id: str) -> list[tuple[str, str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.state, Message.vendor_id, Message.text)
            .where(Message.job_id == job_id)
            .order_by(Message.id)
        )
        return [(r.state, r.vendor_id, r.text) for r in rows]


def requests(vendor: Any) -> int:
    return len(vendor.ledger.of("smsclouds", "/api/v1/message"))


def test_a_personalised_batch_goes_as_one_request_and_each_text_is_ours(engine: Engine, vendor: Any) -> None:
    # Given a job of 500 recipients (one batch), each with its own name and code, some accented
    ctx = context(engine, vendor)
    people = [
        {"phone": f"+52449{i:07d}", "vars": {"name": f"Cliente {i}" if i % 7 else f"José {i}", "code": f"{i:06d}"}}
        for i in range(500)
    ]
    # When it is sent
    job_id = run(ctx, {"text": HOLA, "recipients": people})
    # Then the vendor got one request for the plain texts and one for the accented ones (encode)
    assert requests(vendor) == 2
    rows = stored(engine, job_id)
    assert [state for state, _, _ in rows] == ["sent"] * 500
    # And every number got from the vendor the very text we store
    assert [vendor.sim.store.get(str(vendor_id)).text for _, vendor_id, _ in rows] == [text for _, _, text in rows]
    assert vendor.ledger.duplicates() == {} and vendor.ledger.violations == []


def test_a_template_the_fields_cannot_carry_goes_one_request_per_text(engine: Engine, vendor: Any) -> None:
    # Given six placeholders, one more than the vendor's five fields
    ctx = context(engine, vendor)
    people = [{"phone": f"+52449{i:07d}", "vars": dict(zip("abcdef", f"{i:06d}", strict=True))} for i in range(4)]
    job_id = run(ctx, {"text": "{a}{b}{c}{d}{e}{f}", "recipients": people})
    # Then each text is its own request, as before, and each is ours
    assert requests(vendor) == 4
    rows = stored(engine, job_id)
    assert [vendor.sim.store.get(str(vendor_id)).text for _, vendor_id, _ in rows] == [text for _, _, text in rows]


def test_a_value_that_brings_a_vendor_marker_is_refused_not_filled(engine: Engine, vendor: Any) -> None:
    # Given a name that holds <+C+>, and the recipient also carries a field1 the vendor would put there
    ctx = context(engine, vendor)
    people = [
        {"phone": "+524490000001", "vars": {"name": "<+C+>", "code": "1", "field1": "x"}},
        {"phone": "+524490000002", "vars": {"name": "Ana", "code": "2"}},
        {"phone": "+524490000003", "vars": {"name": "Luis", "code": "3"}},
    ]
    job_id = run(ctx, {"text": HOLA, "recipients": people})
    # Then that one is failed without a request, the others go together
    rows = stored(engine, job_id)
    assert [state for state, _, _ in rows][1:] == ["sent", "sent"]
    assert rows[0][0] == "failed" and rows[0][1] is None
    assert requests(vendor) == 1
    assert {vendor.sim.store.get(str(v)).text for _, v, _ in rows[1:]} == {t for _, _, t in rows[1:]}
