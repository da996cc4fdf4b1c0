"""Sending windows, evaluated at a given ``now`` (never the wall clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dispatcher.windows import ALWAYS, CO_CRC, parse_window

BOGOTA = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("local", "opens"),
    [
        (datetime(2026, 11, 23, 7, 59, 59, tzinfo=BOGOTA), datetime(2026, 11, 23, 8, 0, tzinfo=BOGOTA)),
        (datetime(2026, 11, 23, 8, 0, tzinfo=BOGOTA), None),
        (datetime(2026, 11, 23, 20, 59, 59, tzinfo=BOGOTA), None),
        (datetime(2026, 11, 23, 21, 0, tzinfo=BOGOTA), datetime(2026, 11, 24, 8, 0, tzinfo=BOGOTA)),
        (datetime(2026, 11, 23, 21, 30, tzinfo=BOGOTA), datetime(2026, 11, 24, 8, 0, tzinfo=BOGOTA)),
        (datetime(2026, 12, 31, 23, 59, tzinfo=BOGOTA), datetime(2027, 1, 1, 8, 0, tzinfo=BOGOTA)),
    ],
)
def test_co_crc_is_eight_to_nine_in_bogota(local: datetime, opens: datetime | None) -> None:
    now = local.astimezone(UTC)
    assert CO_CRC.is_open(now) is (opens is None)
    assert CO_CRC.next_opening(now) == (now if opens is None else opens)


def test_always_is_always_open() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    assert ALWAYS.next_opening(now) == now


def test_holidays_and_weekends_close_a_window() -> None:
    # Given a Mexican office window closed on weekends and public holidays
    window = parse_window(
        "mx-office",
        {"timezone": "America/Mexico_City", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
         "end": "18:00", "holidays": "MX"},
    )  # fmt: skip
    # When it is asked on New Year's Day 2027 (a Friday, a holiday) at noon
    now = datetime(2027, 1, 1, 18, 0, tzinfo=UTC)
    # Then it opens Monday Jan 4 at 09:00 Mexico City (UTC-6)
    assert window.next_opening(now) == datetime(2027, 1, 4, 15, 0, tzinfo=UTC)


def test_a_destination_window_reads_the_phone_own_zone() -> None:
    window = parse_window("daytime", {"start": "09:00", "end": "20:00"})
    now = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 09:30 Bogota, 06:30 Los Angeles
    assert window.is_open(now, "+573001234567")
    assert not window.is_open(now, "+14155550123")
    assert window.next_opening(now, "+14155550123") == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
