"""Sending windows: named rule sets evaluated in the destination's local time.

``co-crc`` is Colombia's CRC rule (08:00-21:00 America/Bogota, every day). A message outside its
window waits: its ``not_before`` becomes ``next_opening(now)`` and a beat sweep releases it.
Every function takes ``now``; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_calendars
import phonenumbers
from phonenumbers import timezone as phone_timezones

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: how far ahead to look for an opening before calling a window never open
HORIZON_DAYS = 400


@dataclass(frozen=True)
class Window:
    """Days and hours a message may go out, in a fixed timezone or the destination's."""

    name: str
    #: IANA zone, or None to use the destination phone's own zone
    timezone: str | None
    days: frozenset[int]
    start: time
    #: end of the window; None means midnight at the end of the day
    end: time | None
    #: ISO country whose public holidays close the window, if any
    holidays: str | None = None

    def zone_for(self, phone: str | None) -> ZoneInfo:
        """Return the zone this window is read in for a phone."""
        if self.timezone:
            return ZoneInfo(self.timezone)
        return destination_zone(phone or "")

    def is_open(self, now: datetime, phone: str | None = None) -> bool:
        """Say whether a message may go out at ``now``."""
        return self.next_opening(now, phone) == now

    def next_opening(self, now: datetime, phone: str | None = None) -> datetime:
        """Return ``now`` when open, else the next moment the window opens (aware, UTC)."""
        zone = self.zone_for(phone)
        local = now.astimezone(zone)
        for offset in range(HORIZON_DAYS):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.days or self._is_holiday(day):
                continue
            opens = datetime.combine(day, self.start, zone)
            closes = (
                datetime.combine(day, self.end, zone)
                if self.end
                else datetime.combine(day + timedelta(days=1), time(0), zone)
            )
            if local < closes:
                return now if local >= opens else opens.astimezone(now.tzinfo)
        raise ValueError(f"window {self.name!r} never opens within {HORIZON_DAYS} days")

    def next_openings(self, now: datetime, phones: Iterable[str]) -> list[datetime]:
        """``next_opening`` for each phone, worked out once per zone rather than once per phone."""
        if self.timezone:
            opening = self.next_opening(now)
            return [opening for _ in phones]
        per_zone: dict[ZoneInfo, datetime] = {}
        openings = []
        for phone in phones:
            zone = destination_zone(phone)
            if zone not in per_zone:
                per_zone[zone] = self.next_opening(now, phone)
            openings.append(per_zone[zone])
        return openings

    def _is_holiday(self, day: date) -> bool:
        return bool(self.holidays) and day in holiday_calendar(self.holidays)


@lru_cache(maxsize=32)
def holiday_calendar(country: str) -> holiday_calendars.HolidayBase:
    """Return the public holiday calendar of a country (years filled in on demand)."""
    return holiday_calendars.country_holidays(country)


#: a phone's zone is read once per process (a parse each time cost more than the rest of a send);
#: large enough for the phones of several batches of the largest request
@lru_cache(maxsize=65536)
def destination_zone(phone: str) -> ZoneInfo:
    """Return the zone of a phone number's area, UTC when unknown."""
    try:
        zones = phone_timezones.time_zones_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        zones = ()
    for name in zones:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


ALWAYS = Window("always", "UTC", frozenset(range(7)), time(0), None)
CO_CRC = Window("co-crc", "America/Bogota", frozenset(range(7)), time(8), time(21))
BUILT_IN: dict[str, Window] = {w.name: w for w in (ALWAYS, CO_CRC)}
#: the window an account of a country gets when it names none
DEFAULT_FOR_COUNTRY = {"CO": "co-crc"}


def parse_window(name: str, spec: Mapping[str, Any]) -> Window:
    """Build a window from an accounts-file table; raise ValueError naming the bad field."""
    unknown = set(spec) - {"timezone", "days", "start", "end", "holidays"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    zone = spec.get("timezone", "destination")
    if zone != "destination":
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown zone {zone!r}") from None
    days = _parse_days(spec.get("days", DAY_NAMES))
    start = _parse_time("start", spec.get("start", "00:00"))
    end_text = spec.get("end", "24:00")
    end = None if end_text == "24:00" else _parse_time("end", end_text)
    if end is not None and end <= start:
        raise ValueError(f"end {end_text!r} must come after start {spec.get('start')!r}")
    country = spec.get("holidays")
    if country is not None:
        try:
            holiday_calendar(country)
        except NotImplementedError:
            raise ValueError(f"holidays: no calendar for country {country!r}") from None
    return Window(name, None if zone == "destination" else zone, days, start, end, country)


def _parse_days(days: Iterable[str]) -> frozenset[int]:
    if isinstance(days, str):
        raise ValueError("days must be a list such as ['mon', 'tue']")
    picked = set()
    for day in days:
        if str(day).lower()[:3] not in DAY_NAMES:
            raise ValueError(f"days: {day!r} is not a day name")
        picked.add(DAY_NAMES.index(str(day).lower()[:3]))
    if not picked:
        raise ValueError("days: a window needs at least one day")
    return frozenset(picked)


def _parse_time(field: str, text: str) -> time:
    try:
        return time.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: {text!r} is not a time such as '08:00'") from None
