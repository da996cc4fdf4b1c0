"""Flower, proven: the real Flower against a real worker, Redis and PostgreSQL shows job ids, never a job.

A job goes in twice, as a foreign producer drops it (plain ``send_task``, no ``argsrepr``: Celery
then writes the whole job into the message's ``argsrepr`` header) and through the project's own
door (``tasks.producer.queue_job``). Flower's HTTP API must list the job's tasks by name and
show no phone, text, variable or secret; neither may any task event on the broker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from sqlalchemy import select

from dispatcher.models import Batch
from tasks.app import app
from tasks.flower import job_summary
from tests.conftest import REDIS_URL
from tests.workers import OPS_TOKEN as TOKEN
from tests.workers import Stack, free_port, itcloud_stack, start, stop, wait_for

FLOWER_AUTH = ("ops", "flower-pw-5521")
#: what the jobs carry that Flower must never show, in every spelling a repr could take
PHONES = ["+573001112233", "+573004445566", "+573007778899"]
TEXT = "Clave privada para {name}"
NAMES = ["Ximena", "Wilfredo", "Zuleima"]


def forbidden() -> list[str]:
    phones = [p.lstrip("+") for p in PHONES] + [p[3:] for p in PHONES]
    return [*PHONES, *phones, "Clave privada", *NAMES, TOKEN]


def job(account: str = "co-main") -> dict[str, Any]:
    people = [{"phone": phone, "vars": {"name": name}} for phone, name in zip(PHONES, NAMES, strict=True)]
    return {"account": account, "text": TEXT, "recipients": people}


def test_every_task_has_an_explicit_dispatcher_name() -> None:
    # Given the project's app with its tasks registered
    import tasks  # noqa: F401 - registers the tasks

    ours = [name for name in app.tasks if not name.startswith("celery.")]
    # Then each of them is named dispatcher.<something>, never after its module
    assert sorted(ours) == [
        "dispatcher.check_balance",
        "dispatcher.poll",
        "dispatcher.release_due",
        "dispatcher.send_batch",
        "dispatcher.submit",
    ]


def test_a_submit_message_built_by_the_project_carries_a_summary_whatever_the_caller_passes() -> None:
    # When the app builds a submit message, even with an argsrepr that is the job itself
    message = app.amqp.create_task_message(
        "job-1", "dispatcher.submit", (job(),), {}, create_sent_event=True, argsrepr=repr((job(),))
    )
    # Then the header and the task-sent event carry account and count only
    summary = "({'account': 'co-main', 'recipients': 3},)"
    assert message.headers["argsrepr"] == summary and message.sent_event["args"] == summary
    assert not any(word in json.dumps(message.headers) + json.dumps(message.sent_event) for word in forbidden())


@pytest.mark.parametrize(
    "args, shown",
    [
        ((job("co-main"),), "({'account': 'co-main', 'recipients': 3},)"),
        ((job("+573001112233 Ximena"),), "({'account': '?', 'recipients': 3},)"),
        (({"recipients": "+573001112233"},), "({'account': '?', 'recipients': ?},)"),
        ((job(), "extra"), "(<2 arguments withheld>,)"),
        (("+573001112233",), "(<1 arguments withheld>,)"),
    ],
)
def test_a_summary_shows_a_plain_account_key_and_a_count_and_nothing_else(args: tuple, shown: str) -> None:
    assert job_summary(args, {}) == (shown, "{}")


@pytest.fixture
def flower(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    with itcloud_stack(tmp_path) as stack:
        port = free_port()
        proc = start(
            [sys.executable, "-m", "celery", "-A", "tasks", "flower", f"--port={port}", "--address=127.0.0.1",
             f"--basic-auth={':'.join(FLOWER_AUTH)}"],
            stack.env, tmp_path / "flower.log",
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            # Flower sees events only once it listens: wait until it has seen beat's sweeps.
            wait_for(lambda: "dispatcher.release_due" in _get(url, "/api/tasks"), 60, "Flower to see tasks")
            yield stack, url
        finally:
            stop(proc)


def _get(url: str, path: str) -> str:
    try:
        return httpx.get(url + path, auth=FLOWER_AUTH, timeout=10).text
    except httpx.HTTPError:
        return ""


def _capture_events(into: list[dict[str, Any]]) -> tuple[threading.Thread, Any]:
    """Listen to every event on the broker, as Flower does, in a thread."""
    listener = Celery(broker=REDIS_URL)
    conn = listener.connection()
    receiver = listener.events.Receiver(conn, handlers={"*": into.append})

    def run() -> None:
        try:
            receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception:  # noqa: BLE001,S110 - the connection closes when the test is done
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, (receiver, conn)


def queue_job_elsewhere(stack: Stack, job: dict[str, Any]) -> str:
    """Drop a job through the project's door, ``tasks.producer.queue_job``, from a producer process of its own."""
    code = "import json, sys; from tasks.producer import queue_job; print(queue_job(json.load(sys.stdin)))"
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(job), env=stack.env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_flower_lists_the_jobs_tasks_by_name_and_shows_no_phone_text_or_secret(
    flower: tuple[Stack, str],
) -> None:
    stack, url = flower
    events: list[dict[str, Any]] = []
    _, (receiver, conn) = _capture_events(events)
    try:
        wait_for(lambda: any(e["type"].startswith("task-") for e in events), 30, "task events on the broker")
        # Given a job dropped by a foreign producer (no argsrepr) and one through the project's door
        foreign = Celery(broker=REDIS_URL).send_task("dispatcher.submit", args=[job()], queue="jobs").id
        second = job()
        second["idempotency_key"] = "door-1"
        own = queue_job_elsewhere(stack, second)
        # When both are sent
        for job_id in (foreign, own):
            wait_for(lambda job_id=job_id: stack.states(job_id).get("sent") == 3, 60, f"job {job_id} sent")
        with stack.engine.connect() as conn_db:
            batches = conn_db.execute(select(Batch.id, Batch.job_id).where(Batch.job_id.in_([foreign, own]))).all()
        assert {b.job_id for b in batches} == {foreign, own}

        def listed() -> dict[str, Any] | None:
            tasks = json.loads(_get(url, "/api/tasks") or "{}")
            done = {
                t["args"]
                for t in tasks.values()
                if t["name"] == "dispatcher.send_batch" and t["state"] == "SUCCESS"
            }
            ok = all(tasks.get(j, {}).get("state") == "SUCCESS" for j in (foreign, own))
            return tasks if ok and all(f"({b.id},)" in done for b in batches) else None

        # Then Flower lists each job's submit task and its batches' send tasks, by name
        tasks = wait_for(listed, 30, "Flower to list the jobs' tasks")
        # And Flower answers only with its credentials, and nothing it answers shows a phone, a
        # text, a variable or a secret
        assert httpx.get(url + "/api/tasks", timeout=10).status_code == 401
        answers = [_get(url, "/api/tasks")] + [_get(url, f"/api/task/info/{task_id}") for task_id in tasks]
        assert all(a.startswith("{") for a in answers)
        leaks = sorted({word for a in answers for word in forbidden() if word in a})
        assert leaks == [], f"Flower shows {leaks}"
        # The submit tasks show the summary and the job id they returned
        for job_id in (foreign, own):
            assert tasks[job_id]["name"] == "dispatcher.submit"
            assert tasks[job_id]["args"] == "({'account': 'co-main', 'recipients': 3},)"
            assert tasks[job_id]["result"] == repr(job_id)
        # And no task event on the broker carries them either, the producer's task-sent included
        ours = [e for e in events if e["type"].startswith("task-")]
        assert {"task-sent", "task-received", "task-succeeded"} <= {e["type"] for e in ours}
        leaked = sorted({word for e in ours for word in forbidden() if word in json.dumps(e, default=str)})
        assert leaked == [], f"task events carry {leaked}"
    finally:
        receiver.should_stop = True
        conn.release()
