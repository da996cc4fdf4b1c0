"""Time the send path in one process: ingest, release and send a job through a simulated vendor.

    python -m bench.send_path [--vendor smsclouds|smsclick] [--recipients N] [--repeat R]
                              [--latency SECONDS] [--personalised]

A fresh PostgreSQL database per run, the vendor's simulator on loopback (answering at once, or
after ``--latency`` seconds), one process sending batch after batch as a send task would. The
ceiling, in the same run against the same simulator, is a bare sequential httpx loop posting the
requests the adapter builds for the same recipients cut the same way, with no database. Prints
seconds and messages per second for the send phase, the ceiling and their ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from bench.common import pg_database
from dispatcher.config import AccountConfig, Settings, parse_accounts
from dispatcher.db import make_engine
from dispatcher.jobs import ingest_job
from dispatcher.models import Message
from dispatcher.planning import batch_size
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.world import SECRETS, build_world
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.text import render
from dispatcher.transport import Transport
from dispatcher.vendors import adapter_for
from dispatcher.vendors import base as vendor_base

#: 10:00 in Mexico City, inside every default window
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
ACCOUNT = {"smsclouds": "mx-smsclouds", "smsclick": "mx-smsclick"}
PERSONAL = "Hola {name}, su codigo es {code}"


class StillClock:
    """The dispatcher's clock, standing at NOW."""

    def now(self) -> datetime:
        return NOW


def job_of(vendor: str, recipients: int, personalised: bool) -> dict[str, object]:
    """The job: one shared text, or one text per recipient from a template."""
    phones = [f"+5255{i:08d}" for i in range(recipients)]
    if not personalised:
        return {"account": ACCOUNT[vendor], "text": "Aviso", "recipients": phones}
    people = [{"phone": p, "vars": {"name": f"N{i}", "code": f"{i:06d}"}} for i, p in enumerate(phones)]
    return {"account": ACCOUNT[vendor], "text": PERSONAL, "recipients": people}


def bare_loop(config: AccountConfig, job: dict[str, object]) -> float:
    """Post, one after the other with a plain httpx client, the requests the adapter builds; return seconds."""
    adapter = adapter_for(config.vendor)
    size = batch_size(config)
    recipients = []
    for i, entry in enumerate(job["recipients"]):  # type: ignore[attr-defined]
        phone, values = (entry, {}) if isinstance(entry, str) else (entry["phone"], entry["vars"])
        recipients.append(vendor_base.Recipient(i + 1, phone, render(str(job["text"]), values), values))
    requests = []
    for start in range(0, len(recipients), size):
        outgoing = vendor_base.Outgoing(recipients[start : start + size], {})
        requests += [r.request for r in adapter.build_send(config.account, outgoing)]
    with httpx.Client() as client:
        started = time.perf_counter()
        for request in requests:
            client.send(request).raise_for_status()
        return time.perf_counter() - started


def run_once(
    admin_url: str, vendor: str, recipients: int, latency: float, personalised: bool
) -> tuple[float, float]:
    """Ingest, release and send one job; return the seconds the sending took and the bare loop's."""
    world = build_world(StillClock())
    for sim in world.sims.values():
        sim.faults.latency = latency
    try:
        with pg_database(admin_url) as url:
            engine = make_engine(url)
            accounts = parse_accounts(tomllib.loads(world.accounts_toml()), SECRETS)
            settings = Settings(DATABASE_URL=url)
            ctx = Services(engine, accounts, MemoryLimiter(), Transport(), settings, StillClock())
            job = job_of(vendor, recipients, personalised)
            ingest_job(engine, accounts, job, NOW)
            batches: list[int] = []
            started = time.perf_counter()
            release_due(engine, settings, NOW, lambda batch, _priority: batches.append(batch))
            while batches:
                batch = batches.pop(0)
                report = send_batch(ctx, batch)
                if report.again_in is not None:
                    batches.append(batch)
                elif not batches:
                    release_due(engine, settings, NOW, lambda b, _p: batches.append(b))
            elapsed = time.perf_counter() - started
            with engine.connect() as conn:
                sent = conn.execute(select(func.count()).where(Message.state == "sent")).scalar_one()
            engine.dispose()
            if sent != recipients:
                raise SystemExit(f"only {sent} of {recipients} sent")
            return elapsed, bare_loop(accounts[ACCOUNT[vendor]], job)
    finally:
        world.stop()


def main() -> None:
    """Run the send phase and its ceiling ``--repeat`` times and print min and median."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vendor", choices=sorted(ACCOUNT), default="smsclouds")
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the simulator takes to answer")
    parser.add_argument("--personalised", action="store_true", help=f"one text per recipient: {PERSONAL!r}")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    runs = [
        run_once(args.admin_url, args.vendor, args.recipients, args.latency, args.personalised)
        for _ in range(args.repeat)
    ]
    n = args.recipients
    ours, bare = [r[0] for r in runs], [r[1] for r in runs]
    ratios = [b / o for o, b in runs]
    print(
        f"{args.vendor}, {n} recipients, latency {args.latency} s{', personalised' if args.personalised else ''}: "
        f"send phase min {min(ours):.2f} s ({n / min(ours):,.0f}/s), median {statistics.median(ours):.2f} s "
        f"({n / statistics.median(ours):,.0f}/s); bare loop median {statistics.median(bare):.2f} s; "
        f"ratio min {min(ratios):.2f}, median {statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
