"""The ``dispatcher`` command: migrate, submit, status, check-config, worker, optout, webhooks, sandbox,
produce, demo, and the operator's jobs, cancel, accounts, pause and resume."""

# This module is the parser and the dispatch; the commands' bodies live beside it by concern
# (jobcommands, runcommands, setupcommands; the operator's in dispatcher.opscommands).

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from dispatcher.cli import jobcommands, runcommands, setupcommands
from dispatcher.errors import ConfigError
from dispatcher.logs import configure_cli

__all__ = ["main"]


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
    # The groups are added in the order the help has always listed the commands in.
    _job_parsers(sub)
    _service_parsers(sub)
    _operator_parsers(sub)
    p = sub.add_parser("demo", help="run a whole job end to end on the embedded default")
    p.add_argument("--recipients", type=int, default=2500, help="recipients of the Colombian job")
    p.set_defaults(run=runcommands.demo)
    return parser


def _job_parsers(sub: Any) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the database tables")
    p.set_defaults(run=setupcommands.migrate)

    p = sub.add_parser("submit", help="store a job from a JSON file or a CSV of recipients")
    p.add_argument("file", help="job.json, or recipients.csv with a 'phone' column ('-' reads JSON from stdin)")
    p.add_argument("--account", help="account key (CSV; overrides the JSON's)")
    p.add_argument("--text", help="text template, e.g. 'Hola {name}' (CSV; overrides the JSON's)")
    p.add_argument("--idempotency-key")
    p.add_argument("--send-at", help="ISO time with offset, e.g. 2026-11-23T09:00:00-05:00")
    p.add_argument("--priority", choices=["bulk", "otp"])
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="vendor option")
    p.set_defaults(run=jobcommands.submit)

    p = sub.add_parser("status", help="a job's counts by state")
    p.add_argument("job")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", action="store_true", help="show progress by state until the job is done")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between two looks (--watch)")
    p.set_defaults(run=jobcommands.status)

    p = sub.add_parser("resend-unknown", help="send a job's unknown messages again, after confirmation")
    p.add_argument("job")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--by", help="who decides, recorded in each message's history (default: the OS user)")
    p.set_defaults(run=jobcommands.resend_unknown)

    p = sub.add_parser("check-config", help="read the accounts file and report the first problem")
    p.set_defaults(run=setupcommands.check_config)


def _service_parsers(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a Celery worker and start it again whenever it dies")
    p.add_argument("--backoff-max", type=float, default=60.0, help="longest wait before a restart (s)")
    p.add_argument("celery_args", nargs=argparse.REMAINDER, help="after --: arguments of 'celery worker'")
    p.set_defaults(run=runcommands.worker)

    p = sub.add_parser("optout", help="add a phone to an account's opt-out list, remove it, or list them")
    p.add_argument("action", choices=["add", "remove", "list"])
    p.add_argument("account")
    p.add_argument("phone", nargs="?", help="E.164, or national in the account's country (add, remove)")
    p.set_defaults(run=setupcommands.optout)

    p = sub.add_parser("webhooks", help="serve the app vendors push replies and reports to")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1, help="processes serving the app (default 1)")
    p.set_defaults(run=runcommands.webhooks)

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
    p.set_defaults(run=runcommands.sandbox)

    p = sub.add_parser("produce", help="drop sample jobs for the sandbox's customers on the jobs queue")
    p.add_argument("--recipients", type=int, default=50, help="recipients of each job")
    p.add_argument("--every", type=float, default=30.0, help="seconds between two rounds of jobs")
    p.add_argument("--rounds", type=int, default=10, help="rounds of jobs to drop (0: until stopped)")
    p.set_defaults(run=runcommands.produce)


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

        return int(getattr(opscommands, name)(args, runtime, jobcommands.kick))

    return run
