"""Shared school hours between two time zones: virtual exchange needs both classes awake at once.

Offsets come from the IANA database (zoneinfo) on a reference day, so daylight saving in
Australia or New Zealand is taken into account for the season the request is made in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Overlap:
    """Shared school hours, as a UTC window; empty when hours == 0."""

    hours: float
    start_utc: datetime | None
    end_utc: datetime | None

    def local_window(self, timezone: str) -> tuple[str, str] | None:
        """The window in a school's own local time, e.g. ("09:00", "11:00")."""
        if self.start_utc is None or self.end_utc is None:
            return None
        tz = ZoneInfo(timezone)
        return self.start_utc.astimezone(tz).strftime("%H:%M"), self.end_utc.astimezone(tz).strftime("%H:%M")


@lru_cache(maxsize=4096)
def _school_day_utc(timezone: str, day: date, start_hour: int, end_hour: int) -> tuple[datetime, datetime]:
    """A school day in UTC, worked out once per zone and day: a school in a zone new to the table
    meets every other zone, on three days each (7 us a conversion, 44 zones in a 100k world)."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(start_hour), tzinfo=tz).astimezone(UTC)
    end = start + timedelta(hours=end_hour - start_hour)
    return start, end


@lru_cache(maxsize=65536)
def school_hours_overlap(tz_a: str, tz_b: str, day: date, start_hour: int = 8, end_hour: int = 16) -> Overlap:
    """Overlap of the two schools' day (start_hour..end_hour local) on the same calendar day or
    the neighbouring one, whichever is larger (a school day in Auckland overlaps the previous
    calendar day's in Honolulu).

    >>> school_hours_overlap("Asia/Taipei", "Asia/Bangkok", date(2026, 3, 2)).hours
    7.0
    >>> school_hours_overlap("Asia/Taipei", "America/New_York", date(2026, 3, 2)).hours
    0.0
    """
    a_start, a_end = _school_day_utc(tz_a, day, start_hour, end_hour)
    best = Overlap(0.0, None, None)
    for shift in (-1, 0, 1):
        b_start, b_end = _school_day_utc(tz_b, day + timedelta(days=shift), start_hour, end_hour)
        start, end = max(a_start, b_start), min(a_end, b_end)
        hours = (end - start).total_seconds() / 3600
        if hours > best.hours:
            best = Overlap(hours, start, end)
    return best
