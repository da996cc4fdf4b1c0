"""A real Celery worker and beat inside this process, for the embedded default (no Redis).

With ``REDIS_URL=memory://`` the broker lives in this process's memory, so the worker and beat
must live here too: the worker runs in a thread with a thread pool, beat in another thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery.beat import EmbeddedService
from celery.worker import WorkController
from celery.worker import state as worker_state

from tasks.app import app


@contextmanager
def embedded_worker(schedule: Path, concurrency: int = 2) -> Iterator[WorkController]:
    """Run a worker (thread pool) and beat in background threads until the block ends."""
    app.finalize()
    app.set_current()
    worker = WorkController(
        app=app,
        concurrency=concurrency,
        pool="threads",
        hostname="embedded@localhost",
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        ready_callback=None,
    )
    thread = threading.Thread(target=worker.start, name="worker", daemon=True)
    thread.start()
    beat = EmbeddedService(app, thread=True, schedule_filename=str(schedule))
    beat.start()
    try:
        yield worker
    finally:
        beat.stop()
        worker_state.should_terminate = 0
        thread.join(15)
        worker_state.should_terminate = None
