"""The whole pipeline: real Celery workers (two nodes, three processes) and beat, real Redis,
real PostgreSQL, and the IT Cloud simulator on loopback. Jobs go in the way any producer drops
them: a Celery message on queue ``jobs``. Time is moved through the clock file, never slept.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from celery import Celery
from sqlalchemy import Engine, func, select

from dispatcher.clock import FileClock
from dispatcher.config import load_accounts
from dispatcher.models import Batch, InboundMessage, Job, Message, OptOut
from dispatcher.sandbox.core import Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from dispatcher.sandbox.messages import Progress
from dispatcher.sandbox.world import OGANGI_CODE, SECRETS, SMSCLICK_RULE, VOIP_NUMBER, build_world
from dispatcher.webhooks import make_app
from tests.conftest import BOGOTA_10AM, REDIS_URL
from tests.workers import accounts_env, free_port, itcloud_account, wait_for, worker_stack

# One process runs the module: its tests share one stack of two workers, beat and five vendors.
pytestmark = [pytest.mark.worker, pytest.mark.xdist_group("pipeline")]
USERS = ["main", "window", "retry", "down", "slow", "idem", "redeliver", "malformed"]


class Stack:
    """Handles on the running stack for the tests."""

    def __init__(
        self,
        engine: Engine,
        sim: ItCloudSim,
        ledger: Ledger,
        clock: FileClock,
        producer: Celery,
        down_port: int,
    ):
        self.engine, self.sim, self.ledger, self.clock = engine, sim, ledger, clock
        self.producer, self.down_port = producer, down_port

    def submit(self, job: Any, *args: Any) -> str:
        """Drop a job on the queue as any producer would; its task id is the job id."""
        return self.producer.send_task("dispatcher.submit", args=[job, *args], queue="jobs").id

    def requests_of(self, user: str) -> list:
        return [
            r for r in self.ledger.of("itcloud", "/api/sendsms") if r.params().get("user") == f"{user}@example.com"
        ]

    def states(self, job_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Message.state, func.count()).where(Message.job_id == job_id).group_by(Message.state)
            )
            return dict(rows.all())

    def job(self, job_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(Job).where(Job.id == job_id)).first()


def write_accounts(path: Path, base_url: str, down_url: str) -> None:
    tables = []
    for user in USERS:
        url = down_url if user == "down" else base_url
        extra = "read_timeout = 0.5\n" if user == "slow" else ""
        settings = f"retry_base = 0.2\nretry_max = 1.0\nmax_attempts = 30\n{extra}"
        tables.append(itcloud_account(f"co-{user}", url, f"{user}@example.com", settings=settings))
    path.write_text("\n".join(tables))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    clock = FileClock(tmp / "clock")
    clock.set(BOGOTA_10AM)
    hook_port = free_port()
    progress = Progress(to_sent=1, to_final=2, delivered_rate=0.8, reply_rate=0.5, stop_rate=0.5, reply_after=3)
    world = build_world(clock, progress, webhook_url=f"http://127.0.0.1:{hook_port}")
    ledger, sim = world.ledger, world.sims["itcloud"]
    for user in USERS:
        sim.add_customer(f"{user}@example.com", "tok-pipeline-1234")
    down_port = free_port()
    write_accounts(tmp / "accounts.toml", world.url("itcloud"), f"http://127.0.0.1:{down_port}/itcloud")
    with (tmp / "accounts.toml").open("a") as accounts:
        accounts.write("\n" + world.accounts_toml())
    env = {
        **accounts_env(tmp / "accounts.toml", clock),
        "DISPATCHER_POLL_SECONDS": "1",
        "ITCLOUD_TOKEN": "tok-pipeline-1234",
        **SECRETS,
    }
    try:
        with worker_stack(tmp, env) as running:
            # Two worker nodes (as on two hosts): one with 2 processes, one with 1.
            running.worker("pipeline-a", concurrency=2)
            running.worker("pipeline-b", name="worker-b", queues="send")
            running.beat("beat", "--loglevel=INFO")
            with webhooks(running.engine, load_accounts(tmp / "accounts.toml", running.env), clock, hook_port):
                for name in ("worker", "worker-b"):
                    running.ready(name, 30, f"{name}.log to start")
                stack = Stack(running.engine, sim, ledger, clock, Celery(broker=REDIS_URL), down_port)
                stack.world = world
                yield stack
    finally:
        world.stop()
        if os.environ.get("SMSD_SHOW_WORKER_LOG"):
            print((tmp / "worker.log").read_text()[-20000:])


@contextmanager
def webhooks(engine: Engine, accounts: Any, clock: FileClock, port: int) -> Iterator[None]:
    """The webhook app on ``port``, in a thread, while the block runs."""
    hooks = uvicorn.Server(
        uvicorn.Config(make_app(engine, accounts, clock), port=port, log_level="warning", lifespan="off")
    )
    threading.Thread(target=hooks.run, daemon=True).start()
    try:
        yield
    finally:
        hooks.should_exit = True


@pytest.fixture(autouse=True)
def ten_in_bogota(stack: Stack) -> Stack:
    stack.clock.set(BOGOTA_10AM)
    return stack


def recipients(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"phone": f"+57300{i:07d}", "vars": {"n": str(i)}} for i in range(start, start + count)]


def test_5000_recipients_go_in_five_paced_requests_each_sent_once(stack: Stack) -> None:
    # Given 5,000 Colombian recipients at 10:00 in Bogota
    job_id = stack.submit({"account": "co-main", "text": "Aviso", "recipients": recipients(5000)})
    # When the worker is done with them
    wait_for(lambda: stack.states(job_id).get("sent") == 5000, 90, "5000 sent")
    # Then five requests of at most 1000 numbers went out, at least 2 s apart, though three
    # worker processes on two nodes competed for them
    requests = stack.requests_of("main")
    assert len(requests) == 5
    assert all(len(r.params()["GSM"].split(",")) <= 1000 for r in requests)
    arrivals = sorted(r.at for r in requests)
    assert min(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) >= 2.0
    # And every recipient was sent once, with its acceptance id
    assert stack.ledger.violations == [] and stack.ledger.duplicates() == {}
    with stack.engine.connect() as conn:
        ids = conn.execute(select(Message.vendor_id).where(Message.job_id == job_id)).scalars().all()
    assert len(set(ids)) == 5000 and all(int(i) > 0 for i in ids)


def test_a_job_at_2130_in_bogota_waits_until_0800(stack: Stack) -> None:
    # Given it is 21:30 in Bogota
    evening = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
    stack.clock.set(evening)
    job_id = stack.submit({"account": "co-window", "text": "Buenas", "recipients": recipients(20, 10000)})
    wait_for(lambda: stack.states(job_id).get("pending") == 20, 30, "the job stored")
    # When several sweeps have passed
    time.sleep(2.0)
    # Then no request went out and the rows wait for 08:00
    assert stack.requests_of("window") == []
    opening = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    with stack.engine.connect() as conn:
        assert set(conn.execute(select(Message.not_before).where(Message.job_id == job_id)).scalars()) == {opening}
    # When the clock reaches 08:00
    stack.clock.set(opening + timedelta(seconds=1))
    # Then they are sent
    wait_for(lambda: stack.states(job_id).get("sent") == 20, 30, "sent at 08:00")
    assert len(stack.requests_of("window")) == 1


def test_500_then_maintenance_then_success_is_sent_once(stack: Stack) -> None:
    stack.sim.script({"status": 500}, {"body": "573000020000,-6"})
    job_id = stack.submit({"account": "co-retry", "text": "Hola", "recipients": recipients(1, 20000)})
    wait_for(lambda: stack.states(job_id).get("sent") == 1, 60, "sent after retries")
    assert len(stack.requests_of("retry")) == 3
    assert stack.ledger.duplicates() == {}


def test_a_connect_error_is_retried_until_the_vendor_is_back(stack: Stack) -> None:
    job_id = stack.submit({"account": "co-down", "text": "Hola", "recipients": recipients(2, 30000)})

    def retried() -> bool:
        with stack.engine.connect() as conn:
            rows = conn.execute(
                select(Message.state, Message.attempts, Message.reason).where(Message.job_id == job_id)
            ).all()
        # The request never left: both rows wait again, no attempt spent (read at one moment, as
        # the worker claims them again within a second).
        return len(rows) == 2 and all(
            (r.state, r.attempts) == ("pending", 0) and "ConnectError" in (r.reason or "") for r in rows
        )

    wait_for(retried, 30, "a connect error recorded, both rows pending")
    back = SandboxServer({"itcloud": stack.sim}, port=stack.down_port).start()
    try:
        wait_for(lambda: stack.states(job_id).get("sent") == 2, 60, "sent once the vendor is back")
    finally:
        back.stop()
    assert len(stack.requests_of("down")) == 1


def test_a_read_timeout_leaves_unknown_and_no_second_request(stack: Stack) -> None:
    stack.sim.script({"delay": 1.5})
    job_id = stack.submit({"account": "co-slow", "text": "Hola", "recipients": recipients(3, 40000)})
    wait_for(lambda: stack.states(job_id).get("unknown") == 3, 30, "unknown after the read timeout")
    time.sleep(2.0)
    assert len(stack.requests_of("slow")) == 1


def test_the_same_idempotency_key_twice_sends_once(stack: Stack) -> None:
    job = {
        "account": "co-idem",
        "text": "Hola",
        "recipients": recipients(4, 50000),
        "idempotency_key": "crm-991",
    }
    first, second = stack.submit(job), stack.submit(job)
    # Two workers may take them at once: whichever stores the key first owns the job
    winner = wait_for(
        lambda: next((j for j in (first, second) if stack.states(j).get("sent") == 4), None), 30, "the job sent"
    )
    time.sleep(1.5)
    loser = second if winner == first else first
    assert stack.job(loser) is None  # the other submission answered with the stored job
    assert len(stack.requests_of("idem")) == 1


def test_a_redelivered_send_task_makes_no_second_request(stack: Stack) -> None:
    job_id = stack.submit({"account": "co-redeliver", "text": "Hola", "recipients": recipients(10, 60000)})

    def batch_id() -> int | None:
        with stack.engine.connect() as conn:
            return conn.execute(select(Batch.id).where(Batch.job_id == job_id)).scalar()

    batch = wait_for(batch_id, 30, "the batch stored")
    # When the same send task arrives again and again, racing the first and after it
    for _ in range(4):
        stack.producer.send_task("dispatcher.send_batch", args=[batch], queue="send")
    wait_for(lambda: stack.states(job_id).get("sent") == 10, 30, "sent")
    for _ in range(2):
        stack.producer.send_task("dispatcher.send_batch", args=[batch], queue="send")
    time.sleep(2.0)
    # Then one request was made, each phone sent once
    assert len(stack.requests_of("redeliver")) == 1
    assert stack.ledger.duplicates() == {}


TEN_MB = "x" * (10 * 1024 * 1024)


def test_malformed_jobs_are_stored_rejected_and_the_worker_keeps_serving(stack: Stack) -> None:
    bad_numbers = [{"phone": f"99{i}"} for i in range(10_000)]
    cases = {
        "missing fields": ({"text": "hola"}, "account: Field required"),
        "wrong types": (
            {"account": "co-malformed", "text": 5, "recipients": "all"},
            "text: Input should be a valid string",
        ),
        "unknown account": (
            {"account": "nobody", "text": "hola", "recipients": ["+573001234567"]},
            "unknown account",
        ),
        "10 MB text": (
            {"account": "co-malformed", "text": TEN_MB, "recipients": ["+573001234567"]},
            "at most 4096",
        ),
        "10,000 bad numbers": (
            {"account": "co-malformed", "text": "hola", "recipients": bad_numbers},
            "10000 rejected",
        ),
        "not an object": ("just a string", "a job must be a JSON object"),
    }
    ids = {label: stack.submit(job) for label, (job, _) in cases.items()}
    extra_args = stack.submit({"account": "co-malformed"}, "surplus argument")
    good = stack.submit({"account": "co-malformed", "text": "Hola", "recipients": recipients(2, 70000)})
    wait_for(lambda: stack.states(good).get("sent") == 2, 60, "the good job after the bad ones")
    for label, (_, reason) in cases.items():
        # A job's row is stored first, 'ingesting', while its recipients go in chunk by chunk
        job = wait_for(lambda i=ids[label]: (j := stack.job(i)) and j.state != "ingesting" and j, 30, label)
        assert job.state == "rejected", label
        assert reason in job.reason, label
    assert "exactly one argument" in wait_for(lambda: stack.job(extra_args), 30, "extra args").reason
    assert stack.states(ids["10,000 bad numbers"]) == {"rejected": 10_000}


VENDOR_JOBS = {
    # account: (recipients, options)
    "co-itcloud": (["+573205550001", "+573205550002", "+573205550003"], {"metodo_envio": "2via"}),
    "mx-smsclouds": (["+524498987282", "+524492799694", "+524491112233", "+447911123456"], {}),
    "mx-smsclick": (["+525526632636", "+525554542570", "+525511112222"], {"ID_REGLA_INTERACTIVA": SMSCLICK_RULE}),
    "us-voipcomms": (["+12812345678", "+12812345679", "+12812345680"], {"from": VOIP_NUMBER}),
    "ve-ogangi": (["+584142871901", "+584142871902", "+584142871903"], {"from": OGANGI_CODE}),
}


def expected_state(vendor: str, fate: Any) -> str:
    """What the dispatcher must end up saying of a message, given the simulator's drawn fate."""
    if vendor == "itcloud":
        return "sent"  # no delivery reports at all
    if vendor == "smsclouds":
        return "sent" if fate.delivered else "failed"  # its best news is 'sent'
    return "delivered" if fate.delivered else "failed"


@contextmanager
def every_delivered_two_way_message_answered(stack: Stack) -> Iterator[None]:
    """Replies certain, not drawn: with a few two-way messages per job a draw of none is likely."""
    before = {key: sim.store.progress for key, sim in stack.world.sims.items()}
    for sim in stack.world.sims.values():
        sim.store.progress = replace(sim.store.progress, reply_rate=1.0)
    try:
        yield
    finally:
        for key, sim in stack.world.sims.items():
            sim.store.progress = before[key]


def test_one_job_per_vendor_ends_with_every_recipient_in_its_state(stack: Stack) -> None:
    with every_delivered_two_way_message_answered(stack):
        one_job_per_vendor(stack)


def one_job_per_vendor(stack: Stack) -> None:
    # Given one job for each vendor, dropped on the queue
    jobs = {
        account: stack.submit(
            {"account": account, "text": "Prueba de envio", "recipients": phones, "options": options}
        )
        for account, (phones, options) in VENDOR_JOBS.items()
    }

    def mismatches() -> list[str]:
        wrong = []
        with stack.engine.connect() as conn:
            for account, job_id in jobs.items():
                vendor = account.split("-", 1)[1]
                rows = conn.execute(select(Message).where(Message.job_id == job_id)).all()
                for row in rows:
                    fate = stack.world.sims[vendor].store.get(row.vendor_id) if row.vendor_id else None
                    want = (
                        "rejected"
                        if row.address == "+447911123456"
                        else expected_state(vendor, fate)
                        if fate
                        else "?"
                    )
                    if row.state != want:
                        wrong.append(f"{account} {row.address}: {row.state}, expected {want}")
                if not rows:
                    wrong.append(f"{account}: not stored yet")
        return wrong

    # When the worker has sent them and beat's polls and the vendors' pushes have come back
    try:
        wait_for(lambda: not mismatches(), 60, "every message in its final state")
    except AssertionError:
        raise AssertionError(mismatches()) from None

    # Then every reply the simulators drew was stored once, and every stop word opted its phone out
    def replies_expected() -> tuple[int, int]:
        fates = [
            stack.world.sims[account.split("-", 1)[1]].store.get(vendor_id)
            for account in jobs
            for vendor_id in _vendor_ids(stack, jobs[account])
        ]
        drawn = [f for f in fates if f and f.reply]
        return len(drawn), len({f.phone for f in drawn if f.reply.upper() in ("SALIR", "STOP", "BAJA")})

    def replies_stored() -> tuple[int, int]:
        with stack.engine.connect() as conn:
            accounts = list(jobs)
            replies = conn.execute(select(func.count()).where(InboundMessage.account.in_(accounts))).scalar_one()
            opted = conn.execute(select(func.count()).where(OptOut.account.in_(accounts))).scalar_one()
        return replies, opted

    wait_for(lambda: replies_stored() == replies_expected(), 60, "the replies and opt-outs")
    assert replies_expected()[0] > 0
    assert stack.ledger.duplicates() == {}
    assert stack.ledger.violations == []


def _vendor_ids(stack: Stack, job_id: str) -> list[str]:
    with stack.engine.connect() as conn:
        return [v for v in conn.execute(select(Message.vendor_id).where(Message.job_id == job_id)).scalars() if v]


def test_a_salir_pushed_to_the_webhook_app_blocks_the_next_job_in_the_real_worker(stack: Stack) -> None:
    # Given the push URL (with its secret) the smsclouds customer's vendor calls
    url = stack.world.sims["smsclouds"].customers["demo@example.com"].callback_url
    sends = dict(stack.ledger.sends)
    # When a phone answers SALIR, pushed over HTTP to the webhook app
    fields = {"response": "SALIR", "cellphone": "4493334455", "message_id": "1", "date": "2026-11-23 10:00:00"}
    answer = httpx.get(url, params=fields, timeout=10)
    assert (answer.status_code, answer.text) == (200, "ok")
    # And a job to that phone and another is dropped on the queue for the worker
    job_id = stack.submit(
        {"account": "mx-smsclouds", "text": "Oferta", "recipients": ["+524493334455", "+524493334456"]}
    )

    def settled() -> bool:
        states = stack.states(job_id)
        return sum(states.values()) == 2 and not states.get("pending") and not states.get("sending")

    wait_for(settled, 60, "the job to be stored and sent")
    # Then the phone that said SALIR was refused at ingest, and the vendor never heard of it
    with stack.engine.connect() as conn:
        rows = dict(conn.execute(select(Message.address, Message.reason).where(Message.job_id == job_id)).all())
    assert rows["+524493334455"] == "opted_out"
    new = [phone for phone, n in stack.ledger.sends.items() if n > sends.get(phone, 0)]
    assert [phone[-10:] for phone in new] == ["4493334456"]
