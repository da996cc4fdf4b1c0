"""Metrics counted where things happen, and the collectors the worker reads at scrape time.

In one process (no multiprocess directory) the counts land in prometheus_client's default
registry; each test reads a counter before and after what it does. The queue-depth collector
reads this run's Redis database, the poll-lag collector a real database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, update

from dispatcher.balance import query_balance
from dispatcher.metrics import MetricsEndpoint, PollLagCollector, count_slot_wait, know_accounts
from dispatcher.models import Message, PollCursor
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import expire_overdue, expire_stale_sending
from dispatcher.sending import send_batch
from tasks.app import app
from tasks.metrics import _queue_depth
from tests.conftest import BOGOTA_10AM, FakeClock
from tests.test_sending import context, submit


def value(name: str, **labels: str) -> float:
    """A sample of this process's default registry; 0 when it was never counted."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(*collectors: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What Prometheus would read from a registry of these collectors: sample (name, labels) → value."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_queue_depth_sums_each_queue_with_its_priority_sub_queues(redis_client) -> None:
    # Given messages in the send queue at priority 0 ("send") and 6 ("send:6"), and one job
    redis_client.lpush("send", "a", "b")
    redis_client.lpush("send:6", "c", "d", "e")
    redis_client.lpush("jobs", "f")
    redis_client.lpush("unrelated", "g")
    # When the worker's collector, built from the Celery configuration, is scraped
    got = scrape(_queue_depth(app, redis_client))
    # Then each configured queue shows its lists summed, an empty queue shows 0
    depth = {labels[0][1]: v for (name, labels), v in got.items() if name == "smsdispatch_queue_depth"}
    assert depth == {"send": 5.0, "jobs": 1.0, "poll": 0.0}


def test_poll_lag_is_the_time_since_each_configured_accounts_last_poll(engine: Engine) -> None:
    # Given cursors written 90 s and 10 s ago, and one of an account no longer configured
    clock = FakeClock(BOGOTA_10AM)
    now = clock.now()
    cursors = [("mx-main", "status", 90), ("mx-main", "replies", 10), ("gone", "status", 9 * 86400)]
    with engine.begin() as conn:
        conn.execute(
            insert(PollCursor),
            [
                {"account": a, "kind": k, "value": "1", "updated_at": now - timedelta(seconds=s)}
                for a, k, s in cursors
            ],
        )
    # When it is scraped
    got = scrape(PollLagCollector(engine, {"mx-main": "smsclouds"}, clock.now))
    # Then each cursor of a configured account shows its age
    lag = {dict(labels)["kind"]: v for (name, labels), v in got.items() if name == "smsdispatch_poll_lag_seconds"}
    assert lag == {"status": 90.0, "replies": 10.0}
    assert all(dict(labels)["account"] == "mx-main" for (_name, labels) in got)


def test_recorded_results_count_by_what_happened_to_each_message(engine: Engine, sandbox) -> None:
    # Given a job of three, the vendor answering 500 to its first request
    ctx = context(engine, sandbox)
    ids = {"account": "co-main", "vendor": "itcloud"}
    before = {n: value(f"smsdispatch_messages_{n}_total", **ids) for n in ("sent", "retried", "failed")}
    requests = value("smsdispatch_vendor_request_seconds_count", outcome="retry", **ids)
    sandbox.sim.script({"status": 500})
    _job, queued = submit(ctx, 3)
    # When the batch is sent, then sent again once its retry is due
    send_batch(ctx, queued[0])
    ctx.clock.advance(60)
    ctx.limiter = MemoryLimiter()  # the fake clock moved; let the real pause go too
    send_batch(ctx, queued[0])
    # Then three were retried, then three sent, none failed, and the refused request was timed
    after = {n: value(f"smsdispatch_messages_{n}_total", **ids) for n in ("sent", "retried", "failed")}
    assert {n: after[n] - before[n] for n in after} == {"sent": 3, "retried": 3, "failed": 0}
    assert value("smsdispatch_vendor_request_seconds_count", outcome="retry", **ids) - requests == 1


def test_a_task_finding_the_slot_taken_counts_a_rate_limit_wait(engine: Engine, sandbox) -> None:
    # Given another worker holds the account's request slot
    ctx = context(engine, sandbox)
    _job, queued = submit(ctx, 1)
    ctx.limiter.acquire("co-main", 30.0)
    waits = value("smsdispatch_rate_limit_waits_total", account="co-main", vendor="itcloud")
    # When the batch's task runs
    report = send_batch(ctx, queued[0])
    # Then it comes back later, and the wait is counted
    assert report.again_in is not None
    assert value("smsdispatch_rate_limit_waits_total", account="co-main", vendor="itcloud") - waits == 1


def test_a_balance_query_sets_the_balance_gauge(engine: Engine, sandbox) -> None:
    ctx = context(engine, sandbox, balance_url=sandbox.url("itcloud") + "/query.php")
    sandbox.sim.customers["ops@example.com"].credit = 4321
    query_balance(ctx, ctx.accounts["co-main"])
    assert value("smsdispatch_balance", account="co-main", vendor="itcloud") == 4321


def test_rows_the_sweeps_settle_count_as_unknown_and_expired(engine: Engine, sandbox) -> None:
    # Given two rows a dead worker left 'sending', and one pending row past its deadline
    ctx = context(engine, sandbox)
    know_accounts({"co-main": "itcloud"})
    ids = {"account": "co-main", "vendor": "itcloud"}
    before = {n: value(f"smsdispatch_messages_{n}_total", **ids) for n in ("unknown", "expired")}
    lost, _ = submit(ctx, 2)
    late, _ = submit(ctx, 1, idempotency_key="late")
    long_ago = ctx.clock.now() - timedelta(seconds=ctx.settings.sending_timeout + 1)
    with engine.begin() as conn:
        conn.execute(update(Message).where(Message.job_id == lost).values(state="sending", updated_at=long_ago))
        conn.execute(update(Message).where(Message.job_id == late).values(deadline=long_ago))
    # When the sweeps run
    expire_stale_sending(engine, ctx.settings, ctx.clock.now())
    expire_overdue(engine, ctx.clock.now(), ctx.accounts)
    # Then the counts say so
    after = {n: value(f"smsdispatch_messages_{n}_total", **ids) for n in ("unknown", "expired")}
    assert {n: after[n] - before[n] for n in after} == {"unknown": 2, "expired": 1}


def test_the_endpoint_for_a_web_app_serves_this_processs_metrics() -> None:
    # Given something counted in this process
    count_slot_wait("co-web", "itcloud")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=MetricsEndpoint())
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/metrics")

    # When the ASGI endpoint a web app routes /metrics to is asked
    response = asyncio.run(get())
    # Then it answers in Prometheus's text format, with that count
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert 'smsdispatch_rate_limit_waits_total{account="co-web",vendor="itcloud"} 1.0' in response.text
