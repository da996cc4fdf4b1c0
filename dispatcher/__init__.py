"""smsdispatch: send SMS jobs through five vendors without losing or duplicating a message.

``submit_job(job)`` stores a job (validated, one row per recipient) in the configured database
and queues what is due; it returns the job id. The same contract arrives as the Celery task
``dispatcher.submit`` on queue ``jobs`` and as ``dispatcher submit FILE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["submit_job"]


def submit_job(job: Mapping[str, Any], job_id: str | None = None) -> str:
    """Store a job and queue its due batches; return the job id (a rejected job has one too)."""
    # The queue side lives in tasks/; imported here only when a caller submits.
    from dispatcher.jobs import ingest_job
    from tasks.dispatch import release_account
    from tasks.runtime import runtime

    rt = runtime()
    result = ingest_job(rt.engine, rt.accounts, job, rt.clock.now(), job_id)
    if result.created and result.state == "accepted":
        release_account(result.account)
    return result.job_id
