"""Polls in real processes: 2,000 smsclouds and 200 SMSClick messages reach their final states.

A real Celery worker (two prefork processes), two beats (one started by mistake), Redis,
PostgreSQL and the simulators on loopback. Time moves through the clock file: each step of the
accounts' poll interval lets one poll of each kind run, however often the beats tick.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import func, select

from dispatcher.clock import FileClock
from dispatcher.models import DeliveryReport, Message, MessageEvent, PollCursor
from dispatcher.sandbox.messages import Progress
from dispatcher.sandbox.world import SECRETS, build_world
from tests.conftest import BOGOTA_10AM, REDIS_URL
from tests.workers import accounts_env, wait_for, worker_stack

pytestmark = pytest.mark.worker
#: seconds of the accounts' status and reply poll intervals (on the clock file)
INTERVAL = 30
SMSCLOUDS, SMSCLICK = 2000, 200


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    clock = FileClock(tmp_path / "clock")
    clock.set(BOGOTA_10AM)
    world = build_world(clock, Progress(to_sent=2, to_final=5, delivered_rate=0.9, reply_rate=0))
    every = {"status_poll_seconds": INTERVAL, "reply_poll_seconds": INTERVAL}
    (tmp_path / "accounts.toml").write_text(world.accounts_toml(**{"mx-smsclouds": every, "mx-smsclick": every}))
    env = {**SECRETS, **accounts_env(tmp_path / "accounts.toml", clock), "DISPATCHER_POLL_SECONDS": "0.5"}
    try:
        with worker_stack(tmp_path, env) as running:
            running.worker("polls", concurrency=2)
            running.ready(timeout=60)

            def beat(name: str) -> subprocess.Popen[bytes]:
                return running.beat(name, "--loglevel=INFO")

            yield {"engine": running.engine, "world": world, "clock": clock, "procs": running.procs, "beat": beat}
    finally:
        world.stop()


def test_polls_bring_every_message_to_its_final_state_once_across_a_beat_restart(stack: dict[str, Any]) -> None:
    engine, world, clock = stack["engine"], stack["world"], stack["clock"]
    # Given 2,000 smsclouds and 200 SMSClick messages sent by the worker
    app = Celery(broker=REDIS_URL)
    for account, prefix, count in (("mx-smsclouds", "+524498", SMSCLOUDS), ("mx-smsclick", "+525526", SMSCLICK)):
        recipients = [f"{prefix}{n:06d}" for n in range(count)]
        job = {"account": account, "text": "Hola", "recipients": recipients}
        app.send_task("dispatcher.submit", args=[job], queue="jobs")
    wait_for(lambda: counts(engine).get(("sent", None), 0) == SMSCLOUDS + SMSCLICK, 300, "every message sent")
    # When the vendors have decided them all (and smsclouds' "sent" has settled)
    clock.set(clock.now() + timedelta(hours=2))
    # And beat starts, and a second one by mistake
    for name in ("beat", "second-beat"):
        stack["procs"][name] = stack["beat"](name)
    # Then the first tick polls at once
    wait_for_polls(engine, clock.now())
    # And the first status poll of smsclouds asked about its first 1,000 and left its cursor there
    assert len(asked(world)) == 1000
    assert cursor(engine, "mx-smsclouds") is not None
    # When beat is killed and started again, and the polls go on
    stack["procs"]["beat"].send_signal(signal.SIGKILL)
    stack["procs"]["beat"].wait(15)
    stack["procs"]["beat"] = stack["beat"]("beat")
    step(engine, clock)
    # Then every message reached its final state, the newest included
    final = counts(engine)
    assert set(final) <= {("sent", "final"), ("delivered", "final"), ("failed", "final")}, final
    with engine.connect() as conn:
        per_account = dict(conn.execute(select(Message.account, func.count()).group_by(Message.account)).all())
    assert per_account == {"mx-smsclouds": SMSCLOUDS, "mx-smsclick": SMSCLICK}
    # And each smsclouds id was asked about exactly once: none missed, none repeated, by either beat
    with engine.connect() as conn:
        ids = conn.execute(select(Message.vendor_id).where(Message.account == "mx-smsclouds")).scalars().all()
    assert Counter(asked(world)) == Counter(int(i) for i in ids)
    # And another cycle of polls stores nothing and asks smsclouds nothing: no message of it can change
    stored = (rows(engine, DeliveryReport), rows(engine, MessageEvent))
    step(engine, clock)
    step(engine, clock)
    assert (rows(engine, DeliveryReport), rows(engine, MessageEvent)) == stored
    assert Counter(asked(world)) == Counter(int(i) for i in ids)
    with engine.connect() as conn:
        reports = conn.execute(select(DeliveryReport.account, func.count()).group_by(DeliveryReport.account)).all()
    # smsclouds answered each id once, with its final word; SMSClick's newest may have said "sent" first
    assert dict(reports)["mx-smsclouds"] == SMSCLOUDS
    assert world.ledger.duplicates() == {}


def step(engine: Any, clock: FileClock) -> None:
    """Move the clock one interval on and wait until both accounts' status polls of that time ran."""
    clock.set(clock.now() + timedelta(seconds=INTERVAL))
    wait_for_polls(engine, clock.now())


def wait_for_polls(engine: Any, since: Any) -> None:
    """Wait until both accounts' status polls started at or after ``since`` and let go of their locks."""

    def ran() -> bool:
        with engine.connect() as conn:
            stamps = conn.execute(
                select(PollCursor.last_run_at).where(PollCursor.kind == "status", PollCursor.account.like("mx-%"))
            ).scalars()
            return sum(1 for stamp in stamps if stamp and stamp >= since) == 2

    wait_for(ran, 120, "both status polls")
    # The poll claims its turn before it asks: wait for its lock to be let go as well.
    wait_for(lambda: not _poll_locked(), 120, "the polls to finish")


def _poll_locked() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return bool(client.keys("smsdispatch:lock:poll:mx-*:status"))
    finally:
        client.close()


def counts(engine: Any) -> Counter[tuple[str, str | None]]:
    """Messages by (state, whether the vendor's last report was final for it: None if not asked)."""
    with engine.connect() as conn:
        rows_ = conn.execute(select(Message.state, Message.report_state, Message.account)).all()
    out: Counter[tuple[str, str | None]] = Counter()
    for state, report, account in rows_:
        final = (
            report in ("sent", "delivered", "failed")
            if account == "mx-smsclouds"
            else report in ("delivered", "failed")
        )
        out[(state, "final" if final else None)] += 1
    return out


def asked(world: Any) -> list[int]:
    return [i for request in world.ledger.of("smsclouds", "/status") for i in request.json()["message_ids"]]


def cursor(engine: Any, account: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            select(PollCursor.value).where(PollCursor.account == account, PollCursor.kind == "status")
        ).scalar()


def rows(engine: Any, model: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()
