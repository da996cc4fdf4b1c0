"""A real prefork worker's /metrics after a job: the counts the database and the vendor agree on.

A real Celery worker (two pool processes) and beat, Redis, PostgreSQL and the IT Cloud simulator.
Two accounts send a known mix: numbers the vendor accepts, numbers it refuses (its block list,
code -8) and one 500 that sends a request's rows back to wait. Every count is read from the
scrape and compared with the rows in the database and the requests in the simulator's ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select

from dispatcher.clock import FileClock
from dispatcher.db import make_engine
from dispatcher.models import Message, MessageEvent, PollCursor
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from tests.conftest import BOGOTA_10AM, REDIS_URL, fresh_pg_database, unavailable, wipe_redis
from tests.test_pipeline import free_port, wait_for

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parent.parent
#: account key → IT Cloud user
USERS = {"co-main": "ops@example.com", "co-alt": "alt@example.com"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    wipe_redis(client)
    clock = FileClock(tmp_path / "clock")
    clock.set(BOGOTA_10AM)
    ledger = Ledger()
    sim = ItCloudSim(ledger, clock)
    accounts = ""
    for key, user in USERS.items():
        sim.add_user(user, f"tok-{key}-123456")
        accounts += (
            f'[accounts.{key}]\nvendor = "itcloud"\nbase_url = "{{url}}"\nuser = "{user}"\n'
            f'token = "${{TOKEN_{key.replace("-", "_").upper()}}}"\nretry_base = 0.2\nretry_max = 1\n'
        )
    server = SandboxServer({"itcloud": sim}).start()
    (tmp_path / "accounts.toml").write_text(accounts.replace("{url}", server.url("itcloud")))
    port = free_port()
    with fresh_pg_database() as db_url:
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(
            DATABASE_URL=db_url,
            REDIS_URL=REDIS_URL,
            DISPATCHER_ACCOUNTS=str(tmp_path / "accounts.toml"),
            DISPATCHER_CLOCK_FILE=str(clock.path),
            DISPATCHER_SWEEP_SECONDS="0.5",
            DISPATCHER_METRICS_PORT=str(port),
            TOKEN_CO_MAIN="tok-co-main-123456",
            TOKEN_CO_ALT="tok-co-alt-123456",
            PYTHONPATH=str(ROOT),
        )
        celery = [sys.executable, "-m", "celery", "-A", "tasks"]
        log = tmp_path / "worker.log"
        worker = subprocess.Popen(
            [*celery, "worker", "--concurrency=2", "-Q", "jobs,send,poll", "--loglevel=INFO",
             "--without-mingle", "--without-gossip", "-n", "metrics@%h"],
            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        beat = subprocess.Popen(
            [*celery, "beat", "--schedule", str(tmp_path / "beat-schedule"), "--loglevel=INFO"],
            cwd=ROOT, env=env, stdout=(tmp_path / "beat.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        engine = make_engine(db_url)
        try:
            wait_for(lambda: "ready." in log.read_text(), 30, "the worker to start")
            yield {"engine": engine, "sim": sim, "ledger": ledger, "clock": clock, "port": port, "log": log}
        finally:
            for proc in (worker, beat):
                proc.send_signal(signal.SIGTERM)
            for proc in (worker, beat):
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            engine.dispose()
            server.stop()
            wipe_redis(client)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics: sample (name, sorted labels) → value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include these."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def submit(account: str, phones: list[str]) -> str:
    job = {"account": account, "text": "Hola", "recipients": phones}
    return Celery(broker=REDIS_URL).send_task("dispatcher.submit", args=[job], queue="jobs").id


def test_the_worker_serves_the_counts_the_database_and_the_vendor_agree_on(served: dict[str, Any]) -> None:
    engine, sim, ledger, clock = served["engine"], served["sim"], served["ledger"], served["clock"]
    # Given the vendor fails the first request it gets with a 500 (its rows wait and go again)
    sim.script({"status": 500})
    # And a poll cursor two minutes old
    with engine.begin() as conn:
        conn.execute(
            insert(PollCursor).values(
                account="co-main", kind="status", value="1", updated_at=clock.now() - timedelta(minutes=2)
            )
        )
    # When each account sends a job mixing numbers the vendor accepts and refuses (its block list)
    phones = {
        "co-main": [f"+5730012300{i:02d}" for i in range(6)],
        "co-alt": [f"+5730045600{i:02d}" for i in range(4)],
    }
    sim.users["ops@example.com"].blocked.update({"573001230004", "573001230005"})
    sim.users["alt@example.com"].blocked.add("573004560003")
    jobs = {account: submit(account, numbers) for account, numbers in phones.items()}

    def settled() -> bool:
        with engine.connect() as conn:
            states = dict(conn.execute(select(Message.state, func.count()).group_by(Message.state)).all())
        return sum(states.values()) == 10 and not states.get("pending") and not states.get("sending")

    wait_for(settled, 90, "both jobs to settle")
    # Then the scrape counts, per account, exactly what the database and the vendor's ledger hold
    got = scrape(served["port"])
    retried_overall = 0.0
    for account, user in USERS.items():
        ids = {"account": account, "vendor": "itcloud"}
        with engine.connect() as conn:
            rows = dict(
                conn.execute(
                    select(Message.state, func.count())
                    .where(Message.job_id == jobs[account])
                    .group_by(Message.state)
                ).all()
            )
            retries = conn.execute(
                select(func.count())
                .select_from(MessageEvent)
                .join(Message, Message.id == MessageEvent.message_id)
                .where(Message.account == account, MessageEvent.from_state == "sending")
                .where(MessageEvent.to_state == "pending")
            ).scalar_one()
        requests = [r for r in ledger.of("itcloud", "/api/sendsms") if r.params().get("user") == user]
        counted = {
            "sent": total(got, "smsdispatch_messages_sent_total", **ids),
            "failed": total(got, "smsdispatch_messages_failed_total", **ids),
            "retried": total(got, "smsdispatch_messages_retried_total", **ids),
            "requests": total(got, "smsdispatch_vendor_request_seconds_count", **ids),
        }
        expected = {
            "sent": rows.get("sent", 0),
            "failed": rows.get("failed", 0),
            "retried": retries,
            "requests": len(requests),
        }
        assert counted == expected, account
        assert rows.get("sent") and rows.get("failed")
        retried_overall += counted["retried"]
    # And the 500 was one of them: its rows were counted as retried
    assert retried_overall > 0
    assert total(got, "smsdispatch_vendor_request_seconds_count", outcome="retry") == 1
    # And queue depth is read from Redis for every queue, poll lag from the database
    depths = {dict(ls)["queue"] for (n, ls) in got if n == "smsdispatch_queue_depth"}
    assert depths == {"jobs", "send", "poll"}
    assert total(got, "smsdispatch_poll_lag_seconds", account="co-main", kind="status") >= 120
