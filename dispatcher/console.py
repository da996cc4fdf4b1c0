"""Rendering for the operator's commands: live progress of a job, of a CSV being read, and tables.

Bars and tables (rich) on a terminal; plain lines otherwise, one per change, so a log or a
pipe reads the same facts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress_bar import ProgressBar
from rich.table import Table

from dispatcher.models import JobState, MessageState

if TYPE_CHECKING:
    from dispatcher.operator import AccountOverview

#: the order states are shown in, from waiting to done
STATES = [s.value for s in MessageState]
#: states a message may still leave: while a job has any, it is not done
OPEN_STATES = (MessageState.PENDING.value, MessageState.SENDING.value)
STYLE = {"pending": "yellow", "sending": "cyan", "sent": "green", "delivered": "bright_green",
         "failed": "red", "rejected": "magenta", "unknown": "bright_red", "expired": "grey50",
         "canceled": "grey70"}  # fmt: skip


def job_done(status: dict[str, Any]) -> bool:
    """Whether a job has nothing left to do: no row pending or sending, and its ingest over."""
    counts = status["counts"]
    return status["state"] != JobState.INGESTING.value and not any(counts.get(s, 0) for s in OPEN_STATES)


def counts_line(status: dict[str, Any]) -> str:
    """One line of a job's progress: its state and every non-zero count."""
    counts = " ".join(f"{s}={status['counts'][s]}" for s in STATES if status["counts"].get(s))
    return f"{status['job']} {status['state']} {counts or 'no messages'}"


def watch_job(
    fetch: Callable[[], dict[str, Any] | None],
    interval: float,
    console: Console,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show a job's progress until it is done (0), it vanishes (1) or Ctrl-C (130)."""
    try:
        if console.is_terminal:
            return _watch_live(fetch, interval, console, sleep)
        return _watch_lines(fetch, interval, console, sleep)
    except KeyboardInterrupt:
        console.print("stopped watching; the job goes on")
        return 130


def _watch_lines(
    fetch: Callable[[], dict[str, Any] | None], interval: float, console: Console, sleep: Callable[[float], None]
) -> int:
    last = None
    while True:
        status = fetch()
        if status is None:
            return 1
        line = counts_line(status)
        if line != last:
            console.print(line, highlight=False, soft_wrap=True)
            last = line
        if job_done(status):
            return 0
        sleep(interval)


def _watch_live(
    fetch: Callable[[], dict[str, Any] | None], interval: float, console: Console, sleep: Callable[[float], None]
) -> int:
    status = fetch()
    if status is None:
        return 1
    with Live(job_panel(status), console=console, refresh_per_second=4, transient=False) as live:
        while not job_done(status):
            sleep(interval)
            status = fetch()
            if status is None:
                return 1
            live.update(job_panel(status))
    return 0


def job_panel(status: dict[str, Any]) -> Group:
    """A job's progress: an overall bar (rows in a final state) and one bar per state."""
    counts = status["counts"]
    total = sum(counts.values()) or 1
    finished = total - sum(counts.get(s, 0) for s in OPEN_STATES)
    table = Table.grid(padding=(0, 1))
    for _ in range(3):
        table.add_column()
    table.add_row("done", ProgressBar(total=total, completed=finished, width=40), f"{finished}/{total}")
    for state in STATES:
        n = counts.get(state, 0)
        if n:
            bar = ProgressBar(total=total, completed=n, width=40, complete_style=STYLE[state])
            table.add_row(state, bar, str(n))
    title = f"job {status['job']}  {status['account'] or '-'}  {status['state']}"
    return Group(title, table)


class Reading:
    """A binary file read line by line, reporting bytes and rows to a progress bar."""

    def __init__(self, handle: IO[bytes], progress: Progress | None, task: TaskID | None):
        self.handle, self.progress, self.task = handle, progress, task
        self.rows = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self.handle:
            if self.progress is not None and self.task is not None:
                self.progress.advance(self.task, len(line))
            yield line

    def count(self, recipients: Iterable[Any]) -> Iterator[Any]:
        """Pass recipients on, counting them in the bar's 'rows read'."""
        for row in recipients:
            self.rows += 1
            if self.progress is not None and self.task is not None and self.rows % 500 == 0:
                self.progress.update(self.task, rows=self.rows)
            yield row


@contextmanager
def reading_progress(handle: IO[bytes], size: int, console: Console) -> Iterator[Reading]:
    """A bar over the file's bytes, with rows read, on ``console`` when it is a terminal."""
    if not console.is_terminal:
        yield Reading(handle, None, None)
        return
    columns = (
        TextColumn("{task.fields[rows]:>10,} rows read"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("submit", total=size, rows=0)
        reading = Reading(handle, progress, task)
        yield reading
        progress.update(task, rows=reading.rows, completed=size)


def jobs_table(jobs: Sequence[dict[str, Any]]) -> Table:
    """Recent jobs, one row each, with their counts per state."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("job", "account", "state", "created", "recipients", "counts"):
        table.add_column(name, no_wrap=name != "counts")
    for job in jobs:
        counts = ", ".join(f"{s} {job['counts'][s]}" for s in STATES if job["counts"].get(s))
        state = job["state"] + (f" ({job['reason']})" if job["reason"] and job["state"] != "accepted" else "")
        table.add_row(job["id"], job["account"] or "-", state, _when(job["created_at"]), str(job["recipients"]),
                      counts or "-")  # fmt: skip
    return table


def accounts_table(overview: Sequence[AccountOverview]) -> Table:
    """Accounts: vendor, window, pause, last balance, messages waiting."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("account", "vendor", "window", "paused", "balance", "waiting"):
        table.add_column(name, justify="right" if name == "waiting" else "left")
    for row in overview:
        window = f"{row['window']} " + (
            "open" if row["window_open"] else f"closed, opens {_when(row['next_opening'])}"
        )
        paused = "no"
        if row["paused"]:
            paused = f"until {_when(row['paused_until'])}: {row['pause_reason'] or 'no reason'}"
        balance = "-" if row["balance"] is None else f"{row['balance']:g} at {_when(row['balance_at'])}"
        table.add_row(row["account"], row["vendor"], window, paused, balance, str(row["waiting"]))
    return table


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")
