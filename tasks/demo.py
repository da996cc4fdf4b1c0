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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BOGOTA = ZoneInfo("America/Bogota")


def run_demo(recipients: int = 2500) -> int:
    """Run the demo; return 0 when no vendor limit was broken and no phone was sent twice."""
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
    from dispatcher.db import migrate
    from dispatcher.sandbox.core import Progress
    from dispatcher.sandbox.world import SECRETS, build_world

    os.environ.update(SECRETS)
    clock = FileClock(workdir / "clock")
    today = datetime.now(BOGOTA).date()
    clock.set(datetime(today.year, today.month, today.day, 10, 0, tzinfo=BOGOTA))
    hook_port = _free_port()
    progress = Progress(to_sent=2, to_final=5, delivered_rate=0.9, reply_rate=0.5, stop_rate=0.3, reply_after=6)
    world = build_world(clock, progress, webhook_url=f"http://127.0.0.1:{hook_port}")
    world.sims["itcloud"].script({"status": 500})  # a vendor hiccup on the first request, retried
    (workdir / "accounts.toml").write_text(world.accounts_toml())
    migrate(os.environ["DATABASE_URL"])
    # The demo shows its own progress; a retried vendor error is part of the story, not noise.
    logging.getLogger("dispatcher").setLevel(logging.ERROR)
    print(f"smsdispatch demo: database {os.environ['DATABASE_URL']}, broker {os.environ['REDIS_URL']}")
    print(f"five vendor simulators on http://127.0.0.1:{world.server.port}, webhooks on :{hook_port}\n")
    try:
        return _run(workdir, clock, world, hook_port, recipients)
    finally:
        world.stop()


def _run(workdir: Path, clock: Any, world: Any, hook_port: int, count: int) -> int:
    from dispatcher.sandbox.world import OGANGI_CODE, SMSCLICK_RULE, VOIP_NUMBER
    from tasks import submit
    from tasks.embedded import embedded_worker
    from tasks.runtime import runtime

    rt = runtime()
    hooks = _serve_webhooks(rt, hook_port)
    jobs = {
        "co-itcloud": _job("co-itcloud", "+57300", count, "{shop}: su pedido va en camino", metodo_envio="2via"),
        "mx-smsclouds": _job("mx-smsclouds", "+52449", 300, "Su cita es manana a las 9"),
        "mx-smsclick": _job("mx-smsclick", "+52552", 40, "Responda SI", ID_REGLA_INTERACTIVA=SMSCLICK_RULE),
        "us-voipcomms": _job("us-voipcomms", "+12812", 200, "Your order has shipped", **{"from": VOIP_NUMBER}),
        "ve-ogangi": _job("ve-ogangi", "+58414", 40, "Su saldo fue actualizado", **{"from": OGANGI_CODE}),
    }  # fmt: skip
    ids: dict[str, str] = {}
    try:
        with embedded_worker(workdir / "beat-schedule", concurrency=4):
            _say(
                clock, f"five jobs, one per vendor ({sum(len(j['recipients']) for j in jobs.values())} recipients)"
            )
            ids = {account: _drop(submit, job) for account, job in jobs.items()}
            _watch(
                rt.engine,
                clock,
                ids,
                done=lambda c: all(v.get("pending", 0) + v.get("sending", 0) == 0 for v in c.values()),
            )
            _say(clock, "all handed to the vendors; waiting for delivery reports and replies")
            _watch(rt.engine, clock, ids, done=lambda c: False, limit=12)
            clock.set(clock.now().astimezone(BOGOTA).replace(hour=21, minute=30))
            _say(clock, "a Colombian job of 50 arrives after CRC hours (08:00-21:00 Bogota)")
            late = _job("co-itcloud", "+57310", 50, "Recordatorio de cita")
            ids["co-itcloud late"] = _drop(submit, late)
            late_only = {"co-itcloud late": ids["co-itcloud late"]}
            _watch(rt.engine, clock, late_only, done=lambda c: c["co-itcloud late"].get("pending") == 50, settle=3)
            _say(clock, "it waits in the database; nothing was sent. Moving the clock to 08:00...")
            morning = clock.now().astimezone(BOGOTA) + timedelta(days=1)
            clock.set(morning.replace(hour=8, minute=0, second=0))
            _watch(rt.engine, clock, late_only, done=lambda c: c["co-itcloud late"].get("sent") == 50)
            _say(clock, "waiting for the last pushes and polls")
            deadline = time.monotonic() + 60
            while not world.pushes.drained() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2 * float(os.environ["DISPATCHER_POLL_SECONDS"]) + 1)
    finally:
        hooks.should_exit = True
    _summary(rt.engine, ids, world.ledger)
    return 0 if not world.ledger.violations and not world.ledger.duplicates() else 1


def _drop(submit: Any, job: dict[str, Any]) -> str:
    """Put a job on the queue; Flower shows a summary, not the phone list."""
    summary = f"({{'account': {job['account']!r}, 'recipients': {len(job['recipients'])}}},)"
    return submit.apply_async((job,), argsrepr=summary).id


def _all_handed_over(counts: dict[str, dict[str, int]]) -> bool:
    return all(c.get("pending", 0) + c.get("sending", 0) == 0 for c in counts.values())


def _job(account: str, prefix: str, count: int, text: str, **options: Any) -> dict[str, Any]:
    # E.164 lengths of the demo's countries: +1 and 10 digits, or a 2-digit code and 10 digits.
    width = (12 if prefix.startswith("+1") else 13) - len(prefix)
    recipients = [{"phone": f"{prefix}{i:0{width}d}", "vars": {"shop": "Tienda Sol"}} for i in range(count)]
    return {"account": account, "text": text, "recipients": recipients, "options": options}


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
    engine: Any, clock: Any, jobs: dict[str, str], done: Any, settle: float = 0.0, limit: float = 120
) -> None:
    started, last = time.monotonic(), ""
    while time.monotonic() - started < limit:
        counts = {name: _counts(engine, job) for name, job in jobs.items()}
        line = " | ".join(f"{n}: " + ", ".join(f"{k} {v}" for k, v in c.items()) for n, c in counts.items() if c)
        if line != last and line:
            print(f"  {_local(clock)}  {line}", flush=True)
            last = line
        if done(counts) and time.monotonic() - started >= settle:
            return
        time.sleep(0.5)
    if done({name: _counts(engine, job) for name, job in jobs.items()}) is False and limit >= 60:
        raise SystemExit("the demo did not finish in time")


def _summary(engine: Any, ids: dict[str, str], ledger: Any) -> None:
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
            vendor = account.split("-", 1)[1]
            # Each column is one state: a message the vendor refused is failed, never counted as sent.
            sent, delivered, failed = (states.get(s, 0) for s in ("sent", "delivered", "failed"))
            waiting = states.get("pending", 0) + states.get("sending", 0)
            print(
                f"{account:<14} {vendor:<10} {sent:>5}  {delivered:>9}  {failed:>6}"
                f"  {waiting:>7}  {states.get('rejected', 0):>8}  {replies:>7}  {opted:>8}"
                f"  {states.get('unknown', 0):>7}"
            )
    print(
        "\n(itcloud and smsclouds give no handset receipts: their messages stay 'sent')\n"
        f"vendor requests: {len(ledger.requests)}; limit violations: {len(ledger.violations)}; "
        f"phones sent twice: {len(ledger.duplicates())}"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local(clock: Any) -> str:
    return clock.now().astimezone(BOGOTA).strftime("%a %H:%M Bogota")


def _say(clock: Any, text: str) -> None:
    print(f"[{_local(clock)}] {text}", flush=True)


if __name__ == "__main__":
    sys.exit(run_demo())
