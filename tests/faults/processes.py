"""The processes a fault scenario disturbs: a Redis server of our own, and supervised Celery
worker and beat processes that are started again when they exit, as the documented supervisor
(compose ``restart:``, systemd ``Restart=``) would, counting how often that was needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from tests.workers import free_port

ROOT = Path(__file__).resolve().parents[2]


class RedisServer:
    """A redis-server on a free port in a directory of its own, run as the README requires."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start it (append-only, fsync every second, never evicting) and wait for PING."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
                "--save", "", "--protected-mode", "no"]  # fmt: skip
        log = (self.directory / "redis.log").open("a")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        """Shut it down the ordinary way (SIGTERM: the append-only file is flushed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, down_for: float = 1.0) -> None:
        """Stop it, stay down a moment (clients see the connection drop), start it again."""
        self.stop()
        time.sleep(down_for)
        self.start()
        self.restarts += 1


class Supervised:
    """One Celery process (worker or beat) restarted whenever it exits on its own."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, list(argv), dict(env), log
        self.proc: subprocess.Popen[bytes] | None = None
        #: times it exited on its own and was started again
        self.restarts = 0
        self._log_from = 0

    def start(self) -> Supervised:
        """Start the process; its output is appended to the log."""
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def keep_up(self) -> bool:
        """Start it again if it exited; say whether it had to be."""
        if self.alive():
            return False
        self.restarts += 1
        self.start()
        return True

    def output(self) -> str:
        """What this run of the process has logged so far."""
        with self.log.open("rb") as f:
            f.seek(self._log_from)
            return f.read().decode("utf-8", "replace")

    def ready(self) -> bool:
        """Say whether this run of the worker is ready to take messages."""
        return "ready." in self.output()

    def children(self) -> list[int]:
        """Its pool processes."""
        found = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in found]

    def kill_all(self) -> None:
        """SIGKILL the process and its pool at once, as the kernel's OOM killer or a lost host would."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill_all()
