"""The account pause: the next request starts at least ``pause`` after the previous one ended."""

from __future__ import annotations

import threading
import time

import pytest

from dispatcher import ratelimit
from dispatcher.ratelimit import MemoryLimiter, RedisLimiter

PAUSE = 0.2


@pytest.fixture(params=["memory", "fakeredis", "redis"])
def limiter(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The in-process limiter, the Redis one on an in-memory Redis (fast, no server), and on a real Redis."""
    if request.param == "memory":
        return MemoryLimiter()
    if request.param == "fakeredis":
        import fakeredis

        return RedisLimiter(fakeredis.FakeRedis())
    return RedisLimiter(request.getfixturevalue("redis_client"))


def test_competing_senders_keep_the_pause(limiter) -> None:  # type: ignore[no-untyped-def]
    # Given six senders sharing one account, each sending twice
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def sender() -> None:
        done = 0
        while done < 2:
            token, wait = limiter.acquire("co-main", lease=5.0)
            if token is None:
                time.sleep(min(wait, PAUSE))  # as the sender does: look again after one pause
                continue
            start = time.monotonic()
            time.sleep(0.01)  # the request
            end = time.monotonic()
            limiter.release("co-main", token, PAUSE)
            with lock:
                spans.append((start, end))
            done += 1

    threads = [threading.Thread(target=sender) for _ in range(6)]
    # When they all run
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then no request started less than PAUSE after the previous one ended
    spans.sort()
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(spans, spans[1:], strict=False)]
    assert len(spans) == 12
    assert min(gaps) >= PAUSE


def test_a_dead_holder_lets_its_lease_run_out(limiter) -> None:  # type: ignore[no-untyped-def]
    token, _ = limiter.acquire("co-main", lease=0.2)
    assert token is not None
    other, wait = limiter.acquire("co-main", lease=0.2)
    assert other is None and 0 < wait <= 0.2
    time.sleep(0.25)
    assert limiter.acquire("co-main", lease=0.2)[0] is not None


def test_releasing_with_no_pause_frees_the_slot(limiter) -> None:  # type: ignore[no-untyped-def]
    token, _ = limiter.acquire("co-main", lease=5.0)
    limiter.release("co-main", token, 0)
    assert limiter.acquire("co-main", lease=5.0)[0] is not None


def test_a_stale_token_cannot_shorten_another_holder(limiter) -> None:  # type: ignore[no-untyped-def]
    old, _ = limiter.acquire("co-main", lease=0.1)
    time.sleep(0.15)
    new, _ = limiter.acquire("co-main", lease=5.0)
    limiter.release("co-main", old, 0)  # the old holder wakes up late
    assert limiter.acquire("co-main", lease=5.0)[0] is None
    assert new is not None


def test_a_waiting_otp_takes_the_next_free_slot_before_bulk(limiter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given a bulk request holding the account's slot, and an OTP sender that found it taken
    monkeypatch.setattr(ratelimit, "URGENT_MARK", 0.3)
    bulk, _ = limiter.acquire("co-main", lease=5.0)
    assert limiter.acquire("co-main", lease=5.0, urgent=True, pause=PAUSE)[0] is None
    # When the bulk request ends and its pause runs out
    limiter.release("co-main", bulk, PAUSE)
    time.sleep(PAUSE + 0.1)
    # Then a bulk sender that comes first is turned away, and the OTP sender gets the slot
    other, wait = limiter.acquire("co-main", lease=5.0)
    assert other is None and wait > 0
    assert limiter.acquire("co-main", lease=5.0, urgent=True, pause=PAUSE)[0] is not None


def test_bulk_waits_no_longer_than_the_mark_after_the_last_otp(limiter, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given an OTP sender that found the slot taken, then gave up
    monkeypatch.setattr(ratelimit, "URGENT_MARK", 0.2)
    holder, _ = limiter.acquire("co-main", lease=0.1)
    assert limiter.acquire("co-main", lease=5.0, urgent=True, pause=PAUSE)[0] is None
    # When the pause and the mark have run out
    time.sleep(PAUSE + 0.2 + 0.1)
    # Then bulk takes the slot again
    assert limiter.acquire("co-main", lease=5.0)[0] is not None


def test_flights_stop_at_the_cap_and_free_a_place_when_one_ends(limiter) -> None:  # type: ignore[no-untyped-def]
    # Given an account allowing three requests in flight, all three taken
    tokens = [limiter.take_flight("mx-main", 3, lease=5.0) for _ in range(3)]
    assert None not in tokens
    # Then a fourth is refused, while another account is not held by them
    assert limiter.take_flight("mx-main", 3, lease=5.0) is None
    assert limiter.take_flight("mx-other", 3, lease=5.0) is not None
    # And when one request ends, its place is free again, once
    limiter.end_flight("mx-main", tokens[0])
    assert limiter.take_flight("mx-main", 3, lease=5.0) is not None
    assert limiter.take_flight("mx-main", 3, lease=5.0) is None


def test_a_dead_senders_flights_run_out(limiter) -> None:  # type: ignore[no-untyped-def]
    # Given a sender that took both places of an account and died without ending them
    assert limiter.take_flight("mx-main", 2, lease=0.2) and limiter.take_flight("mx-main", 2, lease=0.2)
    assert limiter.take_flight("mx-main", 2, lease=0.2) is None
    # When their leases run out
    time.sleep(0.3)
    # Then both places are free again
    assert limiter.take_flight("mx-main", 2, lease=5.0) and limiter.take_flight("mx-main", 2, lease=5.0)
