"""Billing and reporting periods: calendar months in a time zone, as UTC instants.

A period is named `YYYY-MM`. Its start is local midnight of its first day and its end E
the start of the next month, so periods are half-open `[start, E)`: an instant exactly at
E belongs to the next period. Where local midnight falls inside a spring-forward gap, the
boundary is the instant the gap ends; where it is ambiguous (fall back), its first
occurrence. Used by the credit ledger (contract time zone) and by availability (service
time zone). Pure functions of their arguments.
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from slaclock.processors.engine.instants import from_us, to_us

Period = str  # "YYYY-MM"


def local_start_of_day(day: date, zone: ZoneInfo) -> int:
    """The instant local midnight starts `day` in `zone` (the gap's end inside a gap)."""
    naive = datetime.combine(day, time())
    first = to_us(naive.replace(tzinfo=zone, fold=0))
    if _wall(first, zone) == naive:
        return first  # a real local time (fold=0: the first occurrence when ambiguous)
    second = to_us(naive.replace(tzinfo=zone, fold=1))
    lo, hi = min(first, second), max(first, second)
    while lo < hi:  # the first instant whose wall time is at or after midnight
        mid = (lo + hi) // 2
        if _wall(mid, zone) >= naive:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _wall(instant: int, zone: ZoneInfo) -> datetime:
    return from_us(instant).astimezone(zone).replace(tzinfo=None)


def period_of(instant: int, zone: ZoneInfo) -> Period:
    """The month containing `instant`, in `zone`."""
    period = from_us(instant).astimezone(zone).strftime("%Y-%m")
    start, _ = period_bounds(period, zone)
    if instant < start:  # inside a gap that swallowed the local midnight
        return previous_period(period)
    return period


def parse_period(period: Period) -> tuple[int, int]:
    year, month = period.split("-")
    return int(year), int(month)


def shift_period(period: Period, months: int) -> Period:
    year, month = parse_period(period)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def next_period(period: Period) -> Period:
    return shift_period(period, 1)


def previous_period(period: Period) -> Period:
    return shift_period(period, -1)


@lru_cache(maxsize=4096)
def period_bounds(period: Period, zone: ZoneInfo) -> tuple[int, int]:
    """(start, end) instants of `period` in `zone`; the end is the next period's start."""
    year, month = parse_period(period)
    start = local_start_of_day(date(year, month, 1), zone)
    next_year, next_month = parse_period(next_period(period))
    return start, local_start_of_day(date(next_year, next_month, 1), zone)


def period_end(period: Period, zone: ZoneInfo) -> int:
    return period_bounds(period, zone)[1]


class PeriodLookup:
    """`period_of` with the last month of each zone remembered: inputs mostly fall in it."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int, Period]] = {}

    def __call__(self, instant: int, zone: ZoneInfo) -> Period:
        hit = self._last.get(zone.key)
        if hit is not None and hit[0] <= instant < hit[1]:
            return hit[2]
        period = period_of(instant, zone)
        start, end = period_bounds(period, zone)
        self._last[zone.key] = (start, end, period)
        return period
