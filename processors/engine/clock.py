"""One SLA metric clock: counted time, pauses, target, thresholds and its next timer.

A clock keeps the instants at which it ran as a flat list of segment ends
`[start0, end0, start1, end1, ..., startN]`: an odd length means it is running now.
Keeping the segments (not just a running total) is what lets a priority change find
the exact past instant at which a new, shorter target was reached (docs/semantics.md: Warnings, breaches and time order).

For explanations (docs/semantics.md: Explanations) a clock also keeps, small and apart from
the counting, *why* its condition changed: `marks`, one `(at, code, event_id)` each time it
began counting (`r`), was paused (`p:<status>`), stopped (`s:<status>`), completed
(`c:<status>`) or cancelled (`x:<reason>`), and `history`, one
`(at, priority, policy_version, target, event_id)` for its first target and each change of
it. Neither is read when counting: the timeline takes its intervals from `eras` and `segments`. In the
record both are flat arrays, instants as offsets from `started`, event ids as indexes into
the ticket's table of event ids (most name the same few events).

A policy version that changes the calendar while the clock runs (docs/semantics.md: Policy
changes) freezes the segments counted so far into an `Era` that names the version and tier
whose calendar counted them; the clock goes on under the new calendar from the change. An
era holds only ids (the state stays small); its calendar is looked up when a past instant
must be found again (`CalendarOf`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, Final, NamedTuple, cast

from slaclock.processors.engine.calendar import BusinessCalendar
from slaclock.processors.engine.policy import Threshold

RUN: Final = "r"
"""Mark codes (see the module doc): counting began; the others carry a status or reason."""
PAUSED: Final = "p:"
STOPPED: Final = "s:"
COMPLETED: Final = "c:"
CANCELLED: Final = "x:"
_CODES: dict[str, str] = {}


VERSION_CAUSE: Final = "\x00policy:"
"""The prefix of a cause that is a policy version taking effect (not an event): what
`version_cause` notes; no event id starts with a NUL character."""


def version_cause(version_id: str) -> str:
    """The cause a clock notes for policy version `version_id` taking effect at its P."""
    return mark_code(VERSION_CAUSE, version_id)


def cause_version(cause: str) -> str | None:
    """The version id of a cause `version_cause` made, else None (an event id or "")."""
    return cause[len(VERSION_CAUSE) :] if cause.startswith(VERSION_CAUSE) else None


def mark_code(kind: str, detail: str = "") -> str:
    """A mark code (`PAUSED`, "pending" -> "p:pending"), one shared string per code (also
    used to share a restored clock's priority and version strings)."""
    code = kind + detail
    return _CODES.setdefault(code, code)


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
        "group",
        "history",
        "marks",
        "metric",
        "next_threshold",
        "phase",
        "segments",
        "started",
        "target",
    )

    def __init__(self, metric: str, cycle: int, started: int, target: int, group: str = "") -> None:
        self.metric = metric
        # the internal group of a group metric (docs/semantics.md: Groups), "" for the
        # customer metrics
        self.group = group
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
        # Flat (fewer objects per ticket): at, code, event_id, ... (`mark_list`)
        self.marks: list[int | str] = []
        # Flat: at, priority, policy_version, target, event_id, ... (`target_list`)
        self.history: list[int | str] = []

    # -- explanation notes (never read when counting) --------------------------------------

    def mark(self, at: int, kind: str, detail: str, cause: str) -> None:
        """Note why the clock's condition changed at `at` (`kind` + `detail`: a mark code)."""
        self.marks += (at, mark_code(kind, detail), cause)

    def note_target(self, at: int, priority: str, version: str, cause: str) -> None:
        """Note the clock's target as of `at` when it is the first or differs from the last."""
        history = self.history
        if history and history[-4:-1] == [priority, version, self.target]:
            return
        history += (at, priority, version, self.target, cause)

    def mark_list(self) -> list[tuple[int, str, str]]:
        """The marks as (at, code, event_id), oldest first."""
        m = self.marks
        return [
            (cast(int, m[i]), cast(str, m[i + 1]), cast(str, m[i + 2])) for i in range(0, len(m), 3)
        ]

    def target_list(self) -> list[tuple[int, str, str, int, str]]:
        """The targets as (at, priority, policy_version, target, event_id), oldest first."""
        h = self.history
        return [
            (
                cast(int, h[i]),
                cast(str, h[i + 1]),
                cast(str, h[i + 2]),
                cast(int, h[i + 3]),
                cast(str, h[i + 4]),
            )
            for i in range(0, len(h), 5)
        ]

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

    def ended_at(self) -> int | None:
        """The instant of its completion or cancellation, as its marks note it (None: not
        ended, or a clock written before explanations)."""
        marks = self.marks
        for i in range(len(marks) - 3, -1, -3):
            code = cast(str, marks[i + 1])
            if code.startswith((COMPLETED, CANCELLED)):
                return cast(int, marks[i])
        return None

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

    def to_record(self, ids: dict[str, int] | None = None) -> list[object]:
        """The clock as the changelog holds it: a JSON array laid out as `MetricRecord`.

        `ids`: the ticket's table of event ids (id -> index), extended with the ones this
        clock names; without it the ids are written out.
        """
        # Straight from the flat lists into the record (once per changed ticket per batch
        # in a worker: no tuples per mark, no `MetricRecord` in between; the same array).
        started = self.started
        marks: list[object] = []
        m = self.marks
        for i in range(0, len(m), 3):
            marks.append(cast(int, m[i]) - started)
            marks.append(m[i + 1])
            marks.append(_ref(ids, cast(str, m[i + 2])))
        h = self.history
        history: list[object]
        if len(h) == 5 and h[0] == started and h[3] == self.target:
            history = [h[1], h[2], _ref(ids, cast(str, h[4]))]  # the short form
        else:
            history = []
            for i in range(0, len(h), 5):
                history.append(cast(int, h[i]) - started)
                history.append(h[i + 1])
                history.append(h[i + 2])
                history.append(h[i + 3])
                history.append(_ref(ids, cast(str, h[i + 4])))
        record: list[object] = [  # laid out as `MetricRecord`
            self.metric,
            self.cycle,
            started,
            self.target,
            self.segments,
            self.closed_counted,
            self.breached,
            self.next_threshold,
            int(self.phase),
            self.completions,
            self.due,
            marks,
            history,
            [[era.version, era.tier, era.segments] for era in self.eras],
        ]
        if self.group:  # a customer metric's record stays as it was before groups
            record.append(self.group)
        return record

    @classmethod
    def from_record(cls, record: Sequence[Any], ids: Sequence[str] = ()) -> MetricClock:
        """Rebuild a clock from `to_record`'s array (decoded JSON; its arity is checked).

        A record written before explanations (11 fields, no marks nor history) loads with
        both empty: its timeline shows no causes; one written before policy versions (13)
        loads with no eras.
        """
        if not MIN_METRIC_FIELDS <= len(record) <= len(MetricRecord._fields):
            raise TypeError(
                f"a metric record has {MIN_METRIC_FIELDS} to {len(MetricRecord._fields)} "
                f"fields, not {len(record)}"
            )
        r = MetricRecord(*record)
        clock = cls(r.metric, r.cycle, r.started, r.target, mark_code(r.group))
        clock.segments = list(r.segments)
        clock.closed_counted = r.closed_counted
        clock.breached = bool(r.breached)
        clock.next_threshold = r.next_threshold
        clock.phase = Phase(r.phase)
        clock.completions = r.completions
        clock.due = r.due
        started = clock.started
        # share the objects the clock already holds (a restored store holds many states)
        instants = {t: t for t in clock.segments}
        instants[started] = started
        m = r.marks
        for i in range(0, len(m), 3):
            at = started + m[i]
            clock.marks += (instants.get(at, at), mark_code(m[i + 1]), _deref(ids, m[i + 2]))
        h = r.history
        if len(h) == 3:  # the short form: one target, set at the start
            priority, version = mark_code(h[0]), mark_code(h[1])
            clock.history += (started, priority, version, clock.target, _deref(ids, h[2]))
        else:
            for i in range(0, len(h), 5):
                at = started + h[i]
                target = clock.target if h[i + 3] == clock.target else h[i + 3]
                clock.history += (
                    instants.get(at, at),
                    mark_code(h[i + 1]),
                    mark_code(h[i + 2]),
                    target,
                    _deref(ids, h[i + 4]),
                )
        clock.eras = [Era(mark_code(str(v)), mark_code(str(t)), list(s)) for v, t, s in r.eras]
        return clock


def _ref(ids: dict[str, int] | None, event_id: str) -> int | str:
    if ids is None:
        return event_id
    return ids.setdefault(event_id, len(ids))


def _deref(ids: Sequence[str], ref: int | str) -> str:
    return ids[ref] if isinstance(ref, int) else ref


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
    # explanations, flat: at - started, code, event id (or its index in the ticket's table)
    marks: Sequence[Any] = ()
    # the same for targets: at - started, priority, policy_version, target, event id; or
    # just priority, policy_version, event id for a clock whose one target was set at start
    history: Sequence[Any] = ()
    # segments counted under earlier policy versions' calendars: `Era`s as [version, tier, segments]
    eras: Sequence[Any] = ()
    group: str = ""  # a group metric's group (written only for those)


MIN_METRIC_FIELDS: Final = 11
"""Fields of a metric record written before explanations: it still loads."""
