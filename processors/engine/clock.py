"""One SLA metric clock: counted time, pauses, target, thresholds and its next timer.

A clock keeps the instants at which it ran as a flat list of segment ends
`[start0, end0, start1, end1, ..., startN]`: an odd length means it is running now.
Keeping the segments (not just a running total) is what lets a priority change find
the exact past instant at which a new, shorter target was reached (docs/semantics.md: Warnings, breaches and time order).

A policy version that changes the calendar while the clock runs (docs/semantics.md: Policy
changes) freezes the segments counted so far into an `Era` that names the version and tier
whose calendar counted them; the clock goes on under the new calendar from the change. An
era holds only ids (the state stays small); its calendar is looked up when a past instant
must be found again (`CalendarOf`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from slaclock.processors.engine.calendar import BusinessCalendar
from slaclock.processors.engine.policy import Threshold


class Era(NamedTuple):
    """Closed segments counted under an earlier policy version's calendar."""

    version: str
    tier: str
    segments: list[int]  # [start0, end0, ...]: closed


CalendarOf = Callable[[str, str], BusinessCalendar]
"""(version id, tier) -> the calendar that tier had in that version."""


class Phase(IntEnum):
    ACTIVE = 0  # counting or paused, outcome not known yet
    COMPLETED = 1
    CANCELLED = 2


class MetricClock:
    """Mutable state of one metric cycle of one ticket."""

    __slots__ = (
        "breached",
        "closed_counted",
        "completions",
        "cycle",
        "due",
        "eras",
        "metric",
        "next_threshold",
        "phase",
        "segments",
        "started",
        "target",
    )

    def __init__(self, metric: str, cycle: int, started: int, target: int) -> None:
        self.metric = metric
        self.cycle = cycle
        self.started = started
        self.target = target
        self.segments: list[int] = []
        self.closed_counted = 0  # counted time of the closed segments
        self.breached = False
        self.next_threshold = 0  # index of the first threshold not yet warned or skipped
        self.phase = Phase.ACTIVE
        self.completions = 0
        self.due: int | None = None  # next timer instant (warning or breach), derived
        self.eras: list[Era] = []  # segments counted under earlier calendars, oldest first

    # -- counting -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.phase is Phase.ACTIVE and len(self.segments) % 2 == 1

    def counted(self, calendar: BusinessCalendar, now: int) -> int:
        if len(self.segments) % 2 == 1:
            return self.closed_counted + calendar.counted_between(self.segments[-1], now)
        return self.closed_counted

    def resume(self, now: int) -> None:
        if len(self.segments) % 2 == 0:
            self.segments.append(now)

    def pause(self, calendar: BusinessCalendar, now: int) -> None:
        if len(self.segments) % 2 == 1:
            self.closed_counted += calendar.counted_between(self.segments[-1], now)
            self.segments.append(now)

    def stop(self, calendar: BusinessCalendar, now: int) -> None:
        """Stop counting with no timer: a stopped metric is not running (docs/semantics.md: Metrics).

        Unlike a pause, a stop exactly at a threshold or deadline instant warns / breaches
        nothing; whatever resumes the clock recomputes it (a reopen, docs/semantics.md: Warnings, breaches and time order).
        """
        self.pause(calendar, now)
        self.due = None

    def freeze(self, version: str, tier: str) -> None:
        """Keep the (closed) segments so far as counted by `version`'s `tier` calendar."""
        assert len(self.segments) % 2 == 0, "pause the clock before freezing its segments"
        if self.segments:
            self.eras.append(Era(version, tier, self.segments))
            self.segments = []

    def instant_reaching(
        self, calendar: BusinessCalendar, value: int, past: CalendarOf | None = None
    ) -> int | None:
        """The earliest instant at which counted time reached (or will reach) `value`.

        None when the clock is paused below `value` (no projected instant). `calendar`
        counts the current segments, `past` the frozen eras' (needed only if it has any).
        """
        if value > self.closed_counted:
            if len(self.segments) % 2 == 1:
                return calendar.instant_after(self.segments[-1], value - self.closed_counted)
            return None
        if value <= 0:
            if self.eras:
                return self.eras[0].segments[0]
            return self.segments[0] if self.segments else self.started
        acc = 0
        for era in self.eras:
            assert past is not None, "a clock with eras needs their calendars"
            era_calendar = past(era.version, era.tier)
            segments = era.segments
            for i in range(0, len(segments) - 1, 2):
                length = era_calendar.counted_between(segments[i], segments[i + 1])
                if acc + length >= value:
                    return era_calendar.instant_after(segments[i], value - acc)
                acc += length
        segments = self.segments
        for i in range(0, len(segments) - 1, 2):
            length = calendar.counted_between(segments[i], segments[i + 1])
            if acc + length >= value:
                return calendar.instant_after(segments[i], value - acc)
            acc += length
        raise AssertionError("closed segments do not add up to closed_counted")

    # -- timers -------------------------------------------------------------------------

    def refresh_due(
        self,
        calendar: BusinessCalendar,
        thresholds: tuple[Threshold, ...],
        past: CalendarOf | None = None,
    ) -> None:
        """Recompute the next timer: the next threshold crossing, else the deadline.

        A paused clock still has a timer if it stopped exactly at (or past) the point: a
        pause at the deadline instant is applied first, then the breach due at that same
        instant fires (docs/semantics.md: Warnings, breaches and time order: events at t before timers at t).
        """
        if self.phase is not Phase.ACTIVE or self.breached:
            self.due = None
            return
        if self.next_threshold < len(thresholds):
            point = thresholds[self.next_threshold].point(self.target)
        else:
            point = self.target
        self.due = self.instant_reaching(calendar, point, past)

    def deadline(self, calendar: BusinessCalendar, past: CalendarOf | None = None) -> int | None:
        return self.instant_reaching(calendar, self.target, past)

    # -- snapshot -------------------------------------------------------------------------

    def to_record(self) -> list[object]:
        """The clock as the changelog holds it: a JSON array laid out as `MetricRecord`."""
        return list(
            MetricRecord(
                self.metric,
                self.cycle,
                self.started,
                self.target,
                self.segments,
                self.closed_counted,
                self.breached,
                self.next_threshold,
                int(self.phase),
                self.completions,
                self.due,
                [[era.version, era.tier, era.segments] for era in self.eras],
            )
        )

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> MetricClock:
        """Rebuild a clock from `to_record`'s array (decoded JSON; its arity is checked)."""
        if len(record) == len(MetricRecord._fields) - 1:  # written before policy versions
            record = [*record, []]
        r = MetricRecord._make(record)
        clock = cls(r.metric, r.cycle, r.started, r.target)
        clock.segments = list(r.segments)
        clock.closed_counted = r.closed_counted
        clock.breached = bool(r.breached)
        clock.next_threshold = r.next_threshold
        clock.phase = Phase(r.phase)
        clock.completions = r.completions
        clock.due = r.due
        clock.eras = [Era(str(v), str(t), list(segments)) for v, t, segments in r.eras]
        return clock


class MetricRecord(NamedTuple):
    """The layout of a metric clock's state record (a JSON array, these fields in order)."""

    metric: str
    cycle: int
    started: int  # microseconds UTC, as every instant
    target: int  # counted microseconds
    segments: list[int]  # [start0, end0, ..., startN]: odd length = counting now
    closed_counted: int
    breached: bool
    next_threshold: int  # index of the first threshold not yet warned or skipped
    phase: int  # `Phase`
    completions: int
    due: int | None  # next timer instant
    eras: list[list[Any]]  # `Era`s as [version, tier, segments]
