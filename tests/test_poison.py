"""Poison messages: no message on queue ``jobs``, whatever its shape, kills a worker process or
makes it crash-loop; a poison job with a task id is stored rejected with its reason.

A real prefork worker, Redis, PostgreSQL and the IT Cloud simulator. Each poison message is
followed by a normal job, which must be sent by the same worker main process.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer
from sqlalchemy import select

from dispatcher.models import Job, Message
from tests.conftest import REDIS_URL
from tests.workers import children, itcloud_vendor, producer, submit, wait_for, worker_stack

pytestmark = pytest.mark.worker


def nested(depth: int) -> Any:
    """A value nested ``depth`` levels deep, built without recursion."""
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_json(depth: int) -> str:
    """The JSON text of ``nested(depth)``, built as text (json.dumps would recurse)."""
    return '{"a":' * depth + '"x"' + "}" * depth


def task_headers(task_id: str, **extra: Any) -> dict[str, Any]:
    """The headers Celery's protocol 2 gives a ``dispatcher.submit`` message."""
    return {
        "lang": "py", "task": "dispatcher.submit", "id": task_id, "root_id": task_id, "parent_id": None,
        "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None],
        "argsrepr": "(job,)", "kwargsrepr": "{}", "origin": "test", **extra,
    }  # fmt: skip


def publish_raw(body: str | bytes, headers: dict[str, Any], content_type: str = "application/json") -> None:
    """Publish a body exactly as given (no serializer) to queue ``jobs``."""
    with Connection(REDIS_URL, transport_options={"sep": ":", "priority_steps": list(range(10))}) as conn:
        Producer(conn).publish(
            body, exchange=Exchange("jobs", type="direct"), routing_key="jobs",
            content_type=content_type, content_encoding="utf-8", headers=headers,
        )  # fmt: skip


def push_envelope(text: str) -> None:
    """Push a raw envelope onto the Redis list of queue ``jobs``, as a broken producer could."""
    import redis

    redis.Redis.from_url(REDIS_URL).lpush("jobs", text)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with itcloud_vendor(tmp_path) as vendor, worker_stack(tmp_path, vendor.env) as running:
        worker = running.worker("poison")
        running.ready(timeout=60)
        yield {"engine": running.engine, "vendor": vendor, "worker": worker, "log": running.worker_log}


def job_row(engine: Any, job_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(Job.state, Job.reason).where(Job.id == job_id)).first()


def sent(engine: Any, job_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(Message.state).where(Message.job_id == job_id)).scalar() == "sent"


def assert_worker_survives_and_sends(stack: dict[str, Any], phone: str) -> None:
    """A normal job after the poison is sent, by the same main process, with a pool child."""
    worker = stack["worker"]
    job_id = submit(producer(), {"account": "co-main", "text": "Hola", "recipients": [phone]})
    wait_for(lambda: sent(stack["engine"], job_id) or worker.poll() is not None, 60, "the normal job")
    assert worker.poll() is None, "the worker main process exited:\n" + stack["log"].read_text()[-3000:]
    assert sent(stack["engine"], job_id) and stack["vendor"].ledger.sends[phone] == 1
    assert len(children(worker.pid)) == 1


CASES = {
    "500 levels deep": lambda: json.dumps([[nested(1)], {}, {}]).replace('"x"', deep_json(500)),
    "100,000 levels deep": lambda: "[[" + deep_json(100_000) + "], {}, {}]",
    "not JSON": lambda: b"\xff\xfe not json at all {{{",
    "JSON but not [args, kwargs, embed]": lambda: '{"account": "co-main"}',
}


@pytest.mark.parametrize("case", CASES)
def test_a_poison_body_is_stored_rejected_and_the_worker_goes_on(stack: dict[str, Any], case: str) -> None:
    # Given a job message whose body cannot be handed to a pool process
    job_id = str(uuid.uuid4())
    publish_raw(CASES[case](), task_headers(job_id))
    # Then it is stored as a rejected job with its reason
    row = wait_for(lambda: job_row(stack["engine"], job_id), 60, "the poison job stored")
    assert row.state == "rejected" and "could not be read" in row.reason
    # And the same worker sends the next job
    assert_worker_survives_and_sends(stack, "+573001234567")


def test_a_deeply_nested_header_is_dropped_and_the_job_is_sent(stack: dict[str, Any]) -> None:
    # Given a job whose producer added a header nested 500 levels deep
    job_id = str(uuid.uuid4())
    body = json.dumps([[{"account": "co-main", "text": "Hola", "recipients": ["+573001234568"]}], {}, {}])
    publish_raw(body, task_headers(job_id, extra=nested(500)))
    # Then the job is stored and sent, and the worker goes on
    wait_for(lambda: sent(stack["engine"], job_id), 60, "the job with the deep header sent")
    assert_worker_survives_and_sends(stack, "+573001234569")


@pytest.mark.parametrize("envelope", ["not an envelope", deep_json(100_000)])
def test_a_broken_envelope_does_not_stop_the_worker(stack: dict[str, Any], envelope: str) -> None:
    # Given a message on the queue that is not a kombu envelope at all (no task id to store)
    push_envelope(envelope)
    # Then the worker goes on with the next job
    assert_worker_survives_and_sends(stack, "+573001234570")
