"""The Celery app, configured from ``celeryconfig``, and the guard on what reaches a pool process.

The worker's main process decodes each task message and pickles its arguments and headers for
the pool process. A body nested a few hundred levels deep makes that pickling raise
``RecursionError`` in the main process, which kills the worker; the message goes back to the
queue and kills the next worker too. A body that cannot be decoded takes Celery's decode-error
path, which acknowledges the message: the job is gone without a trace. An envelope in the Redis
list that is not JSON at all stops the worker too. So, in every process of the app:

- JSON bodies are read by ``bounded_json_loads`` (registered for ``application/json``): a body
  that does not decode or nests too deep becomes ``[[], {UNREADABLE: reason}, {}]``, which
  ``dispatcher.submit`` stores as a rejected job with that reason (any other task fails on it
  without harm);
- ``BoundedRequest``, the request class of every task here, also refuses a body that is not
  ``[args, kwargs, embed]``, drops headers nested too deep or of a type Celery cannot use, and
  refuses a message without a usable task id as an invalid task (logged, not requeued);
- a Redis envelope that is not JSON is logged and skipped (it has no task id to store).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kombu.transport.redis as kombu_redis
from celery import Celery, Task
from celery.exceptions import InvalidTaskError
from celery.worker.request import Request
from kombu.serialization import registry
from kombu.utils import json as kombu_json

log = logging.getLogger("tasks.app")

#: the keyword a task receives instead of its arguments when its message could not be read
UNREADABLE = "__unreadable__"
#: levels of nesting a message body may have; a job needs 7 (body, args, job, recipients,
#: recipient, vars, value), pickling fails near 500
MAX_BODY_DEPTH = 32
#: levels of nesting one header value may have
MAX_HEADER_DEPTH = 8
#: characters a task id may have: a job's id is its task id, and ``jobs.id`` holds 36
MAX_TASK_ID = 36
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
    return [], {UNREADABLE: f"the message could not be read: {reason}"}, {}


def checked_body(payload: Any) -> tuple[Any, Any, Any]:
    """Return ``(args, kwargs, embed)`` if the decoded body is one, bounded; else ``unreadable``."""
    if not (isinstance(payload, (list, tuple)) and len(payload) == 3):
        return unreadable("its body is not [args, kwargs, embed]")
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, Mapping):
        return unreadable("its body is not [args, kwargs, embed]")
    if embed is not None and not isinstance(embed, Mapping):
        return unreadable("its body is not [args, kwargs, embed]")
    if nesting_exceeds(payload, MAX_BODY_DEPTH):
        return unreadable(f"its body nests more than {MAX_BODY_DEPTH} levels")
    return args, kwargs, embed


def bounded_json_loads(data: Any) -> Any:
    """kombu's JSON decoder that never raises and never returns a value nested too deep."""
    try:
        value = kombu_json.loads(data)
    except Exception as exc:  # noqa: BLE001 - JSONDecodeError, UnicodeDecodeError, RecursionError
        # The error names the problem and never echoes the body, which holds phones.
        return unreadable(f"its body does not decode ({type(exc).__name__}: {str(exc)[:200]})")
    if nesting_exceeds(value, MAX_BODY_DEPTH):
        return unreadable(f"its body nests more than {MAX_BODY_DEPTH} levels")
    return value


def _envelope_loads(text: str) -> Any:
    """Read a Redis envelope; one that is not JSON is logged and skipped as if none had come."""
    try:
        return kombu_json.loads(text)
    except Exception as exc:  # noqa: BLE001 - whatever it is, it is no message
        log.error("skipped a broker message that is not a kombu envelope (%s, %d characters)",
                  type(exc).__name__, len(text))  # fmt: skip
        raise kombu_redis.Empty() from None


_restore_unacked = kombu_redis.QoS.restore_unacked


def _restore_unacked_unless_closed(qos: Any, client: Any = None) -> None:
    """kombu's restore of unacknowledged messages, which must not end the worker.

    After a Redis restart the worker closes its broker connection; kombu 5.7.0 then restores the
    messages it holds on a channel whose transport is already detached, and the AttributeError
    (``'NoneType' object has no attribute 'hostname'``, celery/kombu#970 and #582) ends the
    worker's main process. Those messages are still in Redis's unacked set; Redis gives them
    back after the visibility timeout, so they are left there and the worker reconnects.
    """
    try:
        _restore_unacked(qos, client)
    except AttributeError:
        transport = getattr(qos.channel, "connection", None)
        if transport is not None and getattr(transport, "client", None) is not None:
            raise
        log.warning("left %d unacknowledged message(s) to come back after the visibility timeout "
                    "(broker connection already closed)", len(qos._delivered))  # fmt: skip
        qos._delivered.clear()


registry.register("json", kombu_json.dumps, bounded_json_loads, "application/json", "utf-8")
kombu_redis.QoS.restore_unacked = _restore_unacked_unless_closed
# kombu's Redis transport reads envelopes with this name; an exception there ends the worker's
# main process (seen with a list item that is not JSON).
kombu_redis.loads = _envelope_loads


def read_body(message: Any) -> tuple[Any, Any, Any]:
    """Decode a message body without letting any error or depth escape."""
    try:
        payload = message.decode()
    except Exception as exc:  # noqa: BLE001 - a content type other than JSON, say
        return unreadable(f"its body does not decode ({type(exc).__name__}: {str(exc)[:200]})")
    return checked_body(payload)


def bounded_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers safe to pickle and of the types Celery's main process relies on."""
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id or len(task_id) > MAX_TASK_ID:
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


# Submit messages carry a summary, not the job, in their argsrepr and task-sent event (tasks/flower.py).
app = Celery("smsdispatch", task_cls=BoundedTask, amqp="tasks.flower:SummaryAMQP")
app.config_from_object("celeryconfig")
