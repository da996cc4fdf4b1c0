"""Never lost, never twice, with real processes: each scenario injects a fault into a running
stack (3,000 recipients, one job per vendor), waits until things settle, then asks the vendors'
ledger and the database: no recipient lost, no phone sent twice unless its row says ``unknown``,
``unknown`` only among the rows in flight at the fault, and the worker serves the next job.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest
import redis

from tests.faults.conftest import CONCURRENCY, POLICY
from tests.faults.report import Outcome, judge
from tests.faults.stack import OPTIONS, FaultStack, FlightRecorder, Submitted
from tests.workers import wait_for

# One process runs every scenario: they share the module's stack, which takes seconds to start.
pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.xdist_group("faults")]
#: times the pool processes are killed mid-request before the whole worker is
POOL_KILLS = 3
#: times Redis is restarted in its scenario
REDIS_RESTARTS = 2
#: seconds PostgreSQL refuses connections
PG_DOWN = 15.0
#: seconds a vendor takes to answer in the latency storm: past the accounts' read timeout
SLOW = POLICY["read_timeout"] + 0.5
#: worker restarts after which a crash loop is called one
CRASH_LOOP = 2


def run(
    stack: FaultStack,
    number: int,
    name: str,
    fault: str,
    inject: Callable[[Submitted], set[int] | None],
    give_up: Callable[[], bool] | None = None,
    notes: Callable[[], str] = str,
    first: Callable[[], Submitted] | None = None,
) -> Outcome:
    """Submit the workload (after ``first``'s jobs), inject the fault, settle, probe, judge."""
    restarts, moves = stack.restarts(), stack.clock_moves
    early = first() if first else Submitted()
    submitted = stack.submit_workload(number)
    submitted.jobs.update(early.jobs)
    submitted.phones.update(early.phones)
    started = time.monotonic()
    in_flight = inject(submitted)
    injected = time.monotonic()
    stack.settle(submitted, give_up=give_up)
    settled = time.monotonic()
    # In a crash loop the probe cannot be served; do not wait for it long.
    looping = stack.restarts() - restarts >= 2
    served = stack.serves_next_job(number, timeout=5.0 if looping else 45.0)
    print(
        f"\n{name}: fault {injected - started:.1f} s, settle {settled - injected:.1f} s, "
        f"probe {time.monotonic() - settled:.1f} s"
    )
    return judge(stack, name, fault, submitted, in_flight, restarts, moves, served, notes())


def promises_kept(outcome: Outcome, refused: int = 0) -> None:
    """The checks every scenario ends with; only a scenario that sends a bad job may see it refused."""
    table = outcome.table()
    assert outcome.lost == 0, table
    assert outcome.refused == refused, table
    assert outcome.sent_twice == 0, table
    assert outcome.unknown_outside == 0 and outcome.unknown <= outcome.unknown_bound, table
    assert outcome.next_job_served, table


def test_pool_processes_killed_mid_request_then_the_whole_worker(faults_stack: FaultStack) -> None:
    stack = faults_stack

    def kill(submitted: Submitted) -> set[int]:
        cut: set[int] = set()

        def new_claims() -> set[int]:
            # Rows a killed process claimed stay claimed: only others are a new request.
            return stack.in_flight() - cut

        for _ in range(POOL_KILLS):
            wait_for(new_claims, 30, "a new request in flight")
            with stack.lock:
                cut |= stack.in_flight()
                killed = set(stack.worker.children())
                for child in killed:
                    os.kill(child, signal.SIGKILL)
                cut |= stack.in_flight()
            wait_for(lambda k=killed: _fresh_pool(stack, k), 30, "new pool processes")
        # The whole worker goes once every job is stored: a job it had only reserved would wait
        # in the broker's unacknowledged set for the visibility timeout (an hour), not be lost.
        wait_for(lambda: len(stack.jobs_stored(submitted.jobs)) == len(submitted.jobs), 60, "every job stored")
        wait_for(new_claims, 30, "a new request in flight")
        with stack.lock:
            cut |= stack.in_flight()
            stack.worker.kill_all()
            cut |= stack.in_flight()
            stack.worker.start()  # a fresh worker, as the supervisor would start
        return cut

    outcome = run(
        stack,
        1,
        "worker killed",
        f"SIGKILL the pool {POOL_KILLS} times mid-request, then the whole worker; a fresh one started",
        kill,
    )
    # Only rows claimed at a kill (at most one request per pool process) may end unknown.
    promises_kept(outcome)


def _fresh_pool(stack: FaultStack, killed: set[int]) -> bool:
    children = set(stack.worker.children())
    return len(children) == CONCURRENCY and not children & killed


def _queued_jobs(stack: FaultStack) -> int:
    client = redis.Redis.from_url(stack.redis_server.url)
    try:
        keys = [k for k in client.scan_iter("jobs*") if client.type(k) == b"list"]
        return sum(client.llen(k) for k in keys)
    finally:
        client.close()


def test_redis_restarted_with_jobs_waiting_in_the_queue(faults_stack: FaultStack) -> None:
    stack = faults_stack
    seen: dict[str, int] = {}

    def restart(_: Submitted) -> set[int]:
        seen["waiting"] = _queued_jobs(stack)
        beat_restarts = stack.beat.restarts
        with FlightRecorder(stack) as recorder:
            # Twice: the worker's reconnect after a second restart is where it has been seen to exit.
            for _ in range(REDIS_RESTARTS):
                stack.redis_server.restart(down_for=2.0)
                time.sleep(4.0)  # the worker reconnects, or exits and is started again
        seen["beat"] = stack.beat.restarts - beat_restarts
        return recorder.seen

    outcome = run(
        stack,
        2,
        "redis restarted",
        f"Redis (append-only) stopped and started again mid-run, {REDIS_RESTARTS} times",
        restart,
        notes=lambda: (
            f"{seen.get('waiting')} jobs waiting in the queue at the restart; "
            f"beat restarted {seen.get('beat')} times"
        ),
    )
    assert seen["waiting"] > 0, "the restart came after every job had left the queue"
    promises_kept(outcome)


def _postgres_down(stack: FaultStack, ready: Callable[[], bool], what: str) -> set[int]:
    wait_for(ready, 60, what)
    with FlightRecorder(stack) as recorder:
        stack.proxy.refuse_for(PG_DOWN)
        time.sleep(PG_DOWN + 1.0)
    return recorder.seen


def test_postgres_refusing_connections_while_jobs_are_ingested(faults_stack: FaultStack) -> None:
    stack = faults_stack
    fault = f"PostgreSQL refuses connections {PG_DOWN:.0f} s while the jobs are being stored"
    outcome = run(
        stack,
        3,
        "postgres down at ingest",
        fault,
        lambda s: _postgres_down(stack, lambda: bool(stack.jobs_stored(s.jobs)), "ingest under way"),
    )
    assert outcome.worker_restarts == 0, outcome.table()
    promises_kept(outcome)


def test_postgres_refusing_connections_while_batches_are_sent(faults_stack: FaultStack) -> None:
    stack = faults_stack

    def sending(s: Submitted) -> bool:
        return len(stack.jobs_stored(s.jobs)) == len(s.jobs) and stack.states(s.jobs).get("sent", 0) > 0

    outcome = run(
        stack,
        4,
        "postgres down at send",
        f"PostgreSQL refuses connections {PG_DOWN:.0f} s while batches are being sent",
        lambda s: _postgres_down(stack, lambda: sending(s), "sending under way"),
    )
    assert outcome.worker_restarts == 0, outcome.table()
    promises_kept(outcome)


def _storm(stack: FaultStack, seen: dict[str, int], phase: float = 4.0) -> None:
    sims = stack.world.sims.values()
    wait_for(stack.in_flight, 30, "sending under way")
    seen["before"] = len(stack.world.ledger.requests)
    for sim in sims:
        sim.faults.error_rate = 0.3
    time.sleep(phase)
    for sim in sims:
        sim.faults.error_rate = 0.0
    stack.world.sims["itcloud"].faults.maintenance = True
    time.sleep(phase)
    stack.world.sims["itcloud"].faults.maintenance = False
    for sim in sims:
        sim.faults.malformed_rate = 0.3
    time.sleep(phase)
    for sim in sims:
        sim.faults.malformed_rate = 0.0
    seen["during"] = len(stack.world.ledger.requests) - seen["before"]


def test_vendor_errors_maintenance_and_html_pages(faults_stack: FaultStack) -> None:
    stack = faults_stack
    seen: dict[str, int] = {}
    outcome = run(
        stack,
        5,
        "vendor storm",
        "30 % HTTP 500, then IT Cloud -6 (maintenance), then 30 % HTML error pages, 4 s each",
        lambda _: _storm(stack, seen),
        notes=lambda: f"{seen.get('during')} vendor requests during the storm",
    )
    promises_kept(outcome)


def test_vendor_latency_beyond_the_read_timeout(faults_stack: FaultStack) -> None:
    stack = faults_stack
    base = {key: sim.faults.latency for key, sim in stack.world.sims.items()}

    def slow(_: Submitted) -> set[int]:
        wait_for(stack.in_flight, 30, "sending under way")
        with FlightRecorder(stack) as recorder:
            for sim in stack.world.sims.values():
                sim.faults.latency = SLOW
            time.sleep(4.0)
            for key, sim in stack.world.sims.items():
                sim.faults.latency = base[key]
            time.sleep(SLOW + 0.5)  # the requests of the slow spell reach their read timeout
        return recorder.seen

    outcome = run(
        stack,
        6,
        "vendor latency",
        f"every vendor answers after {SLOW} s (read timeout {POLICY['read_timeout']} s) for 4 s",
        slow,
    )
    promises_kept(outcome)


def _nested(depth: int) -> dict:
    value: dict = {"name": "Ana"}
    for _ in range(depth):
        value = {"n": value}
    return value


def _forget_task(stack: FaultStack, task_id: str) -> None:
    """Take a message out of our Redis (queues and unacknowledged), so later work is not poisoned."""
    client = redis.Redis.from_url(stack.redis_server.url)
    try:
        for key in client.scan_iter("*"):
            kind = client.type(key)
            if kind == b"list":
                for item in client.lrange(key, 0, -1):
                    if task_id.encode() in item:
                        client.lrem(key, 0, item)
            elif kind == b"hash":
                for field, item in client.hgetall(key).items():
                    if task_id.encode() in item:
                        client.hdel(key, field)
                        client.zrem(key + b"_index", field)
    finally:
        client.close()


def test_a_poison_message_then_a_normal_job(faults_stack: FaultStack) -> None:
    stack = faults_stack
    restarts = stack.restarts()
    numbers = [f"+1281407{i:04d}" for i in range(10)]  # no other scenario's numbers
    recipients = [{"phone": numbers[0], "vars": _nested(500)}, *numbers[1:]]
    job = {"account": "us-voipcomms", "text": "Hola", "recipients": recipients, "options": OPTIONS["us-voipcomms"]}
    poison = Submitted()

    def submit_poison() -> Submitted:
        poison.jobs[stack.submit(job)] = len(recipients)
        poison.phones.update(numbers)
        return poison

    outcome = run(
        stack,
        7,
        "poison message",
        "a dispatcher.submit job with one recipient's vars nested 500 levels deep, then a normal job",
        lambda _: None,
        give_up=lambda: stack.restarts() - restarts >= CRASH_LOOP,
        first=submit_poison,
    )
    if outcome.worker_restarts:
        with stack.lock:
            stack.worker.kill_all()
            for task_id in poison.jobs:
                _forget_task(stack, task_id)
            stack.worker.start()
    assert outcome.worker_restarts == 0, outcome.table()
    # The poison job is stored rejected with the reason; everything else is sent
    assert any("nests more than" in reason for reason in outcome.refused_reasons), outcome.table()
    promises_kept(outcome, refused=len(recipients))
