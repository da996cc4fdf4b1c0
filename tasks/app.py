"""The Celery app, configured from ``celeryconfig``."""

from __future__ import annotations

from celery import Celery

app = Celery("smsdispatch")
app.config_from_object("celeryconfig")
