"""Why this deadline: the timeline of every metric cycle of a ticket (docs/semantics.md: Explanations).

Pure: a `TicketState`, a way to find the calendar a clock counted under at an instant, and
the instant `at` of the explanation in; typed dicts out (the JSON of `GET /tickets/{id}?explain=true`
and `slaclock explain --json`).

The timeline is not a second implementation of counting. Its intervals come from the
clock's own `segments` (when it ran) and, inside each run, from the calendar's own working
intervals (`BusinessCalendar.working_spans`, the intervals `counted_between` sums): so the
counted pieces add up to the clock's counted time to the microsecond, and the instant they
reach the target is the deadline the engine computes. The clock's `marks` only *label* the
gaps (paused with a status, stopped) and the runs (the event that began them); its
`history` gives the target's changes.

A run segment is counted under one calendar, `calendar_for(clock, run_start)`. A policy
version taking effect at P (docs/semantics.md: Policy changes) splits every run at P: the
segments a clock counted before P under another calendar are its `eras`, each explained
with the calendar of the version and tier that counted it (`version_calendars`); the marks
and the target history name the version as the cause of what changed at P.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import NamedTuple, TypedDict

from slaclock.processors.engine.calendar import BusinessCalendar
from slaclock.processors.engine.clock import (
    CANCELLED,
    COMPLETED,
    PAUSED,
    RUN,
    STOPPED,
    MetricClock,
    Phase,
    cause_version,
)
from slaclock.processors.engine.instants import format_us, seconds_value
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.ticket import (
    DEFAULT_POLICY_VERSION,
    FIRST_RESPONSE,
    GROUP_ERA,
    TicketState,
    policy_version,
)
from slaclock.processors.engine.versions import PolicyBook
from slaclock.schemas.common import METRIC_ORDER

COUNTED = "counted"
OUTSIDE_HOURS = "outside_hours"
HOLIDAY = "holiday"
PAUSED_KIND = "paused"
STOPPED_KIND = "stopped"


class CalendarRef(NamedTuple):
    """A calendar with the name the policy gives it (shown as the cause of time off)."""

    name: str
    calendar: BusinessCalendar


CalendarFor = Callable[[MetricClock, int], CalendarRef]
"""The calendar a clock counted under at an instant (`version_calendars`: the era's)."""


class Cause(TypedDict, total=False):
    """Why a segment is what it is: the event that began it (and the status it set), or the
    policy version that took effect then (`event_id` null), or the calendar (and the
    holiday's local date)."""

    event_id: str | None
    policy_version: str
    status: str
    calendar: str
    holiday: str


class Piece(NamedTuple):
    """One segment of a timeline, instants in microseconds."""

    start: int
    end: int
    kind: str
    cause: Cause | None


Segment = TypedDict("Segment", {"from": str, "to": str, "kind": str, "cause": Cause | None})


class TargetChange(TypedDict):
    at: str
    priority: str
    policy_version: str
    target_seconds: int | float
    cause: Cause | None


class CycleExplanation(TypedDict):
    metric: str
    cycle: int
    group: str | None
    state: str
    breached: bool
    priority: str
    policy_version: str
    target_seconds: int | float
    counted_seconds: int | float
    deadline: str | None
    original_deadline: str | None
    started_at: str
    ended_at: str | None
    target_history: list[TargetChange]
    segments: list[Segment]


class TicketExplanation(TypedDict):
    ticket_id: str
    at: str
    cycles: list[CycleExplanation]


class CycleTimeline(NamedTuple):
    """A cycle's timeline with instants as integers (for charts and tests)."""

    clock: MetricClock
    state: str
    start: int
    end: int
    ended: bool  # completed or cancelled by `end` (else `end` is the explanation's `at`)
    pieces: list[Piece]
    counted: int
    deadline: int | None
    original_deadline: int | None
    history: list[tuple[int, str, str, int, str]]


# -- calendars ------------------------------------------------------------------------------


def tier_calendar(policy: CompiledPolicy, tier: str) -> CalendarRef:
    """A tier's calendar with the name the policy gives it."""
    compiled = policy.tiers[tier]
    name = compiled.calendar.timezone
    if policy.raw is not None and tier in policy.raw.tiers:
        name = policy.raw.tiers[tier].calendar
    return CalendarRef(name, compiled.calendar)


def group_calendar(policy: CompiledPolicy, group: str) -> CalendarRef | None:
    """A group's calendar with the name the policy gives it (None: not defined there)."""
    compiled = policy.groups.get(group)
    if compiled is None:
        return None
    name = compiled.calendar.timezone
    if policy.raw is not None and group in policy.raw.groups:
        name = policy.raw.groups[group].calendar
    return CalendarRef(name, compiled.calendar)


def tier_calendars(policy: CompiledPolicy, tier: str) -> CalendarFor:
    """`CalendarFor` of a ticket under one policy: its tier's calendar at every instant (a
    group clock's: its group's, docs/semantics.md: Groups)."""
    ref = tier_calendar(policy, tier)

    def calendar_for(clock: MetricClock, instant: int) -> CalendarRef:
        if clock.group:
            return group_calendar(policy, clock.group) or ref
        return ref

    return calendar_for


def version_calendars(versions: PolicyBook, state: TicketState) -> CalendarFor:
    """`CalendarFor` of a ticket under policy versions: an instant inside one of a clock's
    eras is counted by that era's version and tier, any later one by the ticket's own
    version and tier (what counts its current segments)."""
    own = versions.find(state.version) or versions.first
    current = tier_calendar(own.policy, state.tier)
    refs: dict[tuple[str, str], CalendarRef] = {}

    def calendar_for(clock: MetricClock, instant: int) -> CalendarRef:
        for era in clock.eras:
            segments = era.segments
            if segments and instant < segments[-1]:  # eras are closed
                key = (era.version, era.tier)
                ref = refs.get(key)
                if ref is None:
                    found = versions.find(era.version) or versions.first
                    if era.tier.startswith(GROUP_ERA):
                        group = group_calendar(found.policy, era.tier[len(GROUP_ERA) :])
                        ref = refs[key] = group or current
                        return ref
                    tier = era.tier if era.tier in found.policy.tiers else state.tier
                    ref = refs[key] = tier_calendar(found.policy, tier)
                return ref
        if clock.group:
            return group_calendar(own.policy, clock.group) or current
        return current

    return calendar_for


# -- the timeline -----------------------------------------------------------------------------


def cycle_timeline(
    clock: MetricClock, calendar_for: CalendarFor, at: int, priority: str, version: str
) -> CycleTimeline:
    """The timeline of one cycle from its start to its end (completion, cancellation) or `at`.

    `priority` and `version` stand in for a clock written before explanations (no history).
    """
    start = clock.started
    segments = clock.segments
    if clock.eras:  # counted under earlier versions' calendars first (`calendar_for` knows)
        segments = [t for era in clock.eras for t in era.segments] + segments
    marks = clock.mark_list()
    ended = clock.phase is not Phase.ACTIVE
    if ended:
        end = _end_mark(clock, marks, segments)
    else:
        known = [start, *segments, *(m[0] for m in marks)]
        end = max(at, *known)
    end = max(end, start)

    runs: list[tuple[int, int]] = []
    for i in range(0, len(segments), 2):
        run_start = segments[i]
        run_end = segments[i + 1] if i + 1 < len(segments) else end
        run_start, run_end = max(run_start, start), min(run_end, end)
        if runs:
            run_start = max(run_start, runs[-1][1])
        if run_start < run_end:
            runs.append((run_start, run_end))

    pieces: list[Piece] = []
    cursor = start
    for run_start, run_end in runs:
        if cursor < run_start:
            pieces.extend(_gap(clock, marks, cursor, run_start))
        pieces.extend(_run(clock, marks, calendar_for, run_start, run_end))
        cursor = run_end
    if cursor < end:
        pieces.extend(_gap(clock, marks, cursor, end))

    history = clock.target_list() or [(start, priority, version, clock.target, "")]
    target = clock.target
    counted = 0
    deadline: int | None = None
    for piece in pieces:
        if piece.kind != COUNTED:
            continue
        length = piece.end - piece.start
        if deadline is None and counted + length >= target:
            deadline = piece.start + (target - counted)
        counted += length
    if deadline is None and clock.phase is not Phase.CANCELLED:
        # not reached by the end: projected as if it counted on from the end
        try:
            deadline = calendar_for(clock, end).calendar.instant_after(end, target - counted)
        except ValueError:  # a calendar without working time: no instant reaches it
            deadline = None
    if deadline is not None and target > 0:
        pieces = _split_at(pieces, deadline)

    original: int | None = None
    if segments:
        first_run = segments[0]
        in_force = history[0]
        for change in history:
            if change[0] <= first_run:
                in_force = change
        calendar = calendar_for(clock, first_run).calendar
        with suppress(ValueError):  # a calendar without working time: no such instant
            original = calendar.instant_after(first_run, in_force[3])

    return CycleTimeline(
        clock,
        _state(clock, marks),
        start,
        end,
        ended,
        pieces,
        counted,
        deadline,
        original,
        history,
    )


def _end_mark(clock: MetricClock, marks: list[tuple[int, str, str]], segments: list[int]) -> int:
    for at, code, _cause in reversed(marks):
        if code.startswith((COMPLETED, CANCELLED)):
            return at
    # a clock written before explanations: a completion closed its last segment
    return segments[-1] if segments else clock.started


def _state(clock: MetricClock, marks: list[tuple[int, str, str]]) -> str:
    if clock.phase is Phase.CANCELLED:
        return "cancelled"
    if clock.breached:
        return "breached"
    if clock.phase is Phase.COMPLETED:
        return "met"
    if clock.running:
        return "running"
    for _at, code, _cause in reversed(marks):
        if code.startswith(STOPPED):
            return "stopped"
        if code.startswith(PAUSED):
            return "paused"
    return "stopped" if clock.metric == FIRST_RESPONSE else "paused"


def _run(
    clock: MetricClock,
    marks: list[tuple[int, str, str]],
    calendar_for: CalendarFor,
    a: int,
    b: int,
) -> list[Piece]:
    """A run split by the calendar: counted, outside its hours, on its holidays."""
    began: str | None = None
    for at, code, cause in marks:
        if at > a:
            break
        if code == RUN:
            began = cause or None
    counted_cause: Cause | None = None if not marks else _cause(began or "")
    name, calendar = calendar_for(clock, a)
    pieces: list[Piece] = []
    cursor = a
    for lo, hi in [*calendar.working_spans(a, b), (b, b)]:
        if cursor < lo:
            pieces.extend(_off_hours(name, calendar, cursor, lo))
        if lo < hi:
            pieces.append(Piece(lo, hi, COUNTED, counted_cause))
        cursor = max(cursor, hi)
    return pieces


def _off_hours(name: str, calendar: BusinessCalendar, a: int, b: int) -> list[Piece]:
    pieces: list[Piece] = []
    cursor = a
    for lo, hi, day in calendar.holidays_in(a, b):
        if cursor < lo:
            pieces.append(Piece(cursor, lo, OUTSIDE_HOURS, {"calendar": name}))
        pieces.append(Piece(lo, hi, HOLIDAY, {"calendar": name, "holiday": day.isoformat()}))
        cursor = hi
    if cursor < b:
        pieces.append(Piece(cursor, b, OUTSIDE_HOURS, {"calendar": name}))
    return pieces


def _gap(clock: MetricClock, marks: list[tuple[int, str, str]], a: int, b: int) -> list[Piece]:
    """Time the clock did not run, labelled by the marks in force (a status change while
    paused splits it)."""
    if not marks:
        kind = STOPPED_KIND if clock.metric == FIRST_RESPONSE else PAUSED_KIND
        return [Piece(a, b, kind, None)]
    labels: list[tuple[int, str, Cause]] = []
    current: tuple[str, Cause] | None = None
    for at, code, event_id in marks:
        if code == RUN:
            continue
        label = _gap_label(code, event_id)
        if at <= a:
            current = label
        elif at < b:
            labels.append((at, *label))
    if current is None:
        current = (PAUSED_KIND, {"event_id": None})
    pieces: list[Piece] = []
    cursor, (kind, label_cause) = a, current
    for at, next_kind, next_cause in labels:
        if at > cursor:  # two changes at one instant: the later labels what follows
            pieces.append(Piece(cursor, at, kind, label_cause))
        cursor, kind, label_cause = at, next_kind, next_cause
    pieces.append(Piece(cursor, b, kind, label_cause))
    return pieces


def _gap_label(code: str, event_id: str) -> tuple[str, Cause]:
    what, _, status = code.partition(":")
    kind = PAUSED_KIND if what + ":" == PAUSED else STOPPED_KIND
    return kind, {**_cause(event_id), "status": status}


def _cause(noted: str) -> Cause:
    """What a clock noted as a cause: an event id, or a policy version taking effect."""
    version = cause_version(noted)
    if version is not None:
        return {"event_id": None, "policy_version": version}
    return {"event_id": noted or None}


def _split_at(pieces: Sequence[Piece], instant: int) -> list[Piece]:
    """Cut the counted piece that holds `instant` strictly inside it (the deadline)."""
    out: list[Piece] = []
    for piece in pieces:
        if piece.kind == COUNTED and piece.start < instant < piece.end:
            out.append(piece._replace(end=instant))
            out.append(piece._replace(start=instant))
        else:
            out.append(piece)
    return out


# -- the JSON form ----------------------------------------------------------------------------


def explain_ticket(
    state: TicketState,
    calendar_for: CalendarFor,
    at: int,
    version: str = DEFAULT_POLICY_VERSION,
) -> TicketExplanation:
    """Every cycle the ticket has had, in metric order then cycle, as of `at`."""
    clocks = sorted(
        [*state.finished, *state.metrics.values()],
        key=lambda c: (METRIC_ORDER.get(c.metric, len(METRIC_ORDER)), c.cycle),
    )
    # then the group cycles (docs/semantics.md: Groups), metric by metric, oldest hold first
    clocks += sorted(
        [*state.group_finished, *state.group_clocks.values()],
        key=lambda c: (c.metric, c.started, c.group),
    )
    return {
        "ticket_id": state.ticket_id,
        "at": format_us(at),
        "cycles": [
            cycle_json(cycle_timeline(clock, calendar_for, at, state.priority, version))
            for clock in clocks
        ],
    }


def explain_with_policy(
    state: TicketState, policy: CompiledPolicy, at: int, versions: PolicyBook | None = None
) -> TicketExplanation:
    """`explain_ticket` under a policy (the first version) and the versions after it (each
    era's calendar, then the ticket's own version's tier's calendar)."""
    if versions is None or len(versions) == 1:
        version = state.version or policy_version(policy)
        return explain_ticket(state, tier_calendars(policy, state.tier), at, version)
    version = state.version or versions.first.version_id
    return explain_ticket(state, version_calendars(versions, state), at, version)


def cycle_json(timeline: CycleTimeline) -> CycleExplanation:
    clock = timeline.clock
    last = timeline.history[-1]
    return {
        "metric": clock.metric,
        "cycle": clock.cycle,
        "group": clock.group or None,
        "state": timeline.state,
        "breached": clock.breached,
        "priority": last[1],
        "policy_version": last[2],
        "target_seconds": seconds_value(clock.target),
        "counted_seconds": seconds_value(timeline.counted),
        "deadline": _instant(timeline.deadline),
        "original_deadline": _instant(timeline.original_deadline),
        "started_at": format_us(timeline.start),
        "ended_at": format_us(timeline.end) if timeline.ended else None,
        "target_history": [
            {
                "at": format_us(change_at),
                "priority": change_priority,
                "policy_version": change_version,
                "target_seconds": seconds_value(change_target),
                "cause": _cause(cause) if clock.history else None,
            }
            for change_at, change_priority, change_version, change_target, cause in (
                timeline.history
            )
        ],
        "segments": [
            {
                "from": format_us(piece.start),
                "to": format_us(piece.end),
                "kind": piece.kind,
                "cause": piece.cause,
            }
            for piece in timeline.pieces
        ],
    }


def _instant(value: int | None) -> str | None:
    return None if value is None else format_us(value)
