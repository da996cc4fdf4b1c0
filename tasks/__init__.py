"""The Celery app and its thin tasks; everything they do lives in ``dispatcher``.

``submit_job(job)`` is the Python door with the broker wired in: ``dispatcher.submit_job`` with
this process's services and ``BrokerQueue``.
"""

from tasks.app import app
from tasks.dispatch import check_balance, poll, release_due, send_batch, submit, submit_job
from tasks.metrics import connect as _connect_metrics

_connect_metrics()

__all__ = ["app", "check_balance", "poll", "release_due", "send_batch", "submit", "submit_job"]
