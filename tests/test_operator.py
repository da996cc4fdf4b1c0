"""The operator's commands against a real PostgreSQL: jobs, cancel, accounts, pause, resume, status --watch.

The delivery promises (a paused account holds a job and releases it on resume; a canceled job
sends nothing more) run with a real worker, beat, Redis and the IT Cloud simulator, judged by
the simulator's ledger.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select as selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from dispatcher import exchange, sending
from dispatcher.cli import main
from dispatcher.clock import FileClock
from dispatcher.config import load_accounts
from dispatcher.console import job_done
from dispatcher.jobs import CHUNK, ingest_job, ingest_stream
from dispatcher.models import Batch, Job, Message, MessageEvent
from dispatcher.operator import CANCEL_REASON, cancel_job
from tests.conftest import BOGOTA_10AM, REDIS_URL
from tests.workers import Stack, itcloud_stack, wait_for

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-operator-5512"
#: 03:00 in Bogota: the co-crc window (08:00-21:00) is closed, and opens at 13:00 UTC
BOGOTA_3AM = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+57300{i:07d}" for i in range(start, start + n)]


@pytest.fixture
def ops(
    tmp_path: Path, pg_engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """``main([...])`` in this process on the session's PostgreSQL, two accounts, a clock file."""
    import tasks.runtime

    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[accounts.co-main]\nvendor = "itcloud"\nbase_url = "http://127.0.0.1:9/itcloud"\n'
        'user = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\n'
        '[accounts.co-night]\nvendor = "itcloud"\nbase_url = "http://127.0.0.1:9/itcloud"\n'
        'user = "night@example.com"\ntoken = "${ITCLOUD_TOKEN}"\nwindow = "always"\n'
    )
    clock = FileClock(tmp_path / "clock")
    clock.set(BOGOTA_10AM)
    for name, value in {
        "DATABASE_URL": pg_url,
        "REDIS_URL": REDIS_URL,
        "DISPATCHER_ACCOUNTS": str(accounts),
        "DISPATCHER_CLOCK_FILE": str(clock.path),
        "ITCLOUD_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    tasks.runtime.reset()
    try:
        yield {"engine": pg_engine, "accounts": load_accounts(str(accounts)), "clock": clock}
    finally:
        tasks.runtime.reset()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def submit(ops: dict[str, Any], account: str, recipients: list[str], now: datetime | None = None) -> str:
    job = {"account": account, "text": "Hola", "recipients": recipients}
    return ingest_job(ops["engine"], ops["accounts"], job, now or ops["clock"].now()).job_id


def states(engine: Engine, job_id: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Message.state, func.count()).where(Message.job_id == job_id).group_by(Message.state)
        )
        return dict(rows.all())


def cancel_events(engine: Engine, job_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(MessageEvent)
            .join(Message, Message.id == MessageEvent.message_id)
            .where(Message.job_id == job_id, MessageEvent.to_state == "canceled")
        ).scalar_one()


def test_cancel_cancels_what_waits_and_lets_what_is_in_flight_finish(ops: dict[str, Any], capsys: Any) -> None:
    engine, now = ops["engine"], ops["clock"].now()
    job_id = submit(ops, "co-main", phones(6))
    with engine.begin() as conn:
        ids = conn.execute(select(Message.id).where(Message.job_id == job_id).order_by(Message.id)).scalars().all()
        # Given one row claimed by a worker (in flight) and one waiting for a retry
        conn.execute(update(Message).where(Message.id == ids[0]).values(state="sending"))
        conn.execute(update(Message).where(Message.id == ids[1]).values(not_before=now + timedelta(minutes=5)))
    # When the operator cancels the job
    code, out, _ = run(capsys, "cancel", job_id)
    # Then the five waiting rows are canceled, each with its event; the one in flight is left alone
    assert code == 0 and "5 canceled, 1 in flight" in out
    assert states(engine, job_id) == {"canceled": 5, "sending": 1}
    assert cancel_events(engine, job_id) == 5
    with engine.begin() as conn:
        assert conn.execute(select(Job.state).where(Job.id == job_id)).scalar() == "canceled"
        assert set(conn.execute(select(Batch.state).where(Batch.job_id == job_id)).scalars()) == {"done"}
        # And no claim takes a canceled row, the retry's included
        assert exchange.claim(conn, ids, now + timedelta(hours=1)) == {}
        # When the row in flight comes back to pending (the vendor said try again)
        conn.execute(update(Message).where(Message.id == ids[0]).values(state="pending", not_before=None))
        batch_id = conn.execute(select(Message.batch_id).where(Message.id == ids[0])).scalar_one()
        # Then the send path cancels it instead of picking it
        assert sending._due_rows(conn, ops["accounts"]["co-main"], batch_id, now) == []
    assert states(engine, job_id) == {"canceled": 6}
    assert cancel_events(engine, job_id) == 6
    # And a second cancel changes nothing
    assert "0 canceled, 0 in flight" in run(capsys, "cancel", job_id)[1]
    assert run(capsys, "cancel", "no-such-job")[0] == 1


def test_a_cancel_stops_an_ingest_still_storing_chunks(ops: dict[str, Any]) -> None:
    engine, now = ops["engine"], ops["clock"].now()
    job_id = "job-canceled-while-ingesting"

    def recipients() -> Iterator[str]:
        for i, phone in enumerate(phones(3 * CHUNK)):
            if i == CHUNK:
                # The first chunk is committed: the operator cancels before the second is stored.
                assert cancel_job(engine, job_id, now).found
            yield phone

    header = {"account": "co-main", "text": "Hola"}
    result = ingest_stream(engine, ops["accounts"], header, recipients(), now, job_id=job_id)
    assert result.state == "canceled"
    assert states(engine, job_id) == {"canceled": CHUNK}
    # And a redelivered ingest of the same job adds nothing
    again = ingest_stream(engine, ops["accounts"], header, iter(phones(3 * CHUNK)), now, job_id=job_id)
    assert again.state == "canceled" and states(engine, job_id) == {"canceled": CHUNK}


def test_jobs_lists_recent_jobs_with_their_counts(ops: dict[str, Any], capsys: Any) -> None:
    first = submit(ops, "co-main", [*phones(3), "12"])
    second = submit(ops, "co-night", phones(2), ops["clock"].now() + timedelta(minutes=1))
    cancel_job(ops["engine"], second, ops["clock"].now())
    code, out, _ = run(capsys, "jobs")
    assert code == 0
    lines = out.splitlines()
    # Newest first, each with its account, state and counts
    assert second in lines[1] and "co-night" in lines[1] and "canceled 2" in lines[1]
    assert first in lines[2] and "accepted" in lines[2] and "pending 3, rejected 1" in lines[2]
    assert first not in run(capsys, "jobs", "--account", "co-night")[1]
    assert second not in run(capsys, "jobs", "--state", "accepted")[1]
    assert first not in run(capsys, "jobs", "--limit", "1")[1]


def test_accounts_shows_window_pause_balance_and_messages_waiting(ops: dict[str, Any], capsys: Any) -> None:
    from dispatcher import account_state

    engine = ops["engine"]
    ops["clock"].set(BOGOTA_3AM)
    submit(ops, "co-main", phones(4))
    with engine.begin() as conn:
        account_state.record_balance(conn, "co-night", 1520.0, BOGOTA_3AM)
    assert run(capsys, "pause", "co-night", "--reason", "campaign on hold")[0] == 0
    code, out, _ = run(capsys, "accounts")
    assert code == 0, out
    main_line, night_line = (
        next(line for line in out.splitlines() if line.startswith(k)) for k in ("co-main ", "co-night")
    )
    # co-main: Colombian hours closed at 03:00, opening 08:00 Bogota; not paused; balance unknown; 4 waiting
    assert "co-crc closed, opens 2026-11-23 13:00 UTC" in main_line
    assert " no " in main_line and " - " in main_line and main_line.rstrip().endswith(" 4")
    # co-night: always open, paused by the operator with the reason, its last balance
    assert "always open" in night_line and "operator: campaign on hold" in night_line
    assert "1520 at 2026-11-23 08:00 UTC" in night_line and night_line.rstrip().endswith(" 0")


def test_pause_without_until_holds_for_years_and_resume_ends_it(ops: dict[str, Any], capsys: Any) -> None:
    from dispatcher import account_state

    engine, now = ops["engine"], ops["clock"].now()
    code, out, _ = run(capsys, "pause", "co-main")
    assert code == 0 and "co-main paused until 2036" in out
    code, out, _ = run(capsys, "pause", "co-main", "--until", "2026-11-24T08:00:00-05:00")
    with engine.connect() as conn:
        assert account_state.paused_until(conn, "co-main", now) == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    assert run(capsys, "pause", "co-main", "--until", "tomorrow")[0] == 2
    assert run(capsys, "pause", "nobody")[0] == 2
    code, out, _ = run(capsys, "resume", "co-main")
    assert code == 0 and "co-main resumed" in out
    with engine.connect() as conn:
        assert account_state.paused_until(conn, "co-main", now) is None


def test_status_watch_ends_when_the_job_is_done(ops: dict[str, Any], pg_url: str) -> None:
    engine = ops["engine"]
    job_id = submit(ops, "co-main", phones(3))
    watch = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "status", job_id, "--watch", "--interval", "0.2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # Given it shows the job waiting (a line per change: stdout is not a terminal)
        assert "pending=3" in watch.stdout.readline()
        with engine.begin() as conn:
            conn.execute(update(Message).where(Message.job_id == job_id).values(state="sending"))
        assert "sending=3" in watch.stdout.readline()
        # When every row reaches a final state, the watch ends by itself, successfully
        with engine.begin() as conn:
            conn.execute(update(Message).where(Message.job_id == job_id).values(state="sent"))
        assert "sent=3" in watch.stdout.readline()
        assert watch.wait(30) == 0
    finally:
        watch.kill()


def test_ctrl_c_stops_the_watch_cleanly_and_leaves_the_job_alone(ops: dict[str, Any]) -> None:
    job_id = submit(ops, "co-main", phones(2))
    watch = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "status", job_id, "--watch", "--interval", "0.2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert "pending=2" in watch.stdout.readline()
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert watch.returncode == 130 and "stopped watching" in out and "Traceback" not in err
    assert states(ops["engine"], job_id) == {"pending": 2}


def test_a_job_still_ingesting_is_not_done() -> None:
    counts = {"pending": 0, "sending": 0, "sent": 4}
    assert not job_done({"state": "ingesting", "counts": counts})
    assert job_done({"state": "accepted", "counts": counts})
    assert not job_done({"state": "canceled", "counts": {**counts, "sending": 1}})


def test_submit_shows_progress_on_a_terminal_and_only_the_job_id_on_stdout(
    ops: dict[str, Any], tmp_path: Path
) -> None:
    csv = tmp_path / "big.csv"
    csv.write_text("phone,name\n" + "\n".join(f"{p},Ana" for p in phones(5000)) + "\n")
    master, slave = pty.openpty()
    done = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "submit", str(csv), "--account", "co-main", "--text", "Hi"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
        stdout=subprocess.PIPE, stderr=slave, text=True,
    )  # fmt: skip
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = selectors.select([master], [], [], 60)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the child closed its end
            chunk = b""
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 0
    (job_id,) = out.split()
    assert states(ops["engine"], job_id) == {"pending": 5000}
    # And the terminal saw the rows read and the bar's bytes, at the end the whole file
    size_kb = f"{csv.stat().st_size / 1000:.1f}/{csv.stat().st_size / 1000:.1f} kB".encode()
    assert b"5,000 rows read" in shown and size_kb in shown


# --- with a real worker, beat, Redis and the IT Cloud simulator --------------------------------


def cli(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", *argv],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def numbers_sent(stack: Stack) -> list[str]:
    """Every number of every send request the simulator got, in order ('+57...')."""
    found = []
    for request in stack.ledger.of("itcloud", "/api/sendsms"):
        found += ["+" + n.strip() for n in request.params().get("GSM", "").split(",") if n.strip()]
    return found


def submit_json(stack: Stack, recipients: list[str]) -> str:
    job = stack.tmp / "job.json"
    job.write_text(json.dumps({"account": "co-main", "text": "Hola", "recipients": recipients}))
    done = cli(stack, "submit", str(job))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.worker
def test_a_paused_account_holds_a_job_and_resume_releases_it_at_once(tmp_path: Path) -> None:
    # Beat checks paused accounts' balances every second, and the simulator has credit: an
    # operator's pause must hold anyway.
    with itcloud_stack(
        tmp_path, {"DISPATCHER_BALANCE_SECONDS": "1"}, account_extra='balance_url = "{url}/query.php"\n'
    ) as stack:
        assert cli(stack, "pause", "co-main", "--reason", "campaign on hold").returncode == 0
        job_id = submit_json(stack, phones(30))
        # Given several sweeps and balance checks pass
        checks = re.compile(r"dispatcher\.check_balance\[[^\]]+\] succeeded")
        wait_for(lambda: len(checks.findall(stack.worker_log.read_text())) >= 3, 60, "three balance checks")
        # Then nothing was sent and the account still shows paused, holding 30 messages
        assert numbers_sent(stack) == [] and stack.states(job_id) == {"pending": 30}
        shown = cli(stack, "accounts").stdout
        assert "operator: campaign on hold" in shown and shown.splitlines()[1].rstrip().endswith(" 30")
        # When the operator resumes it, the job goes out
        assert "30 messages waiting" in cli(stack, "resume", "co-main").stdout
        wait_for(lambda: stack.states(job_id) == {"sent": 30}, 60, "the job to be sent")
        assert sorted(numbers_sent(stack)) == phones(30) and stack.ledger.duplicates() == {}


@pytest.mark.worker
@pytest.mark.parametrize("answer", ["accepted", "try again"])
def test_a_job_canceled_mid_run_sends_nothing_after_the_cancel(tmp_path: Path, answer: str) -> None:
    with itcloud_stack(tmp_path) as stack:
        # Given the vendor holds its answer to the first request (1000 numbers of 3000) for 20 s,
        # then accepts them, or answers HTTP 500 (the rows go back to wait for a retry); 20 s,
        # because on a loaded machine the cancel command below took 4 s, once over 12 s, just to
        # start (the account's read timeout, 30 s, stays above the hold)
        first = {"delay": 20.0} if answer == "accepted" else {"status": 500, "delay": 20.0}
        stack.sim.script(first)
        job_id = submit_json(stack, phones(3000))
        wait_for(lambda: len(stack.ledger.of("itcloud", "/api/sendsms")) == 1, 60, "the first request")
        # When the operator cancels the job while that request is in flight
        done = cli(stack, "cancel", job_id)
        assert done.returncode == 0 and "2000 canceled, 1000 in flight" in done.stdout, done.stdout
        requested_before = numbers_sent(stack)
        # Then, after the request ends and many sweeps have passed (and its retry time with them)
        wait_for(lambda: "sending" not in stack.states(job_id), 60, "the request in flight to end")
        time.sleep(5)
        stack.clock.set(stack.clock.now() + timedelta(minutes=5))
        time.sleep(3)
        # No request went out after the cancel, for any row
        assert numbers_sent(stack) == requested_before and len(requested_before) == 1000
        expected = {"sent": 1000, "canceled": 2000} if answer == "accepted" else {"canceled": 3000}
        assert stack.states(job_id) == expected
        with stack.engine.connect() as conn:
            reasons = set(conn.execute(select(Message.reason).where(Message.state == "canceled")).scalars())
        assert reasons == {CANCEL_REASON}
