"""What Flower, task events and the worker's log show of a submitted job: a summary, never its recipients.

A ``dispatcher.submit`` message carries the whole job (phones, texts, variables). Celery copies a
repr of a message's arguments into three places, each of which ends up in Flower:

- the message's ``argsrepr`` header, written by the producer (Celery's ``as_task_v2`` puts
  ``saferepr(args)`` there unless the caller passes ``argsrepr``);
- the producer's ``task-sent`` event (``task_send_sent_event``), built from that same value;
- the worker's ``task-received`` event and its "received"/"succeeded" log lines, which read the
  request's ``argsrepr`` (in the main process) and the request dict's (in the pool process).

Both ends are closed here, for the submit task only (every other task carries ids):
``SummaryAMQP`` rewrites ``argsrepr``/``kwargsrepr`` of every submit message this project
publishes, whatever the caller passed; ``SubmitRequest`` makes the worker ignore the header a
foreign producer sent and show the summary instead. What a foreign producer's own ``task-sent``
event carries is out of the worker's reach (README, "The job"). At DEBUG the worker also logs
the request it hands to its pool process; ``PoolApplyFilter`` cuts the job out of that line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from celery.app.amqp import AMQP

from tasks.app import BoundedRequest

#: tasks whose arguments are never shown, only summarised
SUMMARISED = frozenset({"dispatcher.submit"})
#: what an account key may look like to be shown in a summary (anything else is withheld)
_ACCOUNT_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def job_summary(args: Any, kwargs: Any = None) -> tuple[str, str]:
    """The ``(argsrepr, kwargsrepr)`` of a submit message: account key and recipient count only."""
    job = args[0] if isinstance(args, Sequence) and not isinstance(args, str) and len(args) == 1 else None
    if not isinstance(job, Mapping):
        # Not one job: a call shape ingest rejects. Say so without repeating what was sent.
        count = len(args) if isinstance(args, Sequence) and not isinstance(args, str) else "?"
        return f"(<{count} arguments withheld>,)", "{...}" if kwargs else "{}"
    account = job.get("account")
    shown = repr(account) if isinstance(account, str) and _ACCOUNT_KEY.fullmatch(account) else "'?'"
    recipients = job.get("recipients")
    count = len(recipients) if isinstance(recipients, Sequence) and not isinstance(recipients, str) else "?"
    return f"({{'account': {shown}, 'recipients': {count}}},)", "{...}" if kwargs else "{}"


class SummaryAMQP(AMQP):
    """The app's message builder: a submit message's header and task-sent event carry the summary."""

    def as_task_v2(
        self, task_id: str, name: str, args: Any = None, kwargs: Any = None, *rest: Any, **options: Any
    ):  # type: ignore[no-untyped-def]  # noqa: E501
        if name in SUMMARISED:
            # Forced, not defaulted: a caller's own argsrepr may be the job itself.
            options["argsrepr"], options["kwargsrepr"] = job_summary(args, kwargs)
        return super().as_task_v2(task_id, name, args, kwargs, *rest, **options)


class SubmitRequest(BoundedRequest):
    """The worker's view of a submit message: the summary, whatever ``argsrepr`` the producer sent."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        argsrepr, kwargsrepr = job_summary(self._args, self._kwargs)
        # The main process reads the attributes (task-received, "received" line); the pool
        # process reads the request dict ("succeeded" and failure lines, task-started).
        self._argsrepr, self._kwargsrepr = argsrepr, kwargsrepr
        self._request_dict["argsrepr"], self._request_dict["kwargsrepr"] = argsrepr, kwargsrepr


class PoolApplyFilter(logging.Filter):
    """Cuts the job out of the worker's DEBUG line "TaskPool: Apply ..." for a submit task.

    That line prints the request handed to the pool process, job included, cut at 1024
    characters: whether the recipients show depends on how long the ids before them are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.name == "celery.pool"
            and isinstance(args, tuple)
            and len(args) == 3
            and isinstance(args[1], str)
            and args[1].startswith(tuple(f"({name!r}," for name in SUMMARISED))
        ):
            name_and_id = ", ".join(args[1].split(", ", 2)[:2])
            record.args = (args[0], f"{name_and_id}, <request and job withheld>)", args[2])
        return True
