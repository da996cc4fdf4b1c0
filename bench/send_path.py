"""Time the send path in one process: ingest, release and send a job through a simulated vendor.

    python bench/send_path.py [--vendor smsclouds|smsclick] [--recipients N] [--repeat R] [--personalised]

A fresh PostgreSQL database per run, the vendor's simulator on loopback answering at once (so
the project, not the vendor, is what is timed), one process sending batch after batch as a send
task would. Prints seconds and messages per second for the send phase; asserts nothing.

``--personalised`` runs, in each repeat, the same job twice back to back: once with one shared
text, once with the template ``Hola {name}, su codigo es {code}`` and a name and code per
recipient; it prints both and the ratio personalised / shared (issue 9's B7 asks >= 0.5).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from dispatcher.config import Settings, parse_accounts
from dispatcher.db import make_engine, migrate
from dispatcher.jobs import ingest_job
from dispatcher.models import Message
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.release import release_due
from dispatcher.sandbox.world import SECRETS, build_world
from dispatcher.sending import send_batch
from dispatcher.services import Services
from dispatcher.transport import Transport

#: 10:00 in Mexico City, inside every default window
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
ACCOUNT = {"smsclouds": "mx-smsclouds", "smsclick": "mx-smsclick"}
TEMPLATE = "Hola {name}, su codigo es {code}"


class StillClock:
    """The dispatcher's clock, standing at NOW."""

    def now(self) -> datetime:
        return NOW


def job(vendor: str, recipients: int, personalised: bool) -> dict[str, object]:
    """The job: one shared text, or the template with each recipient's name and code."""
    phones = [f"+5255{i:08d}" for i in range(recipients)]
    if not personalised:
        return {"account": ACCOUNT[vendor], "text": "Aviso", "recipients": phones}
    people = [
        {"phone": p, "vars": {"name": f"Cliente {i}", "code": f"{i * 7919 % 999983:06d}"}}
        for i, p in enumerate(phones)
    ]
    return {"account": ACCOUNT[vendor], "text": TEMPLATE, "recipients": people}


def run_once(admin_url: str, vendor: str, recipients: int, personalised: bool = False) -> float:
    """Ingest, release and send one job; return the seconds the sending took."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"smsd_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    world = build_world(StillClock())
    try:
        migrate(url)
        engine = make_engine(url)
        accounts = parse_accounts(tomllib.loads(world.accounts_toml()), SECRETS)
        settings = Settings(DATABASE_URL=url)
        ctx = Services(engine, accounts, MemoryLimiter(), Transport(), settings, StillClock())
        ingest_job(engine, accounts, job(vendor, recipients, personalised), NOW)
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


def main() -> None:
    """Run the send phase ``--repeat`` times and print min and median."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vendor", choices=sorted(ACCOUNT), default="smsclouds")
    parser.add_argument("--recipients", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--personalised", action="store_true", help="also time a personalised template")
    args = parser.parse_args()
    if args.personalised:
        personalised_main(args)
        return
    times = [run_once(args.admin_url, args.vendor, args.recipients) for _ in range(args.repeat)]
    best, median = min(times), statistics.median(times)
    print(
        f"{args.vendor}, {args.recipients} recipients: send phase min {best:.2f} s "
        f"({args.recipients / best:,.0f}/s), median {median:.2f} s ({args.recipients / median:,.0f}/s)"
    )


def personalised_main(args: argparse.Namespace) -> None:
    """Shared text and personalised template back to back in each repeat; print both and the ratio."""
    pairs = []
    for _ in range(args.repeat):
        shared = run_once(args.admin_url, args.vendor, args.recipients)
        personal = run_once(args.admin_url, args.vendor, args.recipients, personalised=True)
        pairs.append((shared, personal))
        print(f"  shared {shared:.2f} s, personalised {personal:.2f} s, ratio {shared / personal:.3f}", flush=True)
    n = args.recipients
    for label, times in (("shared text", [s for s, _ in pairs]), ("personalised", [p for _, p in pairs])):
        best, median = min(times), statistics.median(times)
        print(
            f"{args.vendor}, {n} recipients, {label}: min {best:.2f} s ({n / best:,.0f}/s), "
            f"median {median:.2f} s ({n / median:,.0f}/s)"
        )
    ratios = [s / p for s, p in pairs]
    print(f"ratio personalised/shared (throughput): min {min(ratios):.3f}, median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
