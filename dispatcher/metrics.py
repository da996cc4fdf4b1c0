"""Prometheus metrics: counted in memory where things happen, read by whoever serves them.

Counting costs no round trip: in a prefork worker each pool process adds to its own mmap'd
files in ``PROMETHEUS_MULTIPROC_DIR``, and the worker's main process merges them at scrape time
(``worker_registry``). What only the serving process should read is read at scrape time too:
queue depth from Redis (``QueueDepthCollector``) and poll lag from the database
(``PollLagCollector``), never by tasks.

The families are made on first use, not at import: prometheus_client picks its multiprocess mode
once, when it is first imported, and that must come after the worker has set the directory.

Names (``account`` and ``vendor`` labels unless said otherwise)::

    smsdispatch_messages_{sent,failed,retried,deferred,held_window,held_pause,expired,unknown}_total
    smsdispatch_vendor_request_seconds{account,vendor,outcome}   histogram; outcome ok or the failure's
    smsdispatch_rate_limit_waits_total                           a task found the account's slot taken
    smsdispatch_balance                                          credit at the last balance query
    smsdispatch_queue_depth{queue}                               messages in a Celery queue, all priorities
    smsdispatch_poll_lag_seconds{account,vendor,kind}            since the last successful poll
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
    from redis import Redis
    from sqlalchemy import Engine
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("dispatcher.metrics")

#: what a recorded result counts as, by (the vendor's outcome, the message's new state)
_PENDING_AFTER = {
    "retry": "retried",
    "defer": "deferred",
    "wait_window": "held_window",
    "pause_account": "held_pause",
}
_FINAL = {"sent": "sent", "failed": "failed", "expired": "expired", "unknown": "unknown"}
MESSAGE_COUNTERS = ("sent", "failed", "retried", "deferred", "held_window", "held_pause", "expired", "unknown")

#: seconds: vendors answer in tens of milliseconds to the 30 s read timeout
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)


class _Families:
    """This process's metric families, registered once in prometheus_client's default registry."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        labels = ["account", "vendor"]
        self.messages = {
            name: Counter(f"smsdispatch_messages_{name}", f"Messages {name.replace('_', ' by ')}", labels)
            for name in MESSAGE_COUNTERS
        }
        self.latency = Histogram(
            "smsdispatch_vendor_request_seconds",
            "Seconds a send request to the vendor took, by outcome (ok, or what its failure means)",
            [*labels, "outcome"],
            buckets=LATENCY_BUCKETS,
        )
        self.slot_waits = Counter(
            "smsdispatch_rate_limit_waits", "Times a send task found the account's request slot taken", labels
        )
        # The last value set by any process wins, also after that process has exited.
        self.balance = Gauge(
            "smsdispatch_balance", "Credit the vendor reported at the last balance query", labels,
            multiprocess_mode="mostrecent",
        )  # fmt: skip


_lock = threading.Lock()
_families: _Families | None = None
#: account → vendor, for the counts made where only the account is known
_vendors: dict[str, str] = {}


def _get() -> _Families:
    global _families
    if _families is None:
        with _lock:
            if _families is None:
                _families = _Families()
    return _families


def count_recorded(account: str, vendor: str, outcomes: Iterable[tuple[str, str]]) -> None:
    """Count recorded results, each given as (vendor outcome, new message state)."""
    counts: dict[str, int] = {}
    for outcome, state in outcomes:
        name = _FINAL.get(state) or (_PENDING_AFTER.get(outcome) if state == "pending" else None)
        if name:
            counts[name] = counts.get(name, 0) + 1
    if counts:
        families = _get()
        for name, n in counts.items():
            families.messages[name].labels(account, vendor).inc(n)


def know_accounts(vendors: Mapping[str, str]) -> None:
    """Tell this process each account's vendor, for counts made where only the account is known."""
    _vendors.update(vendors)


def count_moved(state: str, accounts: Iterable[str]) -> None:
    """Count messages a sweep moved without a vendor's reply: declared unknown, or expired."""
    if state not in ("unknown", "expired"):
        return
    counts: dict[str, int] = {}
    for account in accounts:
        counts[account] = counts.get(account, 0) + 1
    for account, n in counts.items():
        _get().messages[state].labels(account, _vendors.get(account, "")).inc(n)


def count_slot_wait(account: str, vendor: str) -> None:
    """Count one time a task found the account's request slot taken."""
    _get().slot_waits.labels(account, vendor).inc()


def set_balance(account: str, vendor: str, credit: float) -> None:
    """Keep the credit the vendor just reported."""
    _get().balance.labels(account, vendor).set(credit)


class RequestTimer:
    """Times one vendor request from its creation; ``done`` observes it under an outcome."""

    def __init__(self, account: str, vendor: str):
        self.account, self.vendor = account, vendor
        self.started = time.monotonic()

    def done(self, outcome: str) -> None:
        """Observe the seconds since the start: ``ok`` for a reply read, else the failure's outcome."""
        _get().latency.labels(self.account, self.vendor, outcome).observe(time.monotonic() - self.started)


class QueueDepthCollector:
    """Messages waiting in each Celery queue (Redis LLEN, priority sub-queues summed), read at scrape time."""

    def __init__(self, redis: Redis, queues: Sequence[str], priority_steps: Sequence[int], sep: str):
        self.redis, self.queues = redis, list(queues)
        # kombu keeps priority p of queue q in the list "q<sep>p"; priority 0 (the lowest step) is q itself.
        self.keys = {q: [q, *(f"{q}{sep}{p}" for p in priority_steps if p)] for q in self.queues}

    def depths(self) -> dict[str, int]:
        """LLEN of every queue's lists, summed per queue, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for keys in self.keys.values():
            for key in keys:
                pipe.llen(key)
        lengths = iter(pipe.execute())
        return {q: sum(next(lengths) for _ in keys) for q, keys in self.keys.items()}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "smsdispatch_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        try:
            depths = self.depths()
        except Exception as exc:  # noqa: BLE001 - one unreadable source must not fail the whole scrape
            log.warning("queue depth not read: %s", type(exc).__name__)
            return
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family


class PollLagCollector:
    """Seconds since each account's last successful poll (``poll_cursors.updated_at``), read at scrape time."""

    def __init__(self, engine: Engine, vendors: Mapping[str, str], now: Callable[[], datetime]):
        self.engine, self.vendors, self.now = engine, dict(vendors), now

    def lags(self) -> list[tuple[str, str, float]]:
        """(account, kind, seconds) for every configured account's cursors."""
        from sqlalchemy import select

        from dispatcher.models import PollCursor

        with self.engine.connect() as conn:
            rows = conn.execute(select(PollCursor.account, PollCursor.kind, PollCursor.updated_at)).all()
        now = self.now()
        return [
            (r.account, r.kind, max(0.0, (now - r.updated_at).total_seconds()))
            for r in rows
            if r.account in self.vendors
        ]

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "smsdispatch_poll_lag_seconds", "Seconds since the account's last successful poll",
            labels=["account", "vendor", "kind"],
        )  # fmt: skip
        try:
            lags = self.lags()
        except Exception as exc:  # noqa: BLE001 - one unreadable source must not fail the whole scrape
            log.warning("poll lag not read: %s", type(exc).__name__)
            return
        for account, kind, seconds in lags:
            family.add_metric([account, self.vendors[account], kind], seconds)
        yield family


def worker_registry(collectors: Iterable[Collector] = (), path: str | None = None) -> CollectorRegistry:
    """A registry of every process's counts in ``path`` (multiprocess mode) plus the given collectors."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    for collector in collectors:
        registry.register(collector)
    return registry


def serve(port: int, registry: CollectorRegistry, host: str = "0.0.0.0") -> WSGIServer:
    """Serve ``/metrics`` of the registry on a daemon thread; return the server (``shutdown()`` stops it)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def enable_multiprocess(path: str) -> None:
    """Count in files under ``path`` from now on, in this process and the processes it forks.

    A previous run's files are removed first (they would add up). Call it before the fork and
    before any family is made.
    """
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        # prometheus_client chose its mode when first imported, and the celery command imports
        # its plugins (Flower, which imports prometheus_client) before a worker can name the
        # directory: choose again, as it would have with the variable set.
        values.ValueClass = values.get_value_class()


def process_exited(pid: int, path: str | None = None) -> None:
    """Drop the live gauges of a pool process that exited (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    if path or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid, path)


class MetricsEndpoint:
    """An ASGI app answering with this process's metrics, for a web app to route ``/metrics`` to.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) it merges every process's files,
    otherwise it serves this process's registry.
    """

    def __init__(self) -> None:
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from prometheus_client import REGISTRY, make_asgi_app

            multi = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            self._app = make_asgi_app(worker_registry() if multi else REGISTRY)
        await self._app(scope, receive, send)
