"""``dispatcher demo``: the whole product on a fresh machine, in about a minute.

With no ``DATABASE_URL`` or ``REDIS_URL`` set it runs the embedded default: a SQLite file, an
in-process broker, a real Celery worker and beat in this process, the five simulated vendors and
the webhook app on loopback. It moves the dispatcher's clock (not the machine's) to show a
Colombian job arriving after 21:00 wait for 08:00.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from dispatcher.sandbox.world import SampleJob
    from dispatcher.windows import Window

#: recipients of the job that arrives after its account's window has closed
LATE = 50


@dataclass(frozen=True)
class Story:
    """Who plays which part, picked by the accounts' declared facts and never by name."""

    jobs: dict[str, dict[str, Any]]  #: account key -> its sample job
    windowed: str  #: the first account whose window is not ``always``: the headline job
    sample: SampleJob  #: its sample
    window: Window  #: its sending window
    phone: str  #: a phone of its job (a window may read the destination's zone)

    @property
    def zone(self) -> ZoneInfo:
        return self.window.zone_for(self.phone)

    def hours(self) -> str:
        """The window's hours as a person reads them: ``co-crc 08:00-21:00 Bogota``."""
        end = self.window.end.strftime("%H:%M") if self.window.end else "24:00"
        return f"{self.window.name} {self.window.start:%H:%M}-{end} {_place(self.zone)}"


def run_demo(recipients: int | None = None) -> int:
    """Run the demo; return 0 when no vendor limit was broken and no phone was sent twice.

    ``recipients`` sizes the headline job, the one on the account with a sending window (its
    sample's size by default).
    """
    workdir = Path(tempfile.mkdtemp(prefix="smsdispatch-demo-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'demo.db'}")
    os.environ.setdefault("REDIS_URL", "memory://localhost/")
    os.environ.update(
        DISPATCHER_CLOCK_FILE=str(workdir / "clock"),
        DISPATCHER_ACCOUNTS=str(workdir / "accounts.toml"),
        DISPATCHER_SWEEP_SECONDS="1",
        DISPATCHER_POLL_SECONDS="2",
    )
    from dispatcher.clock import FileClock
    from dispatcher.config import load_accounts
    from dispatcher.db import migrate
    from dispatcher.sandbox.messages import Progress
    from dispatcher.sandbox.world import SECRETS, build_world

    os.environ.update(SECRETS)
    clock = FileClock(workdir / "clock")
    hook_port = _free_port()
    progress = Progress(to_sent=2, to_final=5, delivered_rate=0.9, reply_rate=0.5, stop_rate=0.3, reply_after=6)
    world = build_world(clock, progress, webhook_url=f"http://127.0.0.1:{hook_port}")
    (workdir / "accounts.toml").write_text(world.accounts_toml())
    accounts = load_accounts(workdir / "accounts.toml")
    story = _cast(world, accounts, recipients)
    # The story starts at 10:00 where the window is read (or its next opening, were that shut).
    today = datetime.now(story.zone).date()
    clock.set(story.window.next_opening(datetime.combine(today, clock_time(10), story.zone), story.phone))
    # The headline job's vendor hiccups on its first request: retried, part of the story.
    world.sims[accounts[story.windowed].vendor].script({"status": 500})
    migrate(os.environ["DATABASE_URL"])
    # The demo shows its own progress; a retried vendor error is part of the story, not noise.
    logging.getLogger("dispatcher").setLevel(logging.ERROR)
    print(f"smsdispatch demo: database {os.environ['DATABASE_URL']}, broker {os.environ['REDIS_URL']}")
    print(
        f"{len(world.sims)} vendor simulators on http://127.0.0.1:{world.server.port}, webhooks on :{hook_port}\n"
    )
    try:
        return _run(workdir, _StoryClock(clock, story.zone), world, hook_port, story)
    finally:
        world.stop()


def _cast(world: Any, accounts: dict[str, Any], recipients: int | None) -> Story:
    """Each customer's sample job; the first account with a sending window heads the story."""
    from dispatcher.windows import ALWAYS

    samples = dict(world.sample_jobs())
    windowed = next((key for key in samples if accounts[key].policy.window != ALWAYS), None)
    if windowed is None:
        raise SystemExit("the demo needs a sandbox account with a sending window; none has one")
    jobs = {key: sample.job(key, recipients if key == windowed else None) for key, sample in samples.items()}
    phone = jobs[windowed]["recipients"][0]["phone"]
    return Story(jobs, windowed, samples[windowed], accounts[windowed].policy.window, phone)


def _run(workdir: Path, clock: _StoryClock, world: Any, hook_port: int, story: Story) -> int:
    from tasks import submit
    from tasks.embedded import embedded_worker
    from tasks.runtime import runtime

    rt = runtime()
    hooks = _serve_webhooks(rt, hook_port)
    ids: dict[str, str] = {}
    try:
        with embedded_worker(workdir / "beat-schedule", concurrency=4):
            total = sum(len(job["recipients"]) for job in story.jobs.values())
            _say(clock, f"{len(story.jobs)} jobs, one per vendor ({total} recipients)")
            ids = {account: _drop(submit, job) for account, job in story.jobs.items()}
            _watch(rt.engine, clock, ids, done=_all_handed_over)
            _say(clock, "all handed to the vendors; waiting for delivery reports and replies")
            _watch(rt.engine, clock, ids, done=lambda c: False, limit=12)
            ids.update(_late_job(rt.engine, clock, submit, story))
            _say(clock, "waiting for the last pushes and polls")
            deadline = time.monotonic() + 60
            while not world.pushes.drained() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2 * float(os.environ["DISPATCHER_POLL_SECONDS"]) + 1)
    finally:
        hooks.should_exit = True
    _summary(rt.engine, rt.accounts, ids, world)
    return 0 if not world.ledger.violations and not world.ledger.duplicates() else 1


def _late_job(engine: Any, clock: _StoryClock, submit: Any, story: Story) -> dict[str, str]:
    """A job arriving after the window closed waits in the database until it opens."""
    clock.set(_after_closing(story, clock.now()))
    _say(clock, f"a job of {LATE} for {story.windowed} arrives after its window's hours ({story.hours()})")
    # New phones, numbered after the headline job's: no phone is sent twice.
    headline = len(story.jobs[story.windowed]["recipients"])
    name = f"{story.windowed} late"
    late = {name: _drop(submit, story.sample.job(story.windowed, LATE, first=headline))}
    _watch(engine, clock, late, done=lambda c: c[name].get("pending") == LATE, settle=3)
    opening = story.window.next_opening(clock.now(), story.phone)
    opens = opening.astimezone(clock.zone)
    _say(clock, f"it waits in the database; nothing was sent. Moving the clock to {opens:%H:%M}...")
    clock.set(opening)
    _watch(engine, clock, late, done=lambda c: c[name].get("sent") == LATE)
    return late


def _after_closing(story: Story, now: datetime) -> datetime:
    """Half an hour after the window next closes (the moment it closes, were it open again by then)."""
    step = timedelta(minutes=15)
    for n in range(1, 8 * 24 * 4):
        moment = now + n * step
        if not story.window.is_open(moment, story.phone):
            later = moment + timedelta(minutes=30)
            return moment if story.window.is_open(later, story.phone) else later
    raise SystemExit(f"window {story.window.name!r} never closes: the demo cannot show a job waiting")


@dataclass(frozen=True)
class _StoryClock:
    """The dispatcher's clock, told in the zone of the headline account's window."""

    clock: Any
    zone: ZoneInfo

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.zone)

    def set(self, when: datetime) -> None:
        self.clock.set(when)

    def local(self) -> str:
        return f"{self.now():%a %H:%M} {_place(self.zone)}"


def _drop(submit: Any, job: dict[str, Any]) -> str:
    """Put a job on the queue; Flower shows a summary, not the phone list."""
    summary = f"({{'account': {job['account']!r}, 'recipients': {len(job['recipients'])}}},)"
    return submit.apply_async((job,), argsrepr=summary).id


def _all_handed_over(counts: dict[str, dict[str, int]]) -> bool:
    # A job with no counts yet is still on the queue, not handed over.
    return all(c and c.get("pending", 0) + c.get("sending", 0) == 0 for c in counts.values())


def _serve_webhooks(rt: Any, port: int) -> Any:
    import uvicorn

    from dispatcher.webhooks import make_app

    config = uvicorn.Config(make_app(rt.engine, rt.accounts, rt.clock), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="webhooks", daemon=True).start()
    return server


def _counts(engine: Any, job_id: str) -> dict[str, int]:
    from dispatcher.status import job_status

    status = job_status(engine, job_id)
    return {k: v for k, v in (status or {}).get("counts", {}).items() if v}


def _watch(
    engine: Any, clock: _StoryClock, jobs: dict[str, str], done: Any, settle: float = 0.0, limit: float = 120
) -> None:
    started, last = time.monotonic(), ""
    while time.monotonic() - started < limit:
        counts = {name: _counts(engine, job) for name, job in jobs.items()}
        line = " | ".join(f"{n}: " + ", ".join(f"{k} {v}" for k, v in c.items()) for n, c in counts.items() if c)
        if line != last and line:
            print(f"  {clock.local()}  {line}", flush=True)
            last = line
        if done(counts) and time.monotonic() - started >= settle:
            return
        time.sleep(0.5)
    if done({name: _counts(engine, job) for name, job in jobs.items()}) is False and limit >= 60:
        raise SystemExit("the demo did not finish in time")


def _summary(engine: Any, accounts: dict[str, Any], ids: dict[str, str], world: Any) -> None:
    from sqlalchemy import func, select

    from dispatcher.models import InboundMessage, Message, OptOut

    print("\naccount        vendor      sent  delivered  failed  waiting  rejected  replies  opt-outs  unknown")
    with engine.connect() as conn:
        for account in sorted({name.split()[0] for name in ids}):
            job_ids = [job for name, job in ids.items() if name.split()[0] == account]
            states = dict(
                conn.execute(
                    select(Message.state, func.count()).where(Message.job_id.in_(job_ids)).group_by(Message.state)
                ).all()
            )
            replies = conn.execute(select(func.count()).where(InboundMessage.account == account)).scalar_one()
            opted = conn.execute(select(func.count()).where(OptOut.account == account)).scalar_one()
            vendor = accounts[account].vendor
            # Each column is one state: a message the vendor refused is failed, never counted as sent.
            sent, delivered, failed = (states.get(s, 0) for s in ("sent", "delivered", "failed"))
            waiting = states.get("pending", 0) + states.get("sending", 0)
            print(
                f"{account:<14} {vendor:<10} {sent:>5}  {delivered:>9}  {failed:>6}"
                f"  {waiting:>7}  {states.get('rejected', 0):>8}  {replies:>7}  {opted:>8}"
                f"  {states.get('unknown', 0):>7}"
            )
    silent = [vendor for vendor, sim in world.sims.items() if not sim.handset_receipts]
    if silent:
        print(f"\n({' and '.join(silent)} give no handset receipts: their messages stay 'sent')")
    ledger = world.ledger
    print(
        f"vendor requests: {len(ledger.requests)}; limit violations: {len(ledger.violations)}; "
        f"phones sent twice: {len(ledger.duplicates())}"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _place(zone: ZoneInfo) -> str:
    """A zone as a person names it: ``America/Bogota`` is ``Bogota``."""
    return zone.key.rsplit("/", 1)[-1].replace("_", " ")


def _say(clock: _StoryClock, text: str) -> None:
    print(f"[{clock.local()}] {text}", flush=True)


if __name__ == "__main__":
    sys.exit(run_demo())
