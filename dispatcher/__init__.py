"""smsdispatch: send SMS jobs through five vendors without losing or duplicating a message.

``submit_job(job, services=..., queue=...)`` stores a job (validated, one row per recipient)
with the given services and hands its account to ``queue`` to send what is due; it returns the
job id. The library knows no broker: the Celery edge wires both in ``tasks.submit_job(job)``, and
the same contract arrives as the Celery task ``dispatcher.submit`` on queue ``jobs`` and as
``dispatcher submit FILE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispatcher.services import Queue, Services

__all__ = ["submit_job"]


def submit_job(job: Mapping[str, Any], *, services: Services, queue: Queue, job_id: str | None = None) -> str:
    """Store a job and queue its due batches; return the job id (a rejected job has one too)."""
    # Imported here so that `import dispatcher.errors` (or any one module) stays cheap.
    from dispatcher.jobs import ingest_job

    result = ingest_job(services.engine, services.accounts, job, services.clock.now(), job_id)
    if result.created and result.state == "accepted":
        queue.release(result.account)
    return result.job_id
