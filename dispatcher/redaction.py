"""Keeping secrets out of logs, stored reasons and Flower."""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "***"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in ``text`` with a mask."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """A logging filter that masks the configured secrets in every record it passes."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            clean = scrub(message, self.secrets)
            if clean != message:
                record.msg, record.args = clean, None
        return True
