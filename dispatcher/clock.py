"""Where 'now' comes from.

Window and retry logic take ``now`` as an argument; only the edges (tasks, CLI) ask a clock.
``SystemClock`` is the wall clock. ``FileClock`` adds an offset read from a file, so a demo or a
test can move a running worker to 21:30 in Bogota without sleeping; the sandbox reads the same
file so both sides agree on the time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path


class SystemClock:
    """The real time, timezone-aware in UTC."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        return datetime.now(UTC)


class FileClock(SystemClock):
    """The real time shifted by the number of seconds written in a file (0 if absent)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._cached: tuple[tuple[int, int], float] | None = None

    def offset(self) -> float:
        """Return the offset in seconds, re-reading the file only when it changed."""
        try:
            st = self.path.stat()
            mtime = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            return 0.0
        if self._cached is None or self._cached[0] != mtime:
            text = self.path.read_text().strip() or "0"
            self._cached = (mtime, float(text))
        return self._cached[1]

    def now(self) -> datetime:
        """Return the current time plus the file's offset."""
        return super().now() + timedelta(seconds=self.offset())

    def set(self, when: datetime) -> None:
        """Move this clock (and every process reading the same file) to ``when``."""
        if when.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        offset = (when - datetime.now(UTC)).total_seconds()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(offset))
        os.replace(tmp, self.path)


def make_clock(path: str | None) -> SystemClock:
    """Return a FileClock when a clock file is configured, else the system clock."""
    return FileClock(path) if path else SystemClock()
