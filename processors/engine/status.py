"""A ticket's SLA status as of an instant: what `GET /tickets/{ticket_id}` answers.

Pure (no I/O, no wall clock): it reads a `TicketState` under a compiled policy at the
instant `now_us` the caller chooses. The live worker passes its partition's SLA clock,
the instant up to which warnings and breaches have been decided, so the view agrees
with the outputs: `counted_seconds` never exceeds the target of a metric reported as
`running`, and `breached` means the breach has been emitted.

States of a metric (its current cycle):
- `running`: counting, outcome open;
- `paused`: not counting (a status in `pause_on`, or `first_response` on a solved
  ticket), outcome open;
- `breached`: the deadline passed while it ran; it may still be counting (`completed`
  false) or have completed late (`completed` true);
- `met`: completed at or before its deadline;
- `cancelled`: stopped without an outcome (docs/semantics.md: Metrics); `counted_seconds` is then null,
  because the engine does not keep the instant a running metric was cancelled at.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from slaclock.processors.engine.clock import CalendarOf, MetricClock, Phase
from slaclock.processors.engine.instants import format_us, seconds_value
from slaclock.processors.engine.policy import CompiledPolicy, CompiledTier
from slaclock.processors.engine.ticket import TicketState, era_calendars
from slaclock.processors.engine.versions import PolicyBook
from slaclock.schemas.common import METRIC_ORDER

MetricState = Literal["running", "paused", "met", "breached", "cancelled"]


class NextWarning(TypedDict):
    threshold: float
    at: str | None  # null while paused: the crossing instant is not known yet


class MetricStatus(TypedDict):
    cycle: int
    state: MetricState
    counting: bool
    completed: bool
    started_at: str
    counted_seconds: int | float | None
    target_seconds: int | float
    deadline: str | None
    next_warning: NextWarning | None


class TicketStatus(TypedDict):
    ticket_id: str
    customer_id: str
    tier: str
    priority: str
    status: str
    assignee: str | None
    group: str | None
    closed_at: str | None
    as_of: str
    policy_version: str
    metrics: dict[str, MetricStatus]
    # the group clocks of the current hold (docs/semantics.md: Groups), by metric; each
    # counted in the group's calendar
    group_metrics: dict[str, MetricStatus]


def ticket_status(
    state: TicketState, policy: CompiledPolicy, now_us: int, versions: PolicyBook | None = None
) -> TicketStatus:
    """The status of every tracked metric of `state` as of `now_us`, in the canonical metric
    order, under the ticket's own policy version when `versions` holds it (else `policy`)."""
    version = None if versions is None else versions.find(state.version)
    if version is not None:
        policy = version.policy
    tier = policy.tiers[state.tier]
    calendar_of = era_calendars(versions, policy)

    group_metrics: dict[str, MetricStatus] = {}
    for metric in ("group_response", "group_resolution"):
        clock = state.group_clocks.get(metric)
        terms = None if clock is None else policy.groups.get(clock.group)
        if clock is not None and terms is not None:
            group_metrics[metric] = metric_status(clock, terms, now_us, calendar_of)

    ordered = sorted(state.metrics.values(), key=lambda c: METRIC_ORDER[c.metric])
    return {
        "ticket_id": state.ticket_id,
        "customer_id": state.customer_id,
        "tier": state.tier,
        "priority": state.priority,
        "status": state.status,
        "assignee": state.assignee,
        "group": state.group,
        "closed_at": None if state.closed_at is None else format_us(state.closed_at),
        "as_of": format_us(now_us),
        "policy_version": state.version or (policy.raw.version if policy.raw else "1"),
        "metrics": {
            clock.metric: metric_status(clock, tier, now_us, calendar_of) for clock in ordered
        },
        "group_metrics": group_metrics,
    }


def metric_status(
    clock: MetricClock, tier: CompiledTier, now_us: int, past: CalendarOf | None = None
) -> MetricStatus:
    calendar = tier.calendar
    cancelled = clock.phase is Phase.CANCELLED
    completed = clock.phase is Phase.COMPLETED
    counting = clock.running
    state: MetricState
    if cancelled:
        state = "cancelled"
    elif clock.breached:
        state = "breached"
    elif completed:
        state = "met"
    else:
        state = "running" if counting else "paused"

    counted: int | float | None = None
    if not cancelled:
        # An event is applied at its own instant, which may be ahead of the partition
        # clock by up to `grace`: never count backwards from a segment's start.
        at = max(now_us, clock.segments[-1]) if counting else now_us
        counted = seconds_value(clock.counted(calendar, at))

    deadline = None if cancelled else clock.deadline(calendar, past)
    next_warning: NextWarning | None = None
    active = clock.phase is Phase.ACTIVE and not clock.breached
    if active and clock.next_threshold < len(tier.thresholds):
        threshold = tier.thresholds[clock.next_threshold]
        crossing = clock.instant_reaching(calendar, threshold.point(clock.target), past)
        # Not counting: the crossing lies ahead by an unknown amount (a first_response
        # stopped exactly at a threshold is not warned then; its reopen recomputes it).
        next_warning = {
            "threshold": float(threshold.fraction),
            "at": None if crossing is None or not counting else format_us(crossing),
        }
    return {
        "cycle": clock.cycle,
        "state": state,
        "counting": counting,
        "completed": completed,
        "started_at": format_us(clock.started),
        "counted_seconds": counted,
        "target_seconds": seconds_value(clock.target),
        "deadline": None if deadline is None else format_us(deadline),
        "next_warning": next_warning,
    }
