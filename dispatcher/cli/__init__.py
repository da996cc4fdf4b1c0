"""The ``dispatcher`` command: migrate, submit, status, check-config, worker, optout, webhooks, sandbox,
produce, demo, and the operator's jobs, cancel, accounts, pause and resume."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dispatcher.errors import ConfigError
from dispatcher.logs import configure_cli


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        configure_cli(logging.WARNING)
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create or upgrade the database tables")
    p.set_defaults(run=_migrate)

    p = sub.add_parser("submit", help="store a job from a JSON file or a CSV of recipients")
    p.add_argument("file", help="job.json, or recipients.csv with a 'phone' column ('-' reads JSON from stdin)")
    p.add_argument("--account", help="account key (CSV; overrides the JSON's)")
    p.add_argument("--text", help="text template, e.g. 'Hola {name}' (CSV; overrides the JSON's)")
    p.add_argument("--idempotency-key")
    p.add_argument("--send-at", help="ISO time with offset, e.g. 2026-11-23T09:00:00-05:00")
    p.add_argument("--priority", choices=["bulk", "otp"])
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="vendor option")
    p.set_defaults(run=_submit)

    p = sub.add_parser("status", help="a job's counts by state")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", action="store_true", help="show progress by state until the job is done")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between two looks (--watch)")
    p.set_defaults(run=_status)

    p = sub.add_parser("resend-unknown", help="send a job's unknown messages again, after confirmation")
    p.add_argument("job")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--by", help="who decides, recorded in each message's history (default: the OS user)")
    p.set_defaults(run=_resend_unknown)

    p = sub.add_parser("check-config", help="read the accounts file and report the first problem")
    p.set_defaults(run=_check_config)

    p = sub.add_parser("worker", help="run a Celery worker and start it again whenever it dies")
    p.add_argument("--backoff-max", type=float, default=60.0, help="longest wait before a restart (s)")
    p.add_argument("celery_args", nargs=argparse.REMAINDER, help="after --: arguments of 'celery worker'")
    p.set_defaults(run=_worker)

    p = sub.add_parser("optout", help="add a phone to an account's opt-out list, remove it, or list them")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("account")
    p.add_argument("phone", nargs="?", help="E.164, or national in the account's country (add, remove)")
    p.set_defaults(run=_optout)

    p = sub.add_parser("webhooks", help="serve the app vendors push replies and reports to")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(run=_webhooks)

    p = sub.add_parser("sandbox", help="serve the five simulated vendor APIs on loopback")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument(
        "--public-url", help="base URL the dispatcher reaches the sandbox at (e.g. http://sandbox:8090)"
    )
    p.add_argument("--webhook-url", help="where simulated vendors push (e.g. http://127.0.0.1:8080)")
    p.add_argument("--accounts-out", default="sandbox-accounts.toml", help="accounts file to write")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered HTTP 500")
    p.add_argument("--malformed-rate", type=float, default=0.0, help="share answered with an HTML error page")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before every answer (beyond a "
                   "client's read timeout this is a read timeout)")  # fmt: skip
    p.add_argument("--maintenance", default="", help="comma list of vendors answering 'in maintenance'")
    p.set_defaults(run=_sandbox)

    p = sub.add_parser("produce", help="drop sample jobs for the sandbox's customers on the jobs queue")
    p.add_argument("--recipients", type=int, default=50, help="recipients of each job")
    p.add_argument("--every", type=float, default=30.0, help="seconds between two rounds of jobs")
    p.add_argument("--rounds", type=int, default=10, help="rounds of jobs to drop (0: until stopped)")
    p.set_defaults(run=_produce)

    _operator_parsers(sub)

    p = sub.add_parser("demo", help="run a whole job end to end on the embedded default")
    p.add_argument("--recipients", type=int, default=2500, help="recipients of the Colombian job")
    p.set_defaults(run=_demo)
    return parser


def _migrate(args: argparse.Namespace) -> int:
    from dispatcher.config import Settings
    from dispatcher.db import migrate

    url = Settings().database_url
    migrate(url)
    print(f"database ready: {_safe_url(url)}")
    return 0


class SubmitError(Exception):
    """A file ``submit`` cannot read; the message says which and why, in one line."""


def _submit(args: argparse.Namespace) -> int:
    try:
        overrides = _header_overrides(args)
        if args.file.endswith(".csv"):
            return _submit_csv(args.file, overrides)
        return _submit_json(args.file, overrides)
    except SubmitError as exc:
        print(f"dispatcher submit: {exc}", file=sys.stderr)
        return 2


def _submit_json(name: str, overrides: dict[str, Any]) -> int:
    from dispatcher.jobs import ingest_job
    from tasks.runtime import runtime

    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        job: Any = json.loads(data.decode("utf-8-sig"))
    except OSError as exc:
        raise SubmitError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise SubmitError(f"{name}: not UTF-8 (byte {exc.start}: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise SubmitError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise SubmitError(f"{name}: JSON nested too deeply to read") from None
    if isinstance(job, dict):
        job.update(overrides)
    rt = runtime()
    return _report(ingest_job(rt.engine, rt.accounts, job, rt.clock.now()))


def _submit_csv(name: str, overrides: dict[str, Any]) -> int:
    from dispatcher.jobs import ingest_stream
    from tasks.runtime import runtime

    try:
        handle = open(name, "rb")  # noqa: SIM115 - closed below; lines are decoded one by one
    except OSError as exc:
        raise SubmitError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    with handle, _csv_progress(handle) as reading:
        recipients = CsvRecipients(reading, name)
        rt = runtime()
        header = {"text": "", "account": "", **overrides}
        result = ingest_stream(rt.engine, rt.accounts, header, reading.count(recipients), rt.clock.now())
    if recipients.problem:
        print(result.job_id)
        raise SubmitError(f"{recipients.problem}; job {result.job_id} stored as rejected")
    return _report(result)


def _report(result: Any) -> int:
    if result.state == "accepted" and result.created:
        _kick(result.account)
    print(result.job_id)
    if result.reason:
        print(f"rejected: {result.reason}", file=sys.stderr)
        return 1
    return 0


def _kick(account: str | None) -> None:
    from tasks.dispatch import BrokerQueue

    try:
        BrokerQueue().release(account)
    except Exception as exc:  # noqa: BLE001 - the job is stored; beat queues it later
        print(f"stored; not queued yet ({type(exc).__name__}): beat will queue it", file=sys.stderr)


def _header_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name in ("account", "text", "idempotency_key", "send_at", "priority"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    if args.option:
        bad = [item for item in args.option if "=" not in item]
        if bad:
            raise SubmitError(f"--option {bad[0]!r}: give NAME=VALUE")
        overrides["options"] = dict(item.split("=", 1) for item in args.option)
    return overrides


class CsvRecipients:
    """Recipients streamed from a CSV: 'phone' plus any other columns as variables.

    Lines are decoded one at a time (a UTF-8 BOM, as spreadsheets write, is dropped), so a
    million rows never sit in memory and a bad line is named by its number. A line that cannot
    be read mid-file ends the stream with ``SourceError``; ``problem`` keeps why.
    """

    def __init__(self, handle: Any, name: str):
        self.name = name
        self.problem: str | None = None
        self._line = 0
        self._reader = csv.DictReader(self._lines(handle))
        try:
            fields = self._reader.fieldnames
        except (SubmitError, csv.Error) as exc:
            raise SubmitError(self._say(exc)) from None
        if not fields or "phone" not in fields:
            found = ", ".join(repr(f) for f in (fields or [])[:5]) or "no header"
            raise SubmitError(f"{name}: the CSV needs a 'phone' column (found {found})")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from dispatcher.errors import SourceError

        try:
            for row in self._reader:
                phone = row.pop("phone")
                yield {"phone": phone or "", "vars": {k: v for k, v in row.items() if k and v is not None}}
        except (SubmitError, csv.Error) as exc:
            self.problem = self._say(exc)
            raise SourceError(self.problem) from None

    def _lines(self, handle: Any) -> Iterator[str]:
        for raw in handle:
            self._line += 1
            try:
                yield raw.decode("utf-8-sig" if self._line == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise SubmitError(f"not UTF-8 (byte {exc.start + 1} of the line: {exc.reason})") from None

    def _say(self, exc: Exception) -> str:
        if isinstance(exc, csv.Error) and "field larger than field limit" in str(exc):
            exc = SubmitError(f"a field is longer than {csv.field_size_limit()} characters")
        return f"{self.name} line {self._line}: {exc}"


def _status(args: argparse.Namespace) -> int:
    from dispatcher.config import Settings
    from dispatcher.db import make_engine
    from dispatcher.status import format_status, job_status

    engine = make_engine(Settings().database_url)
    status = job_status(engine, args.job)
    if status is None:
        print(f"no job {args.job}", file=sys.stderr)
        return 1
    if args.watch:
        from rich.console import Console

        from dispatcher.console import watch_job

        return watch_job(lambda: job_status(engine, args.job), args.interval, Console(highlight=False))
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _resend_unknown(args: argparse.Namespace) -> int:
    from dispatcher.resend import command

    return command(args.job, args.yes, args.by)


def _csv_progress(handle: Any) -> Any:
    """Progress of a CSV being read (rows, and a bar over its bytes) on stderr, when it is a terminal."""
    import os

    from rich.console import Console

    from dispatcher.console import reading_progress

    return reading_progress(handle, os.fstat(handle.fileno()).st_size, Console(stderr=True))


def _operator_parsers(sub: Any) -> None:
    p = sub.add_parser("jobs", help="recent jobs with their counts per state")
    p.add_argument("--account")
    p.add_argument("--state", help="accepted, rejected, ingesting or canceled")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(run=_operator("jobs"))
    p = sub.add_parser("cancel", help="cancel a job: what waits is canceled, what is in flight finishes")
    p.add_argument("job")
    p.set_defaults(run=_operator("cancel"))
    p = sub.add_parser("accounts", help="each account's window, pause, last balance and messages waiting")
    p.set_defaults(run=_operator("accounts"))
    p = sub.add_parser("pause", help="hold an account's messages until resumed (or --until)")
    p.add_argument("account")
    p.add_argument("--reason")
    p.add_argument("--until", help="ISO time with offset; without it, until 'dispatcher resume'")
    p.set_defaults(run=_operator("pause"))
    p = sub.add_parser("resume", help="end an account's pause and queue what it held at once")
    p.add_argument("account")
    p.set_defaults(run=_operator("resume"))


def _operator(name: str) -> Any:
    """Run a command of ``dispatcher.opscommands`` with this process's runtime and the broker's release."""

    def run(args: argparse.Namespace) -> int:
        from dispatcher import opscommands
        from tasks.runtime import runtime

        return int(getattr(opscommands, name)(args, runtime, _kick))

    return run


def _check_config(args: argparse.Namespace) -> int:
    from dispatcher.config import Settings, load_accounts

    settings = Settings()
    accounts = load_accounts(settings.accounts)
    from dispatcher.vendors import adapter_for
    from dispatcher.vendors.push import PushReceiver

    for key, config in accounts.items():
        print(f"{key}: {config.vendor} via {config.account.base_url}, window {config.policy.window.name}")
        if isinstance(adapter_for(config.vendor), PushReceiver) and not config.webhook_secret:
            print(f"warning: {key}: no webhook_secret, so no push URL; {config.vendor} pushes get 403")
    return 0


def _optout(args: argparse.Namespace) -> int:
    from dispatcher.errors import BadNumber
    from dispatcher.optouts import change_opt_out, list_opt_outs
    from tasks.runtime import runtime

    rt = runtime()
    if args.action == "list":
        print("\n".join(list_opt_outs(rt.engine, rt.accounts, args.account)) or f"{args.account}: no opt-outs")
        return 0
    if not args.phone:
        print(f"dispatcher optout {args.action}: give the PHONE", file=sys.stderr)
        return 2
    try:
        print(change_opt_out(rt.engine, rt.accounts, args.action, args.account, args.phone, rt.clock.now()))
    except BadNumber as exc:
        print(f"dispatcher optout: {exc}", file=sys.stderr)
        return 2
    return 0


#: seconds a worker must have run for its next crash to restart it at once again
WORKER_STABLE_AFTER = 60.0
#: the queues a worker consumes unless its arguments say otherwise
DEFAULT_WORKER_ARGS = ["-Q", "jobs,send,poll"]


def _worker(args: argparse.Namespace) -> int:
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


def _webhooks(args: argparse.Namespace) -> int:
    import uvicorn

    from dispatcher.webhooks import make_app
    from tasks.runtime import runtime

    rt = runtime()
    # No access log: each push URL carries its account's secret.
    app = make_app(rt.engine, rt.accounts, rt.clock)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
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
    Path(args.accounts_out).write_text(world.accounts_toml())
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


def _produce(args: argparse.Namespace) -> int:
    from tasks.producer import produce

    return produce(recipients=args.recipients, every=args.every, rounds=args.rounds)


def _demo(args: argparse.Namespace) -> int:
    from tasks.demo import run_demo

    return run_demo(recipients=args.recipients)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
