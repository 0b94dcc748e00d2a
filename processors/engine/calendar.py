"""Business-hours calendar arithmetic: counted time between instants, and its inverse.

Instants and durations are integer microseconds (UTC instants since the Unix epoch), as
everywhere in the engine.

Representation
--------------
A calendar is an IANA time zone, a weekly pattern of local working intervals (Python weekday
0=Mon..6=Sun -> sorted, non-overlapping, half-open `[start_s, end_s)` seconds of the local
day, `end_s` may be 86400 = 24:00) and a set of holiday dates (local dates, whole day off).

The time line is cut into **weeks**: week `w` is the real-time span from local Monday
00:00 of the `w`-th week after Monday 1970-01-05 up to the next local Monday 00:00, both
mapped to UTC with the rules below. Each week is built lazily, once, and cached (keyed by
`w`) as a sorted list of disjoint UTC intervals `[start_us, end_us)` with a running sum of
their lengths (counted time at the end of each interval) and the week total. Then

- `counted_between(a, b)` is "counted time in the week of `b` before `b`" minus the same for
  `a` (one `bisect` each) when both are in one week, plus the totals of the whole weeks in
  between otherwise;
- `instant_after(start, counted)` skips whole weeks by their totals, then finds the
  interval in which the target is reached with one `bisect` on the running sums.

Touching an instant builds its week (a few dozen zoneinfo conversions); after that every
call is a couple of dict lookups, bisects and integer operations. Weeks stay cached for the
lifetime of the calendar (52 small entries per year of time line touched), so build a
calendar once per policy and reuse it.

A 24x7 calendar without holidays (`is_always`) needs none of this: counted time is real
time (`b - a`, `start + counted`), so a 1-day target is 24 real hours even across DST.
A weekly pattern of 00:00-24:00 on all seven days without holidays is recognised as 24x7.

Local time -> instant (docs/semantics.md: Policies)
------------------------------
Every local interval is turned into real instants on each local date with `zoneinfo`, so on
a DST day an interval's length is the real time between its ends: 09:00-17:00 is 8 h unless
the change falls inside it, 00:00-24:00 is 23 h or 25 h (23.5 h / 24.5 h on Lord Howe).
`24:00` is 00:00 of the next local date. A local wall time `n` means the earliest instant
whose local wall time is at or after `n`:

- an ordinary local time: its only instant;
- a time inside a spring-forward gap: the instant the gap ends (02:30 on a day that jumps
  02:00 -> 03:00 is 03:00 of the new offset);
- an ambiguous fall-back time: its first occurrence (`fold=0`, the earlier offset).

This map is non-decreasing in `n`, so the images of the ordered local intervals stay ordered
and disjoint, and consecutive local days (and weeks) tile the real time line with no
overlap. An interval that lies entirely inside a gap has no real time and is dropped.

Decisions the calendar rules leave open
--------------------------------
- Holidays on a 24x7 calendar apply: a 24x7 calendar with holidays counts every real
  instant except those of its holiday dates (each holiday is the real span from its local
  00:00 to the next local 00:00). Without holidays it is pure real time.
- `instant_after` with a positive amount on a calendar that has no working interval at all
  raises `ValueError` (there is no such instant). A finite list of holidays can only delay
  the answer, never remove it, so those calendars are searched to the end of the holidays;
  as a last guard the search also gives up after `MAX_EMPTY_WEEKS` consecutive empty weeks
  past the last holiday (which cannot happen with a non-empty pattern).
- `counted_between(a, b)` is 0 when `b <= a`; `instant_after` refuses a negative amount.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_EMPTY_WEEKS",
    "BusinessCalendar",
    "CalendarSpec",
    "calendar_from_spec",
]

US_PER_SECOND: Final = 1_000_000
DAY_S: Final = 86_400
WEEK_US: Final = 7 * DAY_S * US_PER_SECOND
MAX_EMPTY_WEEKS: Final = 400
"""Consecutive weeks without working time (past the last holiday) before giving up."""

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_WEEK0_ORDINAL: Final = date(1970, 1, 5).toordinal()  # a Monday: local start of week 0
_WEEK0_NAIVE_US: Final = (_WEEK0_ORDINAL - _EPOCH_ORDINAL) * DAY_S * US_PER_SECOND
_FULL_DAY: Final = ((0, DAY_S),)

Intervals = tuple[tuple[int, int], ...]


class CalendarSpec(Protocol):
    """What `calendar_from_spec` needs from a parsed policy calendar."""

    @property
    def timezone(self) -> str: ...

    @property
    def is_24x7(self) -> bool: ...

    @property
    def holidays(self) -> Sequence[date]: ...

    def weekly_intervals(self) -> Mapping[int, Sequence[tuple[int, int]]]: ...


class _Week:
    """The working time of one local week, as UTC microsecond intervals."""

    __slots__ = ("cum", "end", "ends", "index", "start", "starts", "total")

    def __init__(
        self, index: int, start: int, end: int, starts: list[int], ends: list[int], cum: list[int]
    ) -> None:
        self.index = index  # weeks since the week of Monday 1970-01-05
        self.start = start  # first instant of the week (local Monday 00:00)
        self.end = end  # first instant of the next week
        self.starts = starts  # interval starts, sorted
        self.ends = ends  # interval ends; ends[i] < starts[i + 1] (touching ones are merged)
        self.cum = cum  # counted time of the week up to ends[i], strictly increasing
        self.total = cum[-1] if cum else 0

    def before(self, t: int) -> int:
        """Counted time of this week before `t` (`start <= t <= end`)."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return 0
        end = self.ends[i]
        if t < end:
            return self.cum[i] - (end - t)
        return self.cum[i]


def _offset_s(delta: timedelta | None) -> int:
    if delta is None:  # pragma: no cover - zoneinfo always answers
        raise ValueError("time zone returned no UTC offset")
    return delta.days * DAY_S + delta.seconds


def _normalise_day(day: int, intervals: Iterable[tuple[int, int]]) -> Intervals:
    merged: list[tuple[int, int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in intervals):
        if not 0 <= start < end <= DAY_S:
            raise ValueError(
                f"weekday {day}: interval [{start}, {end}) is not within a day "
                f"(need 0 <= start < end <= {DAY_S})"
            )
        if merged and start < merged[-1][1]:
            raise ValueError(
                f"weekday {day}: interval [{start}, {end}) overlaps "
                f"[{merged[-1][0]}, {merged[-1][1]})"
            )
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


class BusinessCalendar:
    """Counted (working) time of a calendar over the real time line; see the module doc."""

    __slots__ = (
        "_always",
        "_guess_us",
        "_has_time",
        "_holidays",
        "_last_holiday_week",
        "_tz",
        "_weekly",
        "_weeks",
        "timezone",
    )

    def __init__(
        self,
        timezone: str,
        weekly: Mapping[int, Sequence[tuple[int, int]]] | None,
        holidays: Iterable[date] = (),
    ) -> None:
        """`weekly`: Python weekday (0=Mon..6=Sun) -> local `[start_s, end_s)` intervals,
        sorted and non-overlapping, `end_s` up to 86400 (24:00); `None` means 24x7.
        `holidays`: local dates, whole day off (also on a 24x7 calendar)."""
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        self.timezone = timezone
        if weekly is None:
            days: list[Intervals] = [_FULL_DAY] * 7
        else:
            for key in weekly:
                if not isinstance(key, int) or not 0 <= key <= 6:
                    raise ValueError(f"weekday {key!r} is not 0 (Monday) .. 6 (Sunday)")
            days = [_normalise_day(day, weekly.get(day, ())) for day in range(7)]
        self._weekly: tuple[Intervals, ...] = tuple(days)
        self._holidays: frozenset[int] = frozenset(
            date(h.year, h.month, h.day).toordinal() for h in holidays
        )
        self._last_holiday_week = (
            (max(self._holidays) - _WEEK0_ORDINAL) // 7 if self._holidays else -(1 << 62)
        )
        self._has_time = any(self._weekly)
        self._always = not self._holidays and all(day == _FULL_DAY for day in self._weekly)
        self._weeks: dict[int, _Week] = {}
        # A fixed guess of the UTC offset; `_locate` corrects the week index it gives.
        probe = datetime(2000, 1, 1, tzinfo=self._tz)
        self._guess_us = _offset_s(probe.utcoffset()) * US_PER_SECOND - _WEEK0_NAIVE_US

    def __repr__(self) -> str:
        kind = "24x7" if self._always else "business"
        return f"BusinessCalendar({self.timezone!r}, {kind}, holidays={len(self._holidays)})"

    @property
    def is_always(self) -> bool:
        """True when every real instant counts (24x7, no holidays): counted == real time."""
        return self._always

    # -- public arithmetic ---------------------------------------------------------------

    def same_counting(self, other: BusinessCalendar) -> bool:
        """Whether `other` counts every instant exactly as this one does (same zone, hours
        and holidays): a policy version that keeps the calendar need not split a clock."""
        return other is self or (
            self.timezone == other.timezone
            and self._weekly == other._weekly
            and self._holidays == other._holidays
        )

    def counted_between(self, a: int, b: int) -> int:
        """Working microseconds in `[a, b)`; 0 if `b <= a`."""
        if b <= a:
            return 0
        if self._always:
            return b - a
        week_a = self._locate(a)
        if b <= week_a.end:
            return week_a.before(b) - week_a.before(a)
        week_b = self._locate(b)
        total = week_a.total - week_a.before(a) + week_b.before(b)
        weeks = self._weeks
        for i in range(week_a.index + 1, week_b.index):
            week = weeks.get(i)
            if week is None:
                week = self._build(i)
            total += week.total
        return total

    def instant_after(self, start: int, counted: int) -> int:
        """The earliest instant `t >= start` with `counted_between(start, t) == counted`.

        `counted == 0` gives `start`. Raises `ValueError` for a negative amount, or when the
        calendar has no working time at all (no such instant exists)."""
        if counted <= 0:
            if counted == 0:
                return start
            raise ValueError(f"negative counted time {counted}")
        if self._always:
            return start + counted
        if not self._has_time:
            raise ValueError("calendar has no working time: no instant reaches the target")
        week = self._locate(start)
        i = week.index
        target = week.before(start) + counted
        empty = 0
        weeks = self._weeks
        while target > week.total:
            target -= week.total
            if week.total:
                empty = 0
            else:
                empty += 1
                if empty >= MAX_EMPTY_WEEKS and i > self._last_holiday_week:
                    raise ValueError(
                        f"calendar has no working time in {MAX_EMPTY_WEEKS} consecutive weeks"
                    )
            i += 1
            next_week = weeks.get(i)
            week = self._build(i) if next_week is None else next_week
        j = bisect_left(week.cum, target)
        return week.ends[j] - (week.cum[j] - target)

    # -- the intervals themselves (explanations) -------------------------------------------

    def working_spans(self, a: int, b: int) -> list[tuple[int, int]]:
        """The working time in `[a, b)` as disjoint, ordered `[start, end)` instants: the
        very intervals `counted_between` sums (so their lengths add up to it exactly)."""
        if b <= a:
            return []
        if self._always:
            return [(a, b)]
        spans: list[tuple[int, int]] = []
        week = self._locate(a)
        while True:
            starts, ends = week.starts, week.ends
            i = max(0, bisect_right(ends, a))
            while i < len(starts) and starts[i] < b:
                lo, hi = max(starts[i], a), min(ends[i], b)
                if spans and spans[-1][1] == lo:  # touching across a week's end
                    spans[-1] = (spans[-1][0], hi)
                elif lo < hi:
                    spans.append((lo, hi))
                i += 1
            if week.end >= b:
                return spans
            index = week.index + 1
            week = self._weeks.get(index) or self._build(index)

    def holidays_in(self, a: int, b: int) -> list[tuple[int, int, date]]:
        """The parts of `[a, b)` on a holiday of the calendar: `(start, end, local date)`,
        each holiday being the real span from its local 00:00 to the next local 00:00."""
        if b <= a or not self._holidays:
            return []
        first = datetime.fromtimestamp(a // US_PER_SECOND, self._tz).date().toordinal()
        last = datetime.fromtimestamp((b - 1) // US_PER_SECOND, self._tz).date().toordinal()
        if not any(first <= day <= last for day in self._holidays):
            return []
        found: list[tuple[int, int, date]] = []
        ordinal = first
        while True:
            day_start = self._to_utc_s(ordinal, 0) * US_PER_SECOND
            if day_start >= b:
                return found
            if ordinal in self._holidays:
                day_end = self._to_utc_s(ordinal + 1, 0) * US_PER_SECOND
                lo, hi = max(a, day_start), min(b, day_end)
                if lo < hi:
                    found.append((lo, hi, date.fromordinal(ordinal)))
            ordinal += 1

    # -- weeks ---------------------------------------------------------------------------

    def _locate(self, t: int) -> _Week:
        """The week whose real span `[start, end)` contains `t`."""
        i = (t + self._guess_us) // 604_800_000_000  # WEEK_US; a guess, corrected below
        week = self._weeks.get(i)
        if week is None:
            week = self._build(i)
        if week.start <= t < week.end:
            return week
        while t < week.start:
            i -= 1
            week = self._weeks.get(i) or self._build(i)
        while t >= week.end:
            i += 1
            week = self._weeks.get(i) or self._build(i)
        return week

    def _build(self, index: int) -> _Week:
        first = _WEEK0_ORDINAL + 7 * index
        starts: list[int] = []
        ends: list[int] = []
        cum: list[int] = []
        acc = 0
        for day, intervals in enumerate(self._weekly):
            ordinal = first + day
            if not intervals or ordinal in self._holidays:
                continue
            for local_start, local_end in intervals:
                lo = self._to_utc_s(ordinal, local_start) * US_PER_SECOND
                hi = self._to_utc_s(ordinal, local_end) * US_PER_SECOND
                if hi <= lo:  # the whole interval lies in a spring-forward gap
                    continue
                acc += hi - lo
                if ends and ends[-1] == lo:  # touching (e.g. ...-24:00 then 00:00-...)
                    ends[-1] = hi
                    cum[-1] = acc
                else:
                    starts.append(lo)
                    ends.append(hi)
                    cum.append(acc)
        week = _Week(
            index,
            self._to_utc_s(first, 0) * US_PER_SECOND,
            self._to_utc_s(first + 7, 0) * US_PER_SECOND,
            starts,
            ends,
            cum,
        )
        self._weeks[index] = week
        return week

    # -- local wall time -> instant --------------------------------------------------------

    def _offset_at(self, u: int) -> int:
        """UTC offset in seconds at the UTC instant `u` (whole seconds)."""
        return _offset_s(datetime.fromtimestamp(u, self._tz).utcoffset())

    def _to_utc_s(self, ordinal: int, second_of_day: int) -> int:
        """The instant (whole UTC seconds since the epoch) of a local date and second of day:
        the earliest instant whose local wall time is at or after it (see module doc)."""
        extra_days, second_of_day = divmod(second_of_day, DAY_S)
        ordinal += extra_days  # 24:00 -> 00:00 of the next date
        naive = (ordinal - _EPOCH_ORDINAL) * DAY_S + second_of_day
        day = date.fromordinal(ordinal)
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        local = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=self._tz)
        offset0 = _offset_s(local.utcoffset())  # fold=0: first occurrence if ambiguous
        u = naive - offset0
        if u + self._offset_at(u) == naive:
            return u  # round-trips: an ordinary or ambiguous (first occurrence) time
        # A spring-forward gap: find the first instant whose wall time is >= naive, i.e. the
        # transition instant, by bisection between the two offsets' readings.
        offset1 = _offset_s(local.replace(fold=1).utcoffset())
        lo = naive - max(offset0, offset1) - 1
        while lo + self._offset_at(lo) >= naive:  # defensive: keep `lo` before the gap
            lo -= 3600
        hi = u
        while hi + self._offset_at(hi) < naive:  # defensive: keep `hi` after the gap
            hi += 3600
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if mid + self._offset_at(mid) >= naive:
                hi = mid
            else:
                lo = mid
        return hi


def calendar_from_spec(spec: CalendarSpec) -> BusinessCalendar:
    """Build the calendar of a parsed policy calendar (24x7 or weekly hours, holidays)."""
    weekly = None if spec.is_24x7 else spec.weekly_intervals()
    return BusinessCalendar(spec.timezone, weekly, spec.holidays)
