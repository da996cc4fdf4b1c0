"""The job commands: ``submit`` (a JSON job, or a CSV of recipients streamed row by row), ``status``
and ``resend-unknown``.

A stored job that is accepted is queued at once through the broker (``kick``); when the broker is
away the job stays stored and beat queues it later.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class SubmitError(Exception):
    """A file ``submit`` cannot read; the message says which and why, in one line."""


def submit(args: argparse.Namespace) -> int:
    """``dispatcher submit``: store a job from a JSON file (or stdin) or a CSV of recipients."""
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
        kick(result.account)
    print(result.job_id)
    if result.reason:
        print(f"rejected: {result.reason}", file=sys.stderr)
        return 1
    return 0


def kick(account: str | None) -> None:
    """Queue an account's due batches now, through the broker; a broker away only delays them."""
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


def status(args: argparse.Namespace) -> int:
    """``dispatcher status``: a job's counts by state, once, as JSON, or watched until it is done."""
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


def resend_unknown(args: argparse.Namespace) -> int:
    """``dispatcher resend-unknown``: send a job's unknown messages again, once confirmed."""
    from dispatcher.resend import command

    return command(args.job, args.yes, args.by)


def _csv_progress(handle: Any) -> Any:
    """Progress of a CSV being read (rows, and a bar over its bytes) on stderr, when it is a terminal."""
    import os

    from rich.console import Console

    from dispatcher.console import reading_progress

    return reading_progress(handle, os.fstat(handle.fileno()).st_size, Console(stderr=True))
