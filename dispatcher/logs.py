"""Log lines an operator can read and search: one line per event, plain text or JSON, with ids.

``DISPATCHER_LOG_FORMAT=json`` makes every line one JSON object (python-json-logger), e.g.::

    {"time": "2026-11-23T15:00:02.113+00:00", "level": "INFO", "logger": "dispatcher.sending",
     "message": "sent request", "account": "co-main", "recipients": 3, "outcomes": {"sent": 3},
     "messages": [41, 42, 43], "job": "5b0c...", "batch": 17, "task_id": "9e1f...",
     "task_name": "dispatcher.send_batch"}

Ids reach a line two ways: a call passes them (``extra={"job": ..., "batch": ...}``), or the
code handling one job or batch binds them once (``bind_ids``) and ``IdsFilter`` adds them to
every line logged until they are cleared (the Celery edge clears them around each task).
Secrets are masked by ``dispatcher.redaction.SecretFilter`` on the same handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from dispatcher.redaction import SecretFilter

#: the plain text line; ids follow the message when there are any
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s%(ids)s"
#: record attributes that carry ids, in the order a text line shows them (``message`` is
#: the line's own text in a LogRecord, hence ``message_id``; a request's rows go in ``messages``)
ID_FIELDS = ("job", "batch", "message_id", "task_id")

_ids: ContextVar[dict[str, Any] | None] = ContextVar("smsdispatch_log_ids", default=None)


def bind_ids(**ids: Any) -> None:
    """Add ids (``job=``, ``batch=``, ``message_id=``...) to every line logged from here on."""
    current = dict(_ids.get() or {})
    current.update({key: value for key, value in ids.items() if value is not None})
    _ids.set(current)


def clear_ids() -> None:
    """Forget the bound ids (the end of a task, or of a command)."""
    _ids.set(None)


class IdsFilter(logging.Filter):
    """Adds the bound ids to each record that does not carry them already, and a text suffix."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_ids.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        shown = [f"{key}={getattr(record, key)}" for key in ID_FIELDS if getattr(record, key, None) is not None]
        record.ids = f" [{' '.join(shown)}]" if shown else ""
        return True


class TextFormatter(logging.Formatter):
    """The plain text line, with the ids the filters found (none when no filter ran)."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "ids"):
            record.ids = ""
        return super().format(record)


def json_formatter() -> logging.Formatter:
    """A formatter writing one JSON object per line: time, level, logger, message, then every extra."""
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        # 'ids' is the text line's suffix; JSON has the ids as fields of their own.
        reserved_attrs=[*_reserved_attrs(), "ids"],
        timestamp="time",
        json_ensure_ascii=False,
    )


def formatter(log_format: str, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    """The formatter of ``DISPATCHER_LOG_FORMAT``."""
    if log_format == "json":
        return json_formatter()
    return TextFormatter(text_format)


def prepare_handler(
    handler: logging.Handler, secrets: Iterable[str], log_format: str, text_format: str = TEXT_FORMAT
) -> None:
    """Give a handler the ids and secret filters and the format's formatter."""
    handler.addFilter(IdsFilter())
    handler.addFilter(SecretFilter(secrets))
    handler.setFormatter(formatter(log_format, text_format))


def configure_cli(level: int = logging.WARNING) -> None:
    """Log the ``dispatcher`` command's lines to stderr in the configured format, secrets masked."""
    from pydantic import ValidationError

    from dispatcher.config import Settings, load_accounts
    from dispatcher.errors import ConfigError

    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(f"settings: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    try:
        secrets = [s for config in load_accounts(settings.accounts).values() for s in config.account.secrets()]
    except ConfigError:
        secrets = []  # the commands that need the accounts report the problem themselves
    handler = logging.StreamHandler()
    prepare_handler(handler, secrets, settings.log_format)
    logging.basicConfig(level=level, handlers=[handler])


def _reserved_attrs() -> list[str]:
    from pythonjsonlogger.core import RESERVED_ATTRS

    return list(RESERVED_ATTRS)
