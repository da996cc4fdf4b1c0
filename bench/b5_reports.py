"""B5: delivery reports into a table of 1,000,000 messages, polled and pushed.

    python -m bench.b5_reports [--rows N] [--reports N] [--pushes N] [--senders 8] [--hook-workers 2]
                               [--repeat 3] [--quick] [--no-record]

A fresh PostgreSQL database (``bench.common.pg_database``) is seeded with ``--rows`` sent
messages (``INSERT ... SELECT generate_series``, half on a polled account, half on a pushing
one). Then, each repeat on reports not seen before, so every report moves a message:

- polling: the reports a status poll brings back are stored with ``record_statuses``, a poll's
  ``STATUS_BATCH`` at a time, as ``dispatcher.polling`` does. Ceiling in the same run: one bare
  ``UPDATE messages ... FROM unnest(ids)`` per chunk of other rows, committed (the database's
  own cost of moving those rows, with no report stored and no history);
- pushes: ``dispatcher webhooks`` (the real command) runs against the database and ``--senders``
  concurrent senders (asyncio, one keep-alive connection each) push one delivery report per
  request; a push is answered 200 only after its report was committed. Ceiling in the same
  run: the same senders fetching the same app's ``/healthz`` (its HTTP side alone).

Afterwards every report is checked: each moved its message once, with one history row.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from sqlalchemy import Engine, text

from bench.common import DISPATCHER, NOW, fake_vendor, pg_database, publish, rate, repeat
from dispatcher.db import make_engine
from dispatcher.inbound import record_statuses
from dispatcher.polling import STATUS_BATCH
from dispatcher.sandbox.world import ACCOUNT_KEYS, SECRETS
from dispatcher.vendors.base import DeliveryState, StatusReport

POLLED = ACCOUNT_KEYS["smsclouds"]
PUSHED = ACCOUNT_KEYS["ogangi"]
#: the benchmark's name in docs/benchmarks.md
NAME = "B5 delivery reports"


def seed(engine: Engine, rows: int) -> float:
    """``rows`` sent messages: odd ids on the pushing account (og-<id>), even on the polled (sc-<id>)."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO jobs (id, account, state, priority, recipients, ingested, created_at) "
                 "VALUES ('b5', NULL, 'accepted', 'bulk', :n, :n, :now)"),
            {"n": rows, "now": NOW.replace(tzinfo=None)},
        )  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO messages (job_id, account, address, text, state, vendor_id, attempts,"
                " created_at, updated_at, sent_at)"
                " SELECT 'b5', CASE WHEN i % 2 = 1 THEN :pushed ELSE :polled END,"
                " '+58414' || lpad(i::text, 7, '0'), 'Aviso', 'sent',"
                " CASE WHEN i % 2 = 1 THEN 'og-' ELSE 'sc-' END || i, 1, :now, :now, :now"
                " FROM generate_series(1, :n) AS i"
            ),
            {"n": rows, "now": NOW.replace(tzinfo=None), "pushed": PUSHED, "polled": POLLED},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE messages"))
    return time.perf_counter() - started


def bench_polling(engine: Engine, ids: list[int]) -> float:
    """Store the reports of ``ids`` as polls bring them, STATUS_BATCH per poll; reports/s."""
    started = time.perf_counter()
    for start in range(0, len(ids), STATUS_BATCH):
        chunk = ids[start : start + STATUS_BATCH]
        reports = [StatusReport(f"sc-{i}", DeliveryState.DELIVERED, code="3") for i in chunk]
        record_statuses(engine, POLLED, reports, datetime.now(UTC))
    return rate(len(ids), time.perf_counter() - started)


def bare_update(engine: Engine, ids: list[int]) -> float:
    """The ceiling: one bare set-wise UPDATE of the rows per STATUS_BATCH, committed; rows/s."""
    started = time.perf_counter()
    for start in range(0, len(ids), STATUS_BATCH):
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE messages SET state = 'delivered', report_state = 'delivered', updated_at = now()"
                     " FROM unnest(CAST(:ids AS bigint[])) AS v(id) WHERE messages.id = v.id AND state = 'sent'"),
                {"ids": ids[start : start + STATUS_BATCH]},
            )  # fmt: skip
    return rate(len(ids), time.perf_counter() - started)


async def _senders(base: str, paths: list[tuple[str, dict[str, str] | None]], senders: int) -> float:
    """Send every (path, form) with ``senders`` requests in flight; requests/s. Every answer must be 200."""
    queue = iter(paths)
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def sender() -> None:
            for path, form in queue:
                answer = await (client.post(path, data=form) if form else client.get(path))
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: {answer.status_code} {answer.text}")

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        return len(paths) / (time.perf_counter() - started)


def bench_pushes(base: str, ids: list[int], senders: int) -> float:
    secret = SECRETS["SANDBOX_WEBHOOK_SECRET"]
    path = f"/hooks/{PUSHED}/{secret}"
    forms = [(path, {"TYPE": "SMS", "MESSANGI_ID": f"og-{i}", "STATUS": "DELIVRD"}) for i in ids]
    return asyncio.run(_senders(base, list(forms), senders))


def bench_healthz(base: str, count: int, senders: int) -> float:
    return asyncio.run(_senders(base, [("/healthz", None)] * count, senders))


@contextmanager
def webhook_app(env: dict[str, str], workers: int) -> Iterator[str]:
    """``dispatcher webhooks --workers N`` on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [*DISPATCHER, "webhooks", "--port", str(port), *(["--workers", str(workers)] if workers > 1 else [])],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the webhook app did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def check(engine: Engine, account: str, expected: int) -> None:
    """Each report of the account stored once, its message delivered, with one history row."""
    with engine.connect() as conn:
        stored, delivered, events = conn.execute(
            text("SELECT count(*), count(*) FILTER (WHERE m.state = 'delivered'),"
                 " (SELECT count(*) FROM message_events e JOIN delivery_reports r ON r.message_id = e.message_id"
                 "  WHERE r.account = :a AND e.to_state = 'delivered')"
                 " FROM delivery_reports d JOIN messages m ON m.id = d.message_id WHERE d.account = :a"),
            {"a": account},
        ).one()  # fmt: skip
    if not stored == delivered == events == expected:
        raise SystemExit(
            f"{account}: {stored} stored, {delivered} delivered, {events} events; {expected} expected"
        )


def run(rows: int, reports: int, pushes: int, senders: int, repeats: int, hook_workers: int) -> dict[str, float]:
    """Seed, then poll and push ``repeats`` times; the figures (reports/s, min and median)."""
    import os

    with TemporaryDirectory(prefix="smsd-b5-") as tmp, fake_vendor(Path(tmp)) as vendor:
        with pg_database() as db_url:
            engine = make_engine(db_url)
            seconds = seed(engine, rows)
            print(f"B5: seeded {rows:,} messages in {seconds:.1f} s", flush=True)
            # Even ids are the polled account's, odd ones the pushing account's; each run its own.
            runs = iter(range(1000))
            polled = repeat(lambda: bench_polling(engine, _ids(next(runs), reports, 0)), repeats)
            bare = repeat(lambda: bare_update(engine, _ids(next(runs), reports, 0)), repeats)
            # The webhook app takes no rate slot: no Redis database of its own is needed.
            env = {**os.environ, **vendor.env, "DATABASE_URL": db_url, "REDIS_URL": "memory://",
                   "DISPATCHER_METRICS_PORT": "0"}  # fmt: skip
            with webhook_app(env, hook_workers) as base:
                pushed_runs = iter(range(1000))
                healthz = repeat(lambda: bench_healthz(base, pushes, senders), repeats)
                pushed = repeat(lambda: bench_pushes(base, _ids(next(pushed_runs), pushes, 1), senders), repeats)
            check(engine, POLLED, repeats * reports)
            check(engine, PUSHED, repeats * pushes)
            engine.dispose()
    return {
        "rows": float(rows),
        "polling/s min": polled.min,
        "polling/s median": polled.median,
        "bare update/s median": bare.median,
        "polling ratio": polled.median / bare.median,
        "webhook processes": float(hook_workers),
        f"pushes/s ({senders} senders) min": pushed.min,
        "pushes/s median": pushed.median,
        "healthz/s median": healthz.median,
        "pushes ratio": pushed.median / healthz.median,
    }


def _ids(run: int, count: int, parity: int) -> list[int]:
    """The ``run``-th ``count`` message ids of one parity (0: polled account, 1: pushing one)."""
    return [2 * (run * count + k) + 2 - parity for k in range(count)]


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run B5, print and record its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reports", type=int, default=50_000, help="polled reports per repeat")
    parser.add_argument("--pushes", type=int, default=3_000, help="pushed reports per repeat")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--hook-workers", type=int, default=2, help="processes of dispatcher webhooks")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--no-record", action="store_true", help="print only, add no row to docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.reports, args.pushes, args.repeat = 20_000, 2_000, 200, 1
    figures = run(args.rows, args.reports, args.pushes, args.senders, args.repeat, args.hook_workers)
    publish(NAME, figures, args.no_record, note="(targets: polling 20,000/s, pushes 1,000/s)")
    return figures


if __name__ == "__main__":
    main()
