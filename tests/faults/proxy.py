"""A TCP proxy between the workers and PostgreSQL that can refuse and cut connections.

PostgreSQL itself is shared and never stopped; the workers reach it through this proxy, and a
fault is the proxy going down: open connections are cut and new ones refused (the listening
socket is closed, so a client sees "connection refused", as with a stopped server).
"""

from __future__ import annotations

import socket
import threading
import time

#: bytes read from one side before writing them to the other
CHUNK = 65536


class PgProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` until told to go down."""

    def __init__(self, target_port: int, port: int = 0):
        self.target_port = target_port
        self.port = port
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def start(self) -> PgProxy:
        """Listen (on a free port the first time) and forward every connection."""
        self.up()
        return self

    def up(self) -> None:
        """Accept connections again, on the same port."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="pgproxy", daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if listener is not None:
            _close(listener)
        for conn in conns:
            _close(conn)

    def refuse_for(self, seconds: float) -> None:
        """Go down now and come back up after ``seconds`` (without blocking the caller)."""
        self.down()
        self._timer = threading.Timer(seconds, self.up)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        """Go down for good."""
        if self._timer is not None:
            self._timer.cancel()
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: down
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(server)
                    return
                self._conns.update((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Either side gone: cut both, as a dying server would.
            with self._lock:
                self._conns.difference_update((src, dst))
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def wait_until_refused(port: int, timeout: float = 5.0) -> None:
    """Block until a connection to ``port`` is refused (the proxy is down)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"port {port} still accepts connections")
