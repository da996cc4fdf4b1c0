"""The per-account pause between vendor requests, shared by every worker process and host.

A slot is a Redis key set with ``NX`` (the server's clock decides): the holder sends, then
``release`` shortens the key to the account's interval, so the next request of that account
starts at least ``interval`` seconds after the previous one *finished*. A holder that dies lets
its lease run out. ``MemoryLimiter`` is the in-process stand-in for the embedded default.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis import Redis

#: seconds added to every pause, for Redis expiry granularity
MARGIN = 0.05

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  if tonumber(ARGV[2]) > 0 then
    return redis.call('pexpire', KEYS[1], ARGV[2])
  end
  return redis.call('del', KEYS[1])
end
return 0
"""


class Limiter(Protocol):
    """Hands out one request slot per account at a time."""

    def acquire(self, account: str, lease: float) -> tuple[str | None, float]:
        """Return (token, 0) when the slot is ours, else (None, seconds until it frees)."""
        ...

    def release(self, account: str, token: str, pause: float) -> None:
        """Keep the slot closed for ``pause`` more seconds (0: free it now)."""
        ...


class RedisLimiter:
    """Slots as Redis keys: correct across processes and hosts."""

    def __init__(self, client: Redis, prefix: str = "smsdispatch:slot:"):
        self.client = client
        self.prefix = prefix
        self._release = client.register_script(_RELEASE)

    def acquire(self, account: str, lease: float) -> tuple[str | None, float]:
        """Take the slot with SET NX PX, or say how long it stays taken."""
        token = secrets.token_hex(8)
        key = self.prefix + account
        if self.client.set(key, token, nx=True, px=max(1, int(lease * 1000))):
            return token, 0.0
        pttl = self.client.pttl(key)
        return None, (pttl / 1000.0 if pttl and pttl > 0 else MARGIN)

    def release(self, account: str, token: str, pause: float) -> None:
        """Shorten our lease to the pause (or delete it), only if it is still ours."""
        ms = int((pause + MARGIN) * 1000) if pause > 0 else 0
        self._release(keys=[self.prefix + account], args=[token, ms])


class MemoryLimiter:
    """Slots in this process's memory, for the embedded default and tests without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[str, float]] = {}

    def acquire(self, account: str, lease: float) -> tuple[str | None, float]:
        """Take the slot if its deadline passed."""
        now = time.monotonic()
        with self._lock:
            holder = self._slots.get(account)
            if holder and holder[1] > now:
                return None, holder[1] - now
            token = secrets.token_hex(8)
            self._slots[account] = (token, now + lease)
            return token, 0.0

    def release(self, account: str, token: str, pause: float) -> None:
        """Move our deadline to now + pause."""
        with self._lock:
            holder = self._slots.get(account)
            if holder and holder[0] == token:
                self._slots[account] = (token, time.monotonic() + (pause + MARGIN if pause > 0 else 0))
