"""The worker's log lines: the task's id and name on each, and the job or batch it works on.

Celery's own lines about a task ("received", "succeeded", "retry") carry its context in the
record's ``data``; a line logged while a task runs gets the current task's request. Around each
task the bound ids are cleared and the task's own ids bound: a submit task's id is its job's id,
a send task's argument its batch's.
"""

from __future__ import annotations

import logging
from typing import Any

from celery._state import get_current_task
from celery.signals import celeryd_init, task_postrun, task_prerun

from dispatcher.config import Settings
from dispatcher.logs import bind_ids, clear_ids, prepare_handler

#: per task name: how its ids are found from (task id, arguments)
TASK_IDS = {
    "dispatcher.submit": lambda task_id, args: {"job": task_id},
    "dispatcher.send_batch": lambda task_id, args: {"batch": args[0] if len(args) == 1 else None},
}


class TaskFilter(logging.Filter):
    """Adds ``task_id`` and ``task_name`` to each record logged about or inside a task."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_id", None) is None:
            data = getattr(record, "data", None)
            if isinstance(data, dict) and data.get("id"):
                record.task_id, record.task_name = data["id"], data.get("name")
            else:
                task = get_current_task()  # what Celery's own TaskFormatter reads
                request = getattr(task, "request", None)
                if request is not None and getattr(request, "id", None):
                    record.task_id, record.task_name = request.id, task.name
        return True


@task_prerun.connect
def _bind_task_ids(task_id: str | None = None, task: Any = None, args: Any = (), **_: Any) -> None:
    clear_ids()
    found = TASK_IDS.get(getattr(task, "name", ""))
    if found is not None:
        bind_ids(**found(task_id, tuple(args or ())))


@task_postrun.connect
def _clear_task_ids(**_: Any) -> None:
    clear_ids()


@celeryd_init.connect
def _json_from_the_start(instance: Any = None, **_: Any) -> None:
    # With JSON lines, the worker's start-up banner (a screenful of plain text) stays off, and
    # Python warnings (such as Celery's about running as root, issued before the worker's own
    # logging is set up) become JSON lines of their own.
    if Settings().log_format != "json" or instance is None:
        return
    instance.quiet = True
    logging.captureWarnings(True)
    handler = logging.StreamHandler()
    prepare_handler(handler, (), "json")
    warnings_log = logging.getLogger("py.warnings")
    warnings_log.addHandler(handler)
    warnings_log.propagate = False
