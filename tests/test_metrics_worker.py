"""A real prefork worker's /metrics after a job: the counts the database and the vendor agree on.

A real Celery worker (two pool processes) and beat, Redis, PostgreSQL and the IT Cloud simulator.
Two accounts send a known mix: numbers the vendor accepts, numbers it refuses (its block list,
code -8) and one 500 that sends a request's rows back to wait. Every count is read from the
scrape and compared with the rows in the database and the requests in the simulator's ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select

from dispatcher.models import Message, MessageEvent, PollCursor
from tests.conftest import REDIS_URL
from tests.workers import free_port, itcloud_vendor, wait_for, worker_stack

pytestmark = pytest.mark.worker
#: account key → IT Cloud user
USERS = {"co-main": "ops@example.com", "co-alt": "alt@example.com"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    users = {
        key: (user, f"TOKEN_{key.replace('-', '_').upper()}", f"tok-{key}-123456") for key, user in USERS.items()
    }
    settings = "retry_base = 0.2\nretry_max = 1\n"
    port = free_port()
    with (
        itcloud_vendor(tmp_path, settings=settings, users=users) as vendor,
        worker_stack(
            tmp_path, {**vendor.env, "DISPATCHER_METRICS_PORT": str(port)}, unset=("PROMETHEUS_MULTIPROC_DIR",)
        ) as stack,
    ):
        stack.worker("metrics", concurrency=2)
        stack.beat("beat", "--loglevel=INFO")
        stack.ready()
        yield {
            "engine": stack.engine, "sim": vendor.sim, "ledger": vendor.ledger, "clock": vendor.clock,
            "port": port, "log": stack.worker_log,
        }  # fmt: skip


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
    sim.customers["ops@example.com"].blocked.update({"573001230004", "573001230005"})
    sim.customers["alt@example.com"].blocked.add("573004560003")
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
