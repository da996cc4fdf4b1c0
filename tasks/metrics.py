"""The worker's metrics: a multiprocess directory for the pool, and ``/metrics`` on its port.

At start (``worker_init``, before the pool forks) the main process empties the directory named by
``PROMETHEUS_MULTIPROC_DIR`` (or makes one of its own and names it there, for the pool processes
to inherit); once the worker is ready it serves ``/metrics`` on ``DISPATCHER_METRICS_PORT``
(9808; 0 serves none): every
pool process's counts merged, plus queue depth and poll lag read at scrape time. Only a prefork
pool is served: the embedded worker (threads, inside another program) leaves that program's
process alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from dispatcher import metrics
from dispatcher.errors import ConfigError

log = logging.getLogger("tasks.metrics")

#: kombu's Redis transport defaults, when the configuration names none
KOMBU_PRIORITY_STEPS = [0, 3, 6, 9]
KOMBU_SEP = "\x06\x16"

_server: Any = None
#: the worker and runtime to serve metrics for, once the worker is ready
_to_serve: tuple[Any, Any, str] | None = None
#: a directory this worker made (removed when it stops), as opposed to one it was given
_own_dir: str | None = None


def connect() -> None:
    """Connect the worker's metrics to its signals (after the runtime's own, which check the config)."""
    worker_init.connect(_on_worker_init, weak=False, dispatch_uid="smsdispatch.metrics.init")
    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="smsdispatch.metrics.ready")
    worker_process_init.connect(_on_process_init, weak=False, dispatch_uid="smsdispatch.metrics.fork")
    worker_process_shutdown.connect(_on_process_exit, weak=False, dispatch_uid="smsdispatch.metrics.exit")
    worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="smsdispatch.metrics.stop")


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    from tasks.runtime import runtime

    try:
        rt = runtime()
    except ConfigError:
        return  # the runtime's own handler stops the worker and says why
    # Sweeps count rows by account; pool processes inherit this map.
    metrics.know_accounts({key: config.vendor for key, config in rt.accounts.items()})
    if sender is not None:
        start(sender, rt)


def _on_process_init(**_: Any) -> None:
    forget_server()


def _on_process_exit(pid: int | None = None, **_: Any) -> None:
    process_exited(pid or os.getpid())


def _on_worker_shutdown(**_: Any) -> None:
    stop()


def start(worker: Any, rt: Any) -> None:
    """Set up the pool's metrics directory (before the pool forks), for a prefork worker."""
    global _own_dir
    pool = get_implementation(worker.pool_cls)
    if not (isinstance(pool, type) and issubclass(pool, PreforkPool)):
        return
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = _own_dir = tempfile.mkdtemp(prefix="smsdispatch-metrics-")
    metrics.enable_multiprocess(path)
    global _to_serve
    # Served once the worker is ready: by then its logging (JSON or text) is set up, so a taken
    # port is reported in the worker's own format.
    _to_serve = (worker, rt, path)


def _on_worker_ready(**_: Any) -> None:
    if _to_serve is not None:
        serve(*_to_serve)


def serve(worker: Any, rt: Any, path: str) -> None:
    """Serve ``/metrics`` on the configured port (0: none); a taken port is logged, not fatal."""
    global _server
    port = rt.settings.metrics_port
    if not port:
        return
    collectors = [c for c in (_queue_depth(worker.app, rt.redis), _poll_lag(rt)) if c is not None]
    registry = metrics.worker_registry(collectors, path)
    try:
        _server = metrics.serve(port, registry)
    except OSError as exc:
        # Metrics are worth less than sending: a taken port is reported, the worker still runs.
        log.error("metrics not served on port %s: %s", port, exc)
        return
    log.info("metrics on :%s/metrics", port)


def _queue_depth(app: Any, redis: Any) -> Any | None:
    if redis is None:
        return None
    options = app.conf.broker_transport_options or {}
    queues = [q.name for q in app.conf.task_queues or ()] or [app.conf.task_default_queue]
    steps = options.get("priority_steps", KOMBU_PRIORITY_STEPS)
    return metrics.QueueDepthCollector(redis, queues, steps, options.get("sep", KOMBU_SEP))


def _poll_lag(rt: Any) -> Any:
    vendors = {key: config.vendor for key, config in rt.accounts.items()}
    return metrics.PollLagCollector(rt.engine, vendors, rt.clock.now)


def forget_server() -> None:
    """In a pool process: close the listening socket inherited from the main process."""
    if _server is not None:
        _server.socket.close()


def process_exited(pid: int) -> None:
    """A pool process is exiting: its live gauges go (its counts stay in the sums)."""
    metrics.process_exited(pid)


def stop() -> None:
    """Stop serving, and remove the directory if this worker made it."""
    global _server, _own_dir
    if _server is not None:
        _server.shutdown()
        _server.server_close()
        _server = None
    if _own_dir:
        shutil.rmtree(_own_dir, ignore_errors=True)
        _own_dir = None
