"""Keeping secrets out of logs, stored reasons and Flower."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "***"
#: attributes every LogRecord has; anything else on a record is an extra a formatter may print
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in ``text`` with a mask."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """A logging filter that masks the configured secrets in every record it passes.

    It masks the message, the traceback and the extras (a JSON line prints every extra, and
    Celery's own lines carry their context there); the traceback is formatted once here and
    kept as text, so no formatter formats the raw exception again.
    """

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        clean = scrub(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        for name in ("exc_text", "stack_info"):
            if isinstance(getattr(record, name, None), str):
                setattr(record, name, scrub(getattr(record, name), self.secrets))
        for name, value in list(vars(record).items()):
            if name not in _STANDARD:
                setattr(record, name, self._clean(value))
        return True

    def _clean(self, value: Any) -> Any:
        """A copy of an extra with every string in it masked (the caller's objects stay as they were)."""
        if isinstance(value, str):
            return scrub(value, self.secrets)
        if isinstance(value, dict):
            return {key: self._clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._clean(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self._clean(item) for item in value)
        return value
