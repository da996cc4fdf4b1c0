"""What a worker process holds: settings, accounts, engine, limiter, HTTP client, clock.

Built lazily once per process and rebuilt after the fork (``worker_process_init``): a child must
not share its parent's database pool or HTTP connections.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_process_init

from dispatcher.clock import make_clock
from dispatcher.config import AccountConfig, Settings, load_accounts
from dispatcher.db import make_engine
from dispatcher.errors import ConfigError
from dispatcher.logs import prepare_handler
from dispatcher.ratelimit import MemoryLimiter, RedisLimiter
from dispatcher.services import Services
from dispatcher.transport import Transport
from tasks.flower import PoolApplyFilter
from tasks.logs import TaskFilter

log = logging.getLogger("tasks.runtime")
#: Celery's worker line, and the ids after the message
WORKER_TEXT_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s%(ids)s"


@dataclass
class Runtime:
    """One process's connections and configuration."""

    settings: Settings
    accounts: dict[str, AccountConfig]
    services: Services
    redis: Any | None

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        return self.services.engine

    @property
    def clock(self):  # type: ignore[no-untyped-def]
        return self.services.clock

    def secrets(self) -> list[str]:
        """Every secret value of every account, for log scrubbing."""
        return [s for config in self.accounts.values() for s in config.account.secrets()]


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """Return this process's runtime, building it on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime(Settings())
        return _runtime


def build_runtime(settings: Settings) -> Runtime:
    """Load the accounts (raising ConfigError) and open the connections."""
    accounts = load_accounts(settings.accounts)
    engine = make_engine(settings.database_url, statement_timeout=settings.statement_timeout)
    redis_client = None
    if settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url)
        limiter: Any = RedisLimiter(redis_client)
    else:
        limiter = MemoryLimiter()
    services = Services(engine, accounts, limiter, Transport(), settings, make_clock(settings.clock_file))
    return Runtime(settings, accounts, services, redis_client)


def reset() -> None:
    """Forget the runtime (after a fork, or when tests change the environment)."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.services.engine.dispose(close=False)
        _runtime = None


@worker_init.connect
def _check_config(**_: Any) -> None:
    # A bad accounts file stops the worker before it takes any message. Celery logs and
    # swallows an Exception from a signal handler, so leave through SystemExit.
    try:
        runtime()
    except ConfigError as exc:
        log.critical("configuration error: %s", exc)
        raise SystemExit(f"configuration error: {exc}") from None


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    reset()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _prepare_logs(logger: logging.Logger, **_: Any) -> None:
    # Every worker line: one line, in DISPATCHER_LOG_FORMAT, with its ids, secrets masked.
    try:
        rt = runtime()
    except Exception:  # noqa: BLE001 - a bad config is reported by worker_init
        return
    log_format = rt.settings.log_format
    for handler in logger.handlers:
        handler.addFilter(TaskFilter())  # first: the ids filter then shows the task id in text lines
        handler.addFilter(PoolApplyFilter())
        prepare_handler(handler, rt.secrets(), log_format, text_format=WORKER_TEXT_FORMAT)
