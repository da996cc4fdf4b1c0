"""``dispatcher demo``: the whole product on a fresh machine, in about a minute.

With no ``DATABASE_URL`` or ``REDIS_URL`` set it runs the embedded default: a SQLite file, an
in-process broker, a real Celery worker and beat in this process, and the vendor sandbox on
loopback. It moves the dispatcher's clock (not the machine's) to show a Colombian job arriving
after 21:00 wait for 08:00.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BOGOTA = ZoneInfo("America/Bogota")
TOKEN = "demo-token-not-secret"  # noqa: S105 - the sandbox's own demo customer


def run_demo(recipients: int = 2500) -> int:
    """Run the demo; return 0 when every job ended as expected."""
    workdir = Path(tempfile.mkdtemp(prefix="smsdispatch-demo-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'demo.db'}")
    os.environ.setdefault("REDIS_URL", "memory://localhost/")
    os.environ["DISPATCHER_CLOCK_FILE"] = str(workdir / "clock")
    os.environ["DISPATCHER_ACCOUNTS"] = str(workdir / "accounts.toml")
    os.environ["DISPATCHER_SWEEP_SECONDS"] = "1"
    os.environ["DEMO_ITCLOUD_TOKEN"] = TOKEN

    from dispatcher.clock import FileClock
    from dispatcher.db import migrate
    from dispatcher.sandbox.core import Ledger, SandboxServer
    from dispatcher.sandbox.itcloud import ItCloudSim

    clock = FileClock(workdir / "clock")
    today = datetime.now(BOGOTA).date()
    clock.set(datetime(today.year, today.month, today.day, 10, 0, tzinfo=BOGOTA))
    ledger = Ledger()
    sim = ItCloudSim(ledger, clock)
    sim.add_user("demo@example.com", TOKEN)
    sim.script({"status": 500})  # the first request meets a vendor hiccup, and is retried
    server = SandboxServer({"itcloud": sim}).start()
    (workdir / "accounts.toml").write_text(
        f'[accounts.co-demo]\nvendor = "itcloud"\nbase_url = "{server.url("itcloud")}"\n'
        f'user = "demo@example.com"\ntoken = "${{DEMO_ITCLOUD_TOKEN}}"\nretry_base = 1.0\n'
    )
    migrate(os.environ["DATABASE_URL"])
    # The demo shows its own progress; a retried vendor error is part of the story, not noise.
    logging.getLogger("dispatcher").setLevel(logging.ERROR)
    print(f"smsdispatch demo: database {os.environ['DATABASE_URL']}, broker {os.environ['REDIS_URL']}")
    print(f"vendor sandbox on {server.url('itcloud')}\n")
    try:
        return _run(workdir, clock, ledger, recipients)
    finally:
        server.stop()


def _run(workdir: Path, clock: Any, ledger: Any, count: int) -> int:
    from tasks import submit
    from tasks.embedded import embedded_worker
    from tasks.runtime import runtime

    # One text for all: IT Cloud takes one SMSText per request, so personalised texts would
    # go one number per request, 2 s apart.
    numbers = [{"phone": f"+57300{i:07d}", "vars": {"shop": "Tienda Sol"}} for i in range(count)]
    with embedded_worker(workdir / "beat-schedule"):
        engine = runtime().engine
        _say(clock, f"job A: {count} Colombian recipients, submitted on queue 'jobs'")
        job_a = submit.delay(
            {"account": "co-demo", "text": "{shop}: su pedido va en camino", "recipients": numbers}
        ).id
        _watch(engine, clock, {"A": job_a}, done=lambda c: c["A"].get("sent", 0) == count)
        clock.set(clock.now().astimezone(BOGOTA).replace(hour=21, minute=30))
        _say(clock, "job B: 50 recipients arrive after CRC hours (08:00-21:00 Bogota)")
        evening = [{"phone": f"+57310{i:07d}"} for i in range(50)]
        job_b = submit.delay({"account": "co-demo", "text": "Recordatorio de cita", "recipients": evening}).id
        _watch(engine, clock, {"B": job_b}, done=lambda c: c["B"].get("pending", 0) == 50, settle=3.0)
        _say(clock, "job B waits in the database; nothing was sent. Moving the clock to 08:00...")
        morning = clock.now().astimezone(BOGOTA) + timedelta(days=1)
        clock.set(morning.replace(hour=8, minute=0, second=0))
        _watch(engine, clock, {"B": job_b}, done=lambda c: c["B"].get("sent", 0) == 50)
        _summary(engine, {"A": job_a, "B": job_b}, ledger)
    ok = not ledger.violations and not ledger.duplicates()
    return 0 if ok else 1


def _counts(engine: Any, job_id: str) -> dict[str, int]:
    from dispatcher.status import job_status

    status = job_status(engine, job_id)
    return {k: v for k, v in (status or {}).get("counts", {}).items() if v}


def _watch(
    engine: Any, clock: Any, jobs: dict[str, str], done: Any, settle: float = 0.0, limit: float = 120
) -> None:
    started, last = time.monotonic(), ""
    while time.monotonic() - started < limit:
        counts = {name: _counts(engine, job) for name, job in jobs.items()}
        line = "  ".join(f"job {n}: " + ", ".join(f"{k} {v}" for k, v in c.items()) for n, c in counts.items())
        if line != last and any(counts.values()):
            print(f"  {_local(clock)}  {line}", flush=True)
            last = line
        if done(counts) and time.monotonic() - started >= settle:
            return
        time.sleep(0.5)
    raise SystemExit("the demo did not finish in time")


def _summary(engine: Any, jobs: dict[str, str], ledger: Any) -> None:
    print("\naccount   vendor   job  sent  failed  waiting  rejected  unknown")
    for name, job in jobs.items():
        c = _counts(engine, job)
        print(
            f"co-demo   itcloud  {name:<3}  {c.get('sent', 0):>4}  {c.get('failed', 0):>6}  "
            f"{c.get('pending', 0):>7}  {c.get('rejected', 0):>8}  {c.get('unknown', 0):>7}"
        )
    requests = ledger.of("itcloud", "/api/sendsms")
    print(
        f"\nvendor requests: {len(requests)} (the first met an HTTP 500 and was retried); "
        f"pace or size violations: {len(ledger.violations)}; "
        f"phones sent twice: {len(ledger.duplicates())}"
    )


def _local(clock: Any) -> str:
    return clock.now().astimezone(BOGOTA).strftime("%a %H:%M Bogota")


def _say(clock: Any, text: str) -> None:
    print(f"[{_local(clock)}] {text}")


if __name__ == "__main__":
    sys.exit(run_demo())
