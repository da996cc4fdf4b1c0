"""``dispatcher produce``: sample jobs for the sandbox's five customers, dropped on queue ``jobs``.

The compose file's ``demo`` profile runs it beside the sandbox so the whole product has work to
show. It publishes ``dispatcher.submit`` by name with ``send_task``, as a producer in any
language would, and gives each message an ``argsrepr`` summary so Flower shows no phone list.
``queue_job(job)`` is the project's own door through the broker (``tasks.submit_job`` stores a
job in-process instead).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from dispatcher.sandbox.world import sample_jobs as customer_samples


def sample_jobs(round_no: int, recipients: int) -> list[dict[str, Any]]:
    """One job per sandbox customer; each round takes new phones, so the sandbox counts no phone twice."""
    first = round_no * recipients
    return [sample.job(account, recipients, first) for account, sample in customer_samples()]


def produce(
    recipients: int = 50,
    every: float = 30.0,
    rounds: int = 10,
    send_task: Callable[..., Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Drop a round of sample jobs every ``every`` seconds, ``rounds`` times (0: until stopped)."""
    if send_task is None:
        from tasks.app import app

        send_task = app.send_task
    round_no = 0
    while rounds == 0 or round_no < rounds:
        if round_no:
            sleep(every)
        for job in sample_jobs(round_no, recipients):
            summary = f"({{'account': {job['account']!r}, 'recipients': {len(job['recipients'])}}},)"
            job_id = str(uuid.uuid4())
            send_task("dispatcher.submit", args=(job,), queue="jobs", task_id=job_id, argsrepr=summary)
            print(f"round {round_no + 1}: job {job_id} for {job['account']} ({recipients} recipients)", flush=True)
        round_no += 1
    return 0


def queue_job(job: Mapping[str, Any], job_id: str | None = None) -> str:
    """Drop one job on queue ``jobs`` through the broker; return its id (the task id).

    Flower and the events show the job's summary (account and count), never its recipients:
    the app's message builder puts it in the message whatever the caller passes.
    """
    from tasks.app import app

    job_id = job_id or str(uuid.uuid4())
    app.send_task("dispatcher.submit", args=(dict(job),), queue="jobs", task_id=job_id)
    return job_id
