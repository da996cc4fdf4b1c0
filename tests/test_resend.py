"""``dispatcher resend-unknown JOB``: the operator's explicit, recorded, once-only decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from dispatcher import cli
from dispatcher.config import parse_accounts
from dispatcher.jobs import ingest_job
from dispatcher.models import Batch, Message, MessageEvent
from dispatcher.resend import resend_unknown, unknown_rows
from tests.conftest import BOGOTA_10AM

PHONES = ["+524498987282", "+524492799694", "+524491234567"]


def job_with_unknown_rows(engine: Engine) -> str:
    """A job of three messages: two unknown without a vendor id, one unknown the vendor numbered."""
    accounts = parse_accounts({"accounts": {"mx": {"vendor": "smsclouds", "token": "tok-123456"}}}, {})
    job = ingest_job(engine, accounts, {"account": "mx", "text": "Hola", "recipients": PHONES}, BOGOTA_10AM)
    with engine.begin() as conn:
        conn.execute(update(Message).values(state="unknown", attempts=1))
        conn.execute(update(Message).where(Message.address == PHONES[2]).values(vendor_id="77"))
        conn.execute(update(Batch).values(state="done"))
    return job.job_id


def test_resend_puts_unknown_rows_back_to_pending_once_and_records_who(engine: Engine) -> None:
    # Given a job with unknown rows
    job = job_with_unknown_rows(engine)
    listed = unknown_rows(engine, job)
    # Then the rows the vendor numbered are not offered: a report resolves them, a resend would duplicate
    assert sorted(row.address for row in listed) == sorted(PHONES[:2])
    # When the operator decides, twice (a double click, a second terminal)
    ids = [row.id for row in listed]
    assert resend_unknown(engine, job, ids, "alice", BOGOTA_10AM) == 2
    assert resend_unknown(engine, job, ids, "alice", BOGOTA_10AM) == 0
    # Then each row went back to pending once, its batch waits again, and history says who and when
    with engine.connect() as conn:
        states = dict(conn.execute(select(Message.address, Message.state)).all())
        events = conn.execute(
            select(MessageEvent.from_state, MessageEvent.to_state, MessageEvent.reason, MessageEvent.at)
        ).all()
        batches = set(conn.execute(select(Batch.state)).scalars())
    assert states == {PHONES[0]: "pending", PHONES[1]: "pending", PHONES[2]: "unknown"}
    assert sorted(events) == [("unknown", "pending", "resend-unknown decided by alice", BOGOTA_10AM)] * 2
    assert batches == {"waiting"}


def test_the_command_asks_first_and_does_nothing_without_a_yes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given the command pointed at the database
    job = job_with_unknown_rows(engine)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DISPATCHER_ACCOUNTS", str(tmp_path / "none.toml"))
    # When the operator answers no
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    assert cli.main(["resend-unknown", job]) == 1
    assert "2 message(s) may have reached the handset" in capsys.readouterr().out
    assert len(unknown_rows(engine, job)) == 2
    # And then runs it with --yes and a name
    assert cli.main(["resend-unknown", job, "--yes", "--by", "bob"]) == 0
    assert "2 message(s) back to pending" in capsys.readouterr().out
    with engine.connect() as conn:
        assert set(conn.execute(select(MessageEvent.reason)).scalars()) == {"resend-unknown decided by bob"}
