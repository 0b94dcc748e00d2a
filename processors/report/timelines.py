"""The report's breach timelines: one inline SVG strip per breached cycle (docs/semantics.md:
Explanations), drawn from the same timeline `slaclock explain` prints.

The report is built from outputs, which say *that* a deadline passed, not *why* it fell
there; the why needs the ticket's state. So `slaclock report --events E` replays the events
(under the report's `--policy`) to the last event and explains each breached cycle of the
breach list. Without `--events` the list is as before.

A strip is hand-written SVG (no matplotlib: a few rectangles): time runs left to right from
the cycle's start to its end (or the last event); counted time in the metric's colour,
time outside the calendar's hours light grey, pauses and stops darker grey, holidays pink
with a mark, and the deadline as a red line. Each rectangle has a `<title>` (the segment,
its kind and cause) that a browser shows on hover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from slaclock.processors.engine.explain import CycleTimeline, cycle_timeline, version_calendars
from slaclock.processors.engine.instants import format_us
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.ticket import TicketState
from slaclock.processors.engine.versions import PolicyBook

WIDTH = 640
BAR_Y = 16
BAR_HEIGHT = 18
HEIGHT = 52
COUNTED_COLOURS = {
    "first_response": "#1f5fa8",
    "next_response": "#3d9bd1",
    "periodic_update": "#8e6bbf",
    "resolution": "#d9822b",
}
KIND_COLOURS = {
    "outside_hours": "#e6e9ee",
    "paused": "#a9b0ba",
    "stopped": "#7b8491",
    "holiday": "#f3c6dc",
}
DEADLINE_COLOUR = "#c0392b"

BreachKey = tuple[str, str, int]
"""(ticket_id, metric, cycle)"""


def breach_timelines(
    policy: CompiledPolicy,
    states: Mapping[str, TicketState],
    breaches: Iterable[BreachKey],
    at: int,
    versions: PolicyBook | None = None,
) -> dict[BreachKey, CycleTimeline]:
    """The timeline of each breached cycle whose ticket the states hold, as of `at` (each
    segment under the calendar of the policy version that counted it)."""
    drawn: dict[BreachKey, CycleTimeline] = {}
    if versions is None:
        versions = PolicyBook(policy)
    for key in breaches:
        ticket_id, metric, number = key
        state = states.get(ticket_id)
        if state is None or key in drawn:
            continue
        clock = next(
            (
                c
                for c in [*state.finished, *state.metrics.values()]
                if c.metric == metric and c.cycle == number
            ),
            None,
        )
        own = versions.find(state.version) or versions.first
        if clock is None or state.tier not in own.policy.tiers:
            continue
        drawn[key] = cycle_timeline(
            clock, version_calendars(versions, state), at, state.priority, own.version_id
        )
    return drawn


def timeline_id(page: str, ticket_id: str, metric: str, number: int) -> str:
    """A page-unique id for a breach's strip (a breach shows on its customer's page and on
    the all-customers page)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in ticket_id)
    return f"{page}-timeline-{safe}-{metric}-{number}"


def timeline_svg(timeline: CycleTimeline, chart_id: str) -> str:
    """The strip of one cycle (see the module doc)."""
    start = timeline.start
    end = max(timeline.end, timeline.deadline or timeline.end)
    span = max(1, end - start)

    def x(instant: int) -> float:
        return round((instant - start) / span * WIDTH, 2)

    counted_colour = COUNTED_COLOURS.get(timeline.clock.metric, "#1f5fa8")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(chart_id)}" '
        f'id="{escape(chart_id)}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="-2 0 {WIDTH + 4} {HEIGHT}" font-family="DejaVu Sans, sans-serif" '
        'font-size="9">',
        f'<rect x="0" y="{BAR_Y}" width="{WIDTH}" height="{BAR_HEIGHT}" fill="#ffffff" '
        'stroke="#d7dce3"/>',
    ]
    for piece in timeline.pieces:
        left, right = x(piece.start), x(piece.end)
        colour = counted_colour if piece.kind == "counted" else KIND_COLOURS.get(piece.kind, "#ccc")
        cause = piece.cause or {}
        why = ", ".join(f"{k} {v}" for k, v in cause.items() if v)
        title = f"{piece.kind} {format_us(piece.start)} to {format_us(piece.end)}"
        if why:
            title += f" ({why})"
        parts.append(
            f'<rect class="seg {piece.kind}" x="{left}" y="{BAR_Y}" '
            f'width="{max(0.5, right - left)}" height="{BAR_HEIGHT}" fill="{colour}">'
            f"<title>{escape(title)}</title></rect>"
        )
        if piece.kind == "holiday":
            parts.append(
                f'<line x1="{left}" x2="{left}" y1="{BAR_Y}" y2="{BAR_Y + BAR_HEIGHT}" '
                'stroke="#a0406f" stroke-width="1"/>'
            )
            if right - left >= 48:  # the date inside the bar, where it fits
                middle = round((left + right) / 2, 2)
                parts.append(
                    f'<text x="{middle}" y="{BAR_Y + BAR_HEIGHT / 2 + 3}" text-anchor="middle" '
                    f'fill="#7a2150">{escape(str(cause.get("holiday", "")))}</text>'
                )
    if timeline.deadline is not None:
        line = x(timeline.deadline)
        parts.append(
            f'<line class="deadline" x1="{line}" x2="{line}" y1="{BAR_Y - 6}" '
            f'y2="{BAR_Y + BAR_HEIGHT + 3}" stroke="{DEADLINE_COLOUR}" stroke-width="2">'
            f"<title>deadline {format_us(timeline.deadline)}</title></line>"
        )
        anchor = "end" if line > WIDTH * 0.8 else "start"
        parts.append(
            f'<text x="{line}" y="{BAR_Y - 8}" text-anchor="{anchor}" fill="{DEADLINE_COLOUR}">'
            f"deadline {_short(timeline.deadline)}</text>"
        )
    parts.append(f'<text x="0" y="{HEIGHT - 2}" fill="#5b6573">{_short(start)}</text>')
    parts.append(
        f'<text x="{WIDTH}" y="{HEIGHT - 2}" text-anchor="end" fill="#5b6573">{_short(end)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _short(instant: int) -> str:
    """2026-03-02T09:00:00Z -> 2026-03-02 09:00Z."""
    text = format_us(instant)
    day, _, time = text.rstrip("Z").partition("T")
    return f"{day} {time[:5]}Z"
