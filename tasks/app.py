"""The Celery app, configured from ``celeryconfig``, and the guard on what reaches a pool process.

The worker's main process decodes each task message and pickles its arguments and headers for
the pool process. A body nested a few hundred levels deep makes that pickling raise
``RecursionError`` in the main process, which kills the worker; the message goes back to the
queue and kills the next worker too. A body that cannot be decoded takes Celery's decode-error
path, which acknowledges the message: the job is gone without a trace. ``BoundedRequest``, the
request class of every task here, reads the body itself before Celery does:

- a body that cannot be read (not JSON, too deep, not ``[args, kwargs, embed]``) reaches the
  task as ``kwargs = {UNREADABLE: reason}`` and no arguments, so ``dispatcher.submit`` stores a
  rejected job with that reason and every other task fails on it without harm;
- a header nested too deep, or of the wrong type for Celery, is dropped with a warning;
- a message without a usable task id is refused as an invalid task (logged, not requeued).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import Celery, Task
from celery.exceptions import InvalidTaskError
from celery.worker.request import Request

log = logging.getLogger("tasks.app")

#: the keyword a task receives instead of its arguments when its message could not be read
UNREADABLE = "__unreadable__"
#: levels of nesting a message body may have; a job needs 7 (body, args, job, recipients,
#: recipient, vars, value), pickling fails near 500
MAX_BODY_DEPTH = 32
#: levels of nesting one header value may have
MAX_HEADER_DEPTH = 8
#: characters kept of a producer's argsrepr/kwargsrepr (shown in logs, events and Flower)
MAX_REPR_CHARS = 1024
#: headers Celery reads as text (or None)
_TEXT_HEADERS = ("task", "shadow", "root_id", "parent_id", "group", "origin", "lang")


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Say whether ``value`` nests lists and dicts more than ``limit`` levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (Mapping, list, tuple)))
    return False


def unreadable(reason: str) -> tuple[list[Any], dict[str, str], dict[str, Any]]:
    """The body a task gets in place of one that could not be read."""
    return [], {UNREADABLE: reason}, {}


def checked_body(payload: Any) -> tuple[Any, Any, Any]:
    """Return ``(args, kwargs, embed)`` if the decoded body is one, bounded; else ``unreadable``."""
    if not (isinstance(payload, (list, tuple)) and len(payload) == 3):
        return unreadable("the message body is not [args, kwargs, embed]")
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, Mapping):
        return unreadable("the message body is not [args, kwargs, embed]")
    if embed is not None and not isinstance(embed, Mapping):
        return unreadable("the message body is not [args, kwargs, embed]")
    if nesting_exceeds(payload, MAX_BODY_DEPTH):
        return unreadable(f"the message body nests more than {MAX_BODY_DEPTH} levels")
    return args, kwargs, embed


def read_body(message: Any) -> tuple[Any, Any, Any]:
    """Decode a message body without letting any error or depth escape."""
    try:
        payload = message.decode()
    except Exception as exc:  # noqa: BLE001 - DecodeError, RecursionError, ContentDisallowed, ...
        # The error names the problem (and never echoes the body, which holds phones).
        return unreadable(f"the message body could not be decoded ({type(exc).__name__}: {str(exc)[:200]})")
    return checked_body(payload)


def bounded_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers safe to pickle and of the types Celery's main process relies on."""
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id or len(task_id) > 255:
        raise InvalidTaskError("the message has no usable task id")
    clean: dict[str, Any] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or nesting_exceeds(value, MAX_HEADER_DEPTH):
            log.warning("task %s: dropped header %.50r (nested too deep)", task_id, name)
            continue
        clean[name] = value
    for name in _TEXT_HEADERS:
        if not isinstance(clean.get(name), (str, type(None))):
            log.warning("task %s: dropped header %r (not text)", task_id, name)
            clean.pop(name)
    for name in ("argsrepr", "kwargsrepr"):
        if name in clean:
            clean[name] = clean[name][:MAX_REPR_CHARS] if isinstance(clean[name], str) else ""
    limits = clean.get("timelimit")
    if limits is not None and not (
        isinstance(limits, (list, tuple))
        and len(limits) == 2
        and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in limits)
    ):
        log.warning("task %s: dropped header 'timelimit' (not [hard, soft])", task_id)
        clean.pop("timelimit")
    if not isinstance(clean.get("retries", 0), int):
        clean["retries"] = 0
    return clean


class BoundedRequest(Request):
    """A task request whose arguments and headers are checked before they reach a pool process."""

    def __init__(self, message: Any, **kwargs: Any) -> None:
        headers = kwargs.get("headers")
        kwargs["headers"] = bounded_headers(message.headers if headers is None else headers)
        body = checked_body(kwargs.get("body")) if kwargs.get("decoded") else read_body(message)
        kwargs.update(body=body, decoded=True)
        super().__init__(message, **kwargs)


class BoundedTask(Task):
    """The base of every task here: its requests are ``BoundedRequest``."""

    Request = BoundedRequest


app = Celery("smsdispatch", task_cls=BoundedTask)
app.config_from_object("celeryconfig")
