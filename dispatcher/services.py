"""What the layers below the edge are handed: the services bundle and the queue port.

``Services`` holds the connections and configuration that sending, polling, balance checks and
ingest share, made once per process by whoever runs them (the Celery worker in ``tasks``, a
test, a benchmark). ``Queue`` is the one thing the library asks of a broker: queue an account's
due batches. ``tasks`` implements it on Celery; nothing here knows which broker runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from dispatcher.clock import SystemClock
from dispatcher.config import AccountConfig, Settings
from dispatcher.ratelimit import Limiter
from dispatcher.transport import Transport


@dataclass
class Services:
    """The connections and configuration one process shares: made once, after the fork."""

    engine: Engine
    accounts: Mapping[str, AccountConfig]
    limiter: Limiter
    transport: Transport
    settings: Settings
    clock: SystemClock


class Queue(Protocol):
    """Where an account's due batches go to be sent: the broker, seen from the library."""

    def release(self, account: str | None) -> object:
        """Queue the due batches of ``account`` (of every account with None)."""
        ...
