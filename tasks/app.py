"""The Celery app, configured from ``celeryconfig``."""

from __future__ import annotations

from celery import Celery

# Submit messages carry a summary, not the job, in their argsrepr and task-sent event (tasks/flower.py).
app = Celery("smsdispatch", amqp="tasks.flower:SummaryAMQP")
app.config_from_object("celeryconfig")
