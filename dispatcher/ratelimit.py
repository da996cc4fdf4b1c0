"""The per-account pause between vendor requests, and the cap on requests in flight, shared by
every worker process and host.

A slot is a Redis key set with ``NX`` (the server's clock decides): the holder sends, then
``release`` shortens the key to the account's interval, so the next request of that account
starts at least ``interval`` seconds after the previous one *finished*. A holder that dies lets
its lease run out.

A flight is one request of an account in the air (``take_flight``/``end_flight``): a member of
the account's Redis sorted set, scored with the time its lease runs out (the server's clock).
Taking one first drops the expired leases, then adds ours only while fewer than the account's
``max_in_flight`` remain, in one script: a worker that dies mid-request holds its flights only
until their leases run out. ``MemoryLimiter`` is the in-process stand-in for the embedded default.

Two lanes share the slot: an ``urgent`` sender (an OTP batch) that finds the slot taken leaves a
short-lived mark on the account, and while the mark lives no bulk sender takes the slot, so the
OTP gets the next free slot however many bulk batches are waiting for it. The mark lives a
little longer than one pause (``URGENT_MARK``) and is renewed by every try of a waiting OTP: bulk
waits at most that long after the last OTP, so OTP cannot hold bulk back beyond its own volume.
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

#: seconds an urgent sender's mark holds bulk back, beyond the account's pause
URGENT_MARK = 1.0

# KEYS[1] the slot, KEYS[2] the account's urgent mark; ARGV: token, lease (ms), urgent (1/0),
# mark (ms). Returns 0 when the slot is ours, else the milliseconds it (or the mark) stays taken.
_ACQUIRE = """
if ARGV[3] ~= '1' then
  local marked = redis.call('pttl', KEYS[2])
  if marked > 0 then
    return marked
  end
end
if redis.call('set', KEYS[1], ARGV[1], 'nx', 'px', ARGV[2]) then
  return 0
end
if ARGV[3] == '1' then
  redis.call('set', KEYS[2], '1', 'px', ARGV[4])
end
local left = redis.call('pttl', KEYS[1])
if left > 0 then
  return left
end
return 1
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  if tonumber(ARGV[2]) > 0 then
    return redis.call('pexpire', KEYS[1], ARGV[2])
  end
  return redis.call('del', KEYS[1])
end
return 0
"""

# KEYS[1] the account's flights; ARGV: cap, lease (ms), token. Returns 1 when the flight is ours.
_TAKE_FLIGHT = """
local clock = redis.call('time')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
"""


class Limiter(Protocol):
    """Hands out one request slot per account at a time."""

    def acquire(
        self, account: str, lease: float, urgent: bool = False, pause: float = 0.0
    ) -> tuple[str | None, float]:
        """Return (token, 0) when the slot is ours, else (None, seconds until it frees).

        An ``urgent`` sender that finds the slot taken keeps bulk senders off it for ``pause`` +
        ``URGENT_MARK`` seconds, so it takes the next free slot.
        """
        ...

    def release(self, account: str, token: str, pause: float) -> None:
        """Keep the slot closed for ``pause`` more seconds (0: free it now)."""
        ...

    def take_flight(self, account: str, cap: int, lease: float) -> str | None:
        """Return a token for one more request in flight, or None while ``cap`` are."""
        ...

    def end_flight(self, account: str, token: str) -> None:
        """The request of this token is over: its place is free."""
        ...


class RedisLimiter:
    """Slots as Redis keys: correct across processes and hosts."""

    def __init__(self, client: Redis, prefix: str = "smsdispatch:slot:", flights: str = "smsdispatch:flight:"):
        self.client = client
        self.prefix = prefix
        self.flights = flights
        self._release = client.register_script(_RELEASE)
        self._acquire = client.register_script(_ACQUIRE)
        self._take_flight = client.register_script(_TAKE_FLIGHT)

    def acquire(
        self, account: str, lease: float, urgent: bool = False, pause: float = 0.0
    ) -> tuple[str | None, float]:
        """Take the slot with SET NX PX unless an urgent sender waits for it, or say how long it stays taken."""
        token = secrets.token_hex(8)
        key = self.prefix + account
        mark = int((pause + URGENT_MARK) * 1000)
        left = int(
            self._acquire(keys=[key, key + ":urgent"], args=[token, max(1, int(lease * 1000)), int(urgent), mark])
        )
        if left == 0:
            return token, 0.0
        return None, max(left / 1000.0, MARGIN)

    def release(self, account: str, token: str, pause: float) -> None:
        """Shorten our lease to the pause (or delete it), only if it is still ours."""
        ms = int((pause + MARGIN) * 1000) if pause > 0 else 0
        self._release(keys=[self.prefix + account], args=[token, ms])

    def take_flight(self, account: str, cap: int, lease: float) -> str | None:
        """Add a lease to the account's flights if fewer than ``cap`` live ones are there."""
        token = secrets.token_hex(8)
        taken = self._take_flight(keys=[self.flights + account], args=[cap, max(1, int(lease * 1000)), token])
        return token if taken else None

    def end_flight(self, account: str, token: str) -> None:
        """Remove our lease (gone already if it ran out)."""
        self.client.zrem(self.flights + account, token)


class MemoryLimiter:
    """Slots in this process's memory, for the embedded default and tests without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[str, float]] = {}
        #: account -> until when an urgent sender waiting for its slot keeps bulk senders off it
        self._urgent: dict[str, float] = {}
        self._flights: dict[str, dict[str, float]] = {}

    def acquire(
        self, account: str, lease: float, urgent: bool = False, pause: float = 0.0
    ) -> tuple[str | None, float]:
        """Take the slot if its deadline passed and no urgent sender waits for it."""
        now = time.monotonic()
        with self._lock:
            marked = self._urgent.get(account, 0.0)
            if not urgent and marked > now:
                return None, marked - now
            holder = self._slots.get(account)
            if holder and holder[1] > now:
                if urgent:
                    self._urgent[account] = now + pause + URGENT_MARK
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

    def take_flight(self, account: str, cap: int, lease: float) -> str | None:
        """Add a lease to the account's flights if fewer than ``cap`` live ones are there."""
        now = time.monotonic()
        with self._lock:
            live = {t: end for t, end in self._flights.get(account, {}).items() if end > now}
            if len(live) >= cap:
                self._flights[account] = live
                return None
            token = secrets.token_hex(8)
            live[token] = now + lease
            self._flights[account] = live
            return token

    def end_flight(self, account: str, token: str) -> None:
        """Remove our lease."""
        with self._lock:
            self._flights.get(account, {}).pop(token, None)
