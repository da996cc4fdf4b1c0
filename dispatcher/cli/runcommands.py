"""The commands that run a service until stopped, or a run of work: ``worker`` (a Celery worker,
restarted when it dies), ``webhooks``, ``sandbox``, ``produce`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

#: seconds a worker must have run for its next crash to restart it at once again
WORKER_STABLE_AFTER = 60.0
#: the queues a worker consumes unless its arguments say otherwise
DEFAULT_WORKER_ARGS = ["-Q", "jobs,send,poll"]


def worker(args: argparse.Namespace) -> int:
    """Run ``celery -A tasks worker`` as a child; restart it with backoff until told to stop."""
    import signal
    import subprocess
    import time

    extra = args.celery_args[1:] if args.celery_args[:1] == ["--"] else args.celery_args
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", *(extra or DEFAULT_WORKER_ARGS)]
    state: dict[str, Any] = {"stopping": False, "child": None}

    def forward(signum: int, _frame: Any) -> None:
        # A stop asked of the supervisor is a clean stop of the worker: pass it on, restart nothing.
        state["stopping"] = True
        if state["child"] is not None and state["child"].poll() is None:
            state["child"].send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    delay = 1.0
    while not state["stopping"]:
        started = time.monotonic()
        state["child"] = child = subprocess.Popen(command)
        if state["stopping"]:  # the signal came between the check and the start
            child.send_signal(signal.SIGTERM)
        code = child.wait()
        if state["stopping"] or code == 0:
            print(f"dispatcher worker: the worker stopped (exit {code})", file=sys.stderr, flush=True)
            return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
        if time.monotonic() - started > WORKER_STABLE_AFTER:
            delay = 1.0
        print(f"dispatcher worker: the worker exited (code {code}); restarting in {delay:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        deadline = time.monotonic() + delay
        while not state["stopping"] and time.monotonic() < deadline:
            time.sleep(0.2)
        delay = min(delay * 2, args.backoff_max)
    return 0


def webhooks(args: argparse.Namespace) -> int:
    """``dispatcher webhooks``: serve the app vendors push replies and reports to.

    ``--workers N`` serves it from N processes, each with its own connections; uvloop and
    httptools parse and answer HTTP in C, so the app's time goes to storing what is pushed.
    """
    import uvicorn

    # No access log: each push URL carries its account's secret.
    options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": "warning", "access_log": False}
    options.update(loop="uvloop", http="httptools")
    if args.workers > 1:
        uvicorn.run(f"{__name__}:webhook_app", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(webhook_app(), **options)
    return 0


def webhook_app() -> Any:
    """The webhook app over this process's runtime (uvicorn calls it in each worker process)."""
    from dispatcher.webhooks import make_app
    from tasks.runtime import runtime

    rt = runtime()
    return make_app(rt.engine, rt.accounts, rt.clock)


def sandbox(args: argparse.Namespace) -> int:
    """``dispatcher sandbox``: serve the simulated vendor APIs and write their accounts file."""
    import signal
    import threading

    from dispatcher.clock import make_clock
    from dispatcher.config import Settings
    from dispatcher.sandbox.core import Faults
    from dispatcher.sandbox.world import SECRETS, build_world
    from dispatcher.vendors import VENDOR_KEYS

    # Stop on SIGINT and SIGTERM alike, even where SIGINT came in ignored (a background job of a
    # non-interactive shell inherits it so, and Python then raises no KeyboardInterrupt).
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    down = {v.strip() for v in args.maintenance.split(",") if v.strip()}
    faults = {
        vendor: Faults(args.error_rate, vendor in down, args.latency, args.malformed_rate)
        for vendor in VENDOR_KEYS
    }
    clock = make_clock(Settings().clock_file)
    world = build_world(
        clock, faults=faults, webhook_url=args.webhook_url, port=args.port, host=args.host,
        public_url=args.public_url,
    )  # fmt: skip
    # Written whole, then renamed into place: whoever waits for the file never reads half of it.
    out = Path(args.accounts_out)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(world.accounts_toml())
    partial.replace(out)
    print(f"sandbox vendors on {world.url('<vendor>')}; accounts in {args.accounts_out}")
    print("point the dispatcher at them with:")
    print(f"  export DISPATCHER_ACCOUNTS={args.accounts_out}")
    for name, value in SECRETS.items():
        print(f"  export {name}={value}")
    while not stopping.wait(5):
        print(
            f"requests {len(world.ledger.requests)}, phones sent twice {len(world.ledger.duplicates())}, "
            f"violations {len(world.ledger.violations)}",
            flush=True,
        )
    world.stop()
    return 0


def produce(args: argparse.Namespace) -> int:
    """``dispatcher produce``: drop sample jobs for the sandbox's customers on the jobs queue."""
    from tasks.producer import produce

    return produce(recipients=args.recipients, every=args.every, rounds=args.rounds)


def demo(args: argparse.Namespace) -> int:
    """``dispatcher demo``: run a whole job end to end on the embedded default."""
    from tasks.demo import run_demo

    return run_demo(recipients=args.recipients)
