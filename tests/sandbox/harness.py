"""One harness for the simulators: one on loopback at a fake time, a customer's URL for its pushes,
and ``dispatcher sandbox`` run as an operator runs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx

from dispatcher.sandbox.core import Faults, Ledger, SandboxServer
from dispatcher.sandbox.messages import Progress, PushQueue
from dispatcher.sandbox.skeleton import Simulator
from tests.conftest import FakeClock
from tests.workers import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Box:
    """One running simulator: it, its server, clock, ledger, pushes and a client at its base URL."""

    sim: Any
    server: SandboxServer
    clock: FakeClock
    ledger: Ledger
    pushes: PushQueue
    http: httpx.Client


B = TypeVar("B", bound=Box)


class Boxes:
    """Starts simulators on loopback and stops every one it started."""

    def __init__(self) -> None:
        self.started: list[Box] = []

    def start(
        self,
        sim_type: type[Simulator[Any]],
        at: datetime,
        progress: Progress | None = None,
        faults: Faults | None = None,
        box: type[B] = Box,  # type: ignore[assignment]
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> B:
        """``sim_type`` on loopback at ``at``, with its progress and faults; ``box`` adds the vendor's helpers."""
        clock, ledger = FakeClock(at), Ledger()
        pushes = PushQueue(clock)
        sim = sim_type(ledger, clock, faults, progress=progress, pushes=pushes, **kwargs)
        server = SandboxServer({sim.key: sim}).start()
        http = httpx.Client(base_url=server.url(sim.key), headers=headers or {}, timeout=5.0)
        self.started.append(box(sim, server, clock, ledger, pushes, http))
        return self.started[-1]  # type: ignore[return-value]

    def stop(self) -> None:
        for box in self.started:
            box.http.close()
            box.server.stop()


class _Customer(BaseHTTPRequestHandler):
    """Records every form POSTed to it (``received``) and every GET path (``paths``); answers ok."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.received.append(dict(parse_qsl(body, keep_blank_values=True)))  # type: ignore[attr-defined]
        self._ok()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self._ok()

    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        return


@contextmanager
def customer_server() -> Iterator[ThreadingHTTPServer]:
    """A customer's URL on loopback, for the simulators' pushes to land on."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Customer)
    httpd.received = []  # type: ignore[attr-defined]
    httpd.paths = []  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def sandbox_command(accounts_out: Path, *args: str) -> Iterator[int]:
    """``dispatcher sandbox`` on a free port writing its accounts file; yields the port once written."""
    port = free_port()
    argv = ["sandbox", "--port", str(port), "--accounts-out", str(accounts_out), *args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", *argv],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not accounts_out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
