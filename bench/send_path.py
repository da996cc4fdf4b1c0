"""Time the send path in one process: ingest, release and send a job through a simulated vendor.

    python bench/send_path.py [--vendor smsclouds|smsclick] [--recipients N] [--repeat R]
                              [--latency S] [--in-flight N]

A fresh PostgreSQL database per run, the vendor's simulator on loopback in a process of its
own, answering at once (so the project, not the vendor, is what is timed) or after
``--latency`` seconds, one process sending batch after batch as a send task would. Prints
seconds and messages per second for the send phase; asserts nothing.

With ``--vendor smsclick`` (one number a request) the account allows ``--in-flight`` requests at
once (its ``max_in_flight``), and each run also times the ceiling in the same run: a bare async
httpx loop posting the same requests to the same simulator with as many in flight, no database.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
import tomllib
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select, text

from dispatcher.config import AccountConfig, AccountPolicy, Settings, parse_accounts
from dispatcher.db import make_engine, migrate
from dispatcher.jobs import ingest_job
from dispatcher.models import Message
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.core import Faults
from dispatcher.sandbox.world import SECRETS, build_world
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport
from dispatcher.vendors import adapter_for
from dispatcher.vendors.base import Outgoing, Recipient

#: 10:00 in Mexico City, inside every default window
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
ACCOUNT = {"smsclouds": "mx-smsclouds", "smsclick": "mx-smsclick"}


class StillClock:
    """The dispatcher's clock, standing at NOW."""

    def now(self) -> datetime:
        return NOW


class VendorProcess:
    """The simulators in a process of their own, as a vendor is: our CPU is not theirs."""

    def __init__(self, vendor: str, latency: float):
        self.vendor = vendor
        mp = multiprocessing.get_context("fork")
        here, there = mp.Pipe()
        self.process = mp.Process(target=_serve, args=(there, vendor, latency), daemon=True)
        self.process.start()
        self.toml: str = here.recv()
        self.pipe = here

    def accounts(self, **policy: Any) -> dict[str, AccountConfig]:
        """The sandbox accounts, the benchmarked one with these policy fields."""
        data = tomllib.loads(self.toml)
        data["accounts"][ACCOUNT[self.vendor]].update(policy)
        return parse_accounts(data, SECRETS)

    def stop(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)


def _serve(pipe: Any, vendor: str, latency: float) -> None:
    world = build_world(StillClock(), faults={vendor: Faults(latency=latency)})
    pipe.send(world.accounts_toml())
    pipe.recv()
    world.stop()


def run_once(admin_url: str, vendor: str, recipients: int, latency: float, in_flight: int | None) -> float:
    """Ingest, release and send one job; return the seconds the sending took."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"smsd_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    world = VendorProcess(vendor, latency)
    policy = {"max_in_flight": in_flight} if in_flight else {}
    try:
        migrate(url)
        engine = make_engine(url)
        accounts = world.accounts(**policy)
        settings = Settings(DATABASE_URL=url)
        ctx = Services(engine, accounts, MemoryLimiter(), Transport(), settings, StillClock())
        phones = [f"+5255{i:08d}" for i in range(recipients)]
        ingest_job(engine, accounts, {"account": ACCOUNT[vendor], "text": "Aviso", "recipients": phones}, NOW)
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
        return elapsed
    finally:
        world.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bare_loop(vendor: str, recipients: int, latency: float, in_flight: int) -> float:
    """The ceiling: the same requests through a bare async httpx loop, ``in_flight`` at once; return seconds."""
    world = VendorProcess(vendor, latency)
    try:
        config = world.accounts()[ACCOUNT[vendor]]
        due = [Recipient(i, f"+5255{i:08d}", "Aviso") for i in range(recipients)]
        requests = [r.request for r in adapter_for(vendor).build_send(config.account, Outgoing(due))]

        async def post_all() -> float:
            places = asyncio.Semaphore(in_flight)
            limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
            async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

                async def post(request: httpx.Request) -> None:
                    async with places:
                        (await client.send(request)).raise_for_status()

                started = time.perf_counter()
                async with asyncio.TaskGroup() as group:
                    for request in requests:
                        group.create_task(post(request))
                return time.perf_counter() - started

        return asyncio.run(post_all())
    finally:
        world.stop()


def main() -> None:
    """Run the send phase ``--repeat`` times and print min and median (and the ceiling's, one number a request)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vendor", choices=sorted(ACCOUNT), default="smsclouds")
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the vendor takes to answer")
    parser.add_argument("--in-flight", type=int, default=None, help="the account's max_in_flight")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    ceiling = args.vendor == "smsclick"
    in_flight = args.in_flight or AccountPolicy.max_in_flight
    times, bare = [], []
    for _ in range(args.repeat):
        times.append(run_once(args.admin_url, args.vendor, args.recipients, args.latency, args.in_flight))
        if ceiling:
            bare.append(bare_loop(args.vendor, args.recipients, args.latency, in_flight))
    print(f"{args.vendor}, {args.recipients} recipients, vendor latency {args.latency} s: {_figures(times, args)}")
    if ceiling:
        print(f"bare async loop, {in_flight} in flight: {_figures(bare, args)}")
        ratios = sorted(b / t for t, b in zip(times, bare, strict=True))
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"ratio project/bare per run: {each} (median {statistics.median(ratios):.2f})")


def _figures(times: list[float], args: argparse.Namespace) -> str:
    best, median = min(times), statistics.median(times)
    return (
        f"send phase min {best:.2f} s ({args.recipients / best:,.0f}/s), "
        f"median {median:.2f} s ({args.recipients / median:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
