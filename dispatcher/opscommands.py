"""The operator's commands (jobs, cancel, accounts, pause, resume), as ``dispatcher.cli`` runs them.

Each takes the parsed arguments, a ``runtime()`` factory (engine, accounts, clock) and
``release(account)``, which queues an account's due batches on the broker; both come from the
command line's side, so nothing here reaches the broker's code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console

from dispatcher.console import accounts_table, jobs_table
from dispatcher.operator import accounts_overview, cancel_job, list_jobs, pause_account, resume_account

Runtime = Callable[[], Any]
Release = Callable[[str | None], None]
#: tables are printed this wide at most, whatever the terminal (a pipe has none)
TABLE_WIDTH = 200


def jobs(args: argparse.Namespace, runtime: Runtime, release: Release) -> int:
    """Print the recent jobs with their counts per state."""
    from dispatcher.config import Settings
    from dispatcher.db import make_engine

    # The database alone: no accounts file needed to look.
    found = list_jobs(make_engine(Settings().database_url), args.account, args.state, args.limit)
    Console(highlight=False, width=TABLE_WIDTH).print(jobs_table(found) if found else "no jobs")
    return 0


def cancel(args: argparse.Namespace, runtime: Runtime, release: Release) -> int:
    """Cancel a job and say how many rows were canceled and how many are still in flight."""
    rt = runtime()
    result = cancel_job(rt.engine, args.job, rt.clock.now())
    if not result.found:
        print(f"no job {args.job}", file=sys.stderr)
        return 1
    flight = f"{result.in_flight} in flight (they finish)"
    print(f"job {result.job_id} {result.state}: {result.canceled} canceled, {flight}")
    return 0


def accounts(args: argparse.Namespace, runtime: Runtime, release: Release) -> int:
    """Print each account's vendor, window, pause, last balance and messages waiting."""
    rt = runtime()
    overview = accounts_overview(rt.engine, rt.accounts, rt.clock.now())
    Console(highlight=False, width=TABLE_WIDTH).print(accounts_table(overview))
    return 0


def pause(args: argparse.Namespace, runtime: Runtime, release: Release) -> int:
    """Pause an account until --until, or until resumed."""
    rt = runtime()
    if args.account not in rt.accounts:
        print(f"dispatcher pause: no account {args.account!r} in the accounts file", file=sys.stderr)
        return 2
    until = _aware(args.until) if args.until else None
    if args.until and until is None:
        print(
            "dispatcher pause: --until needs an ISO time with offset, e.g. 2026-12-02T08:00:00-05:00",
            file=sys.stderr,
        )
        return 2
    until = pause_account(rt.engine, args.account, until, args.reason, rt.clock.now())
    print(f"{args.account} paused until {until.isoformat()}")
    return 0


def resume(args: argparse.Namespace, runtime: Runtime, release: Release) -> int:
    """End an account's pause and queue its due batches at once."""
    rt = runtime()
    waiting = resume_account(rt.engine, args.account, rt.clock.now())
    print(f"{args.account} resumed; {waiting} messages waiting")
    release(args.account)  # now, not at beat's next sweep
    return 0


def _aware(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
