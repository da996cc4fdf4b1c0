"""A TCP proxy on loopback that can refuse and cut connections, to stand between code and PostgreSQL.

PostgreSQL is shared by every test run on the machine and must not be stopped; pointing
``DATABASE_URL`` at this proxy lets a test take "the database" away and give it back:

    proxy = PgProxy(5432).start()
    url = make_url(pg_url).set(port=proxy.port)
    proxy.refuse_for(10)      # or proxy.down() ... proxy.up()
    proxy.stop()

While down, new connections are accepted and closed at once (the client sees the server hang up,
as when PostgreSQL restarts), and every connection already open is cut.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

#: bytes read from one side before writing them to the other
CHUNK = 65536


class PgProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port>; ``down()`` cuts and refuses."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._down_until = 0.0
        self._down = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"pgproxy:{self.port}", daemon=True)
        #: connections accepted and forwarded, and connections refused while down
        self.forwarded = 0
        self.refused = 0

    def start(self) -> PgProxy:
        """Start accepting; return self."""
        self._thread.start()
        return self

    def is_down(self) -> bool:
        """Say whether new connections are refused now."""
        return self._down or time.monotonic() < self._down_until

    def down(self) -> None:
        """Cut every open connection and refuse new ones until ``up()``."""
        self._down = True
        self._cut_all()

    def up(self) -> None:
        """Forward new connections again."""
        self._down = False
        self._down_until = 0.0

    def refuse_for(self, seconds: float) -> None:
        """Cut every open connection and refuse new ones for ``seconds``."""
        self._down_until = time.monotonic() + seconds
        self._cut_all()

    def stop(self) -> None:
        """Stop accepting and close everything."""
        self._stopped.set()
        self._listener.close()
        self._cut_all()
        self._thread.join(5)

    def _cut_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.is_down():
                self.refused += 1
                # Reset, not a polite close: the client sees what a dead server gives.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.forwarded += 1
            with self._lock:
                self._open.update((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            src.close()
