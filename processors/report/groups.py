"""The report's "By group" figures (docs/semantics.md: Groups): pure functions of the
outputs, the report's window and, when the report has the events (`--events`), the
changes of each ticket's holding group as the engine applied them.

- Compliance per group and group metric, counted as the group statements count: a breach
  in the window holding its `decided_at`, a met completion (the first of its cycle) in the
  window holding its `at`. With `--period`, a group's window is its statement's month when
  the outputs hold it, else the month in the time zone of the group's calendar (from the
  policy), else in the report's time zone.
- Hand-offs (needs the events): every change of holder from one group straight to another
  group in the report's window, as a matrix from -> to, with the count and the median time
  the `from` group held the ticket before handing it off (wall-clock time from the
  assignment that began its hold to the hand-off; the median of an even count is the mean
  of the middle two, to the microsecond below).
- Customer breaches while held (needs the events): every breach of a customer metric the
  report lists, attributed to the group holding the ticket at the breach's deadline (its
  `at`). A hold covers [its assignment, the next change of holder): an assignment at
  exactly the deadline instant is applied before the breach (events at t come before
  timers at t), so the new holder is charged. No holder: "(no group)".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.report.figures import (
    METRICS,
    BreachRow,
    PolicyInfo,
    Report,
    Tally,
    Window,
    month_window,
)
from slaclock.processors.report.outputs import Output, Outputs

GROUP_METRICS: tuple[str, ...] = ("group_response", "group_resolution")
NO_GROUP = "(no group)"

HolderChange = tuple[str, int, str | None, str | None]
"""(ticket, instant, holder before, holder after), in the order the engine applied them."""


@dataclass
class GroupRow:
    group: str
    window: Window
    metrics: dict[str, Tally] = field(default_factory=lambda: {m: Tally() for m in GROUP_METRICS})
    overall: Tally = field(default_factory=Tally)
    statement: Output | None = None


@dataclass(frozen=True)
class Handoff:
    source: str  # the group handing the ticket off
    target: str  # the group receiving it
    count: int
    median_held_us: int


@dataclass
class GroupFigures:
    window: Window  # the report's window: hand-offs and customer breaches
    rows: list[GroupRow]
    holds_known: bool  # the report had the events (hand-offs, breaches while held)
    handoffs: list[Handoff] = field(default_factory=list)
    # holding group (or NO_GROUP) -> customer metric -> breaches
    breaches_while_held: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def matrix_groups(self) -> list[str]:
        names = {h.source for h in self.handoffs} | {h.target for h in self.handoffs}
        return sorted(names)

    def handoff(self, source: str, target: str) -> Handoff | None:
        for cell in self.handoffs:
            if cell.source == source and cell.target == target:
                return cell
        return None


def median_us(values: Sequence[int]) -> int:
    """The median of a non-empty list of microseconds (even count: the mean of the middle
    two, rounded down to the microsecond)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def _group_window(
    group: str,
    outputs: Outputs,
    window: Window,
    zones: Mapping[str, str],
) -> tuple[Window, Output | None]:
    if window.period is None:
        return window, None
    statement = None
    for output in outputs.group_outputs:
        if (
            output["type"] == "sla.group_statement"
            and output["group"] == group
            and output["period"] == window.period
        ):
            statement = output
    if statement is not None:
        bounds = Window(
            parse_instant(statement["period_start"]),
            parse_instant(statement["at"]),
            zones.get(group, window.timezone),
            window.period,
        )
        return bounds, statement
    return month_window(window.period, zones.get(group, window.timezone)), None


def group_rows(outputs: Outputs, window: Window, zones: Mapping[str, str]) -> list[GroupRow]:
    """Compliance per group (every group with an output, or one the policy defines)."""
    names = {o["group"] for o in outputs.group_outputs} | set(zones)
    rows: dict[str, GroupRow] = {}
    for name in sorted(names):
        bounds, statement = _group_window(name, outputs, window, zones)
        rows[name] = GroupRow(name, bounds, statement=statement)
    counted_met: set[tuple[str, str, int, str]] = set()
    for output in outputs.group_outputs:
        kind = output["type"]
        if output.get("metric") not in GROUP_METRICS:
            continue
        row = rows[output["group"]]
        if kind == "sla.breach":
            if row.window.contains(parse_instant(output.get("decided_at") or output["at"])):
                row.metrics[output["metric"]].breached += 1
                row.overall.breached += 1
        elif kind == "sla.completed" and output["outcome"] == "met":
            key = (output["ticket_id"], output["metric"], output["cycle"], output["group"])
            if key in counted_met:
                continue
            counted_met.add(key)
            if row.window.contains(parse_instant(output["at"])):
                row.metrics[output["metric"]].met += 1
                row.overall.met += 1
    return list(rows.values())


def handoffs(changes: Iterable[HolderChange], window: Window) -> list[Handoff]:
    """From -> to hand-offs in `window`, with the median time held, sorted by (from, to)."""
    began: dict[str, int] = {}  # ticket -> instant its current holder began
    held: dict[tuple[str, str], list[int]] = {}
    for ticket, at, before, after in changes:
        start = began.get(ticket)
        if before is not None and after is not None and window.contains(at) and start is not None:
            held.setdefault((before, after), []).append(at - start)
        began[ticket] = at
    return [
        Handoff(source, target, len(times), median_us(times))
        for (source, target), times in sorted(held.items())
    ]


def holder_at(changes: Sequence[tuple[int, str | None]], instant: int) -> str | None:
    """The holder at `instant` from one ticket's (instant, holder after) changes, in order."""
    holder = None
    for at, after in changes:
        if at > instant:
            break
        holder = after
    return holder


def breaches_while_held(
    changes: Iterable[HolderChange], breaches: Iterable[BreachRow]
) -> dict[str, dict[str, int]]:
    by_ticket: dict[str, list[tuple[int, str | None]]] = {}
    for ticket, at, _before, after in changes:
        by_ticket.setdefault(ticket, []).append((at, after))
    found: dict[str, dict[str, int]] = {}
    for breach in breaches:
        holder = holder_at(by_ticket.get(breach.ticket_id, []), parse_instant(breach.deadline))
        counts = found.setdefault(holder or NO_GROUP, {m: 0 for m in METRICS})
        counts[breach.metric] += 1
    return dict(sorted(found.items()))


def group_figures(
    outputs: Outputs,
    window: Window,
    zones: Mapping[str, str],
    customer_breaches: Sequence[BreachRow],
    changes: Sequence[HolderChange] | None,
) -> GroupFigures | None:
    """The "By group" figures; None when neither the outputs nor the policy name a group."""
    rows = group_rows(outputs, window, zones)
    if not rows:
        return None
    figures = GroupFigures(window, rows, holds_known=changes is not None)
    if changes is not None:
        figures.handoffs = handoffs(changes, window)
        figures.breaches_while_held = breaches_while_held(changes, customer_breaches)
    return figures


def add_groups(
    report: Report, outputs: Outputs, policy: PolicyInfo, changes: Sequence[HolderChange] | None
) -> Report:
    """The report with its "By group" figures (the customer breaches are those of its first
    section, which lists them all)."""
    first = report.sections[0]
    report.groups = group_figures(
        outputs, first.window, policy.group_zones, first.breaches, changes
    )
    return report
