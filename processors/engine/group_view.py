"""A group's open month as people read it (`GET /groups/{group}`), and its tickets at risk.

Pure: the month comes from a ledger task's group months (`GroupLedger`) as of the ledger's
watermark; the tickets at risk from ticket states as of their partition's clock. Neither
reads the wall clock. The worker's HTTP server only gathers the inputs and adapts.

At risk (docs/semantics.md: Groups): a group cycle of the group that is counting now (not
paused, no outcome yet) whose counted time has reached `AT_RISK_FRACTION` of its target.
A cycle already past its deadline and still counting is listed too (`breached: true`): it
still needs the group's attention.
"""

from __future__ import annotations

from typing import Any, TypedDict

from slaclock.processors.engine.clock import Phase
from slaclock.processors.engine.group_ledger import (
    BREACHED,
    GROUP_METRICS,
    HANDOFFS,
    HOLDS,
    MET,
    GroupLedger,
)
from slaclock.processors.engine.instants import format_us, seconds_value
from slaclock.processors.engine.ledger import metric_figures
from slaclock.processors.engine.periods import period_bounds
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.ticket import TicketState, era_calendars
from slaclock.processors.engine.versions import PolicyBook

AT_RISK_NUMERATOR = 3
AT_RISK_DENOMINATOR = 4
AT_RISK_FRACTION = 0.75
"""A counting group cycle is at risk once counted * 4 >= target * 3 (integers: exact)."""


class AtRisk(TypedDict):
    ticket_id: str
    customer_id: str
    priority: str
    metric: str
    cycle: int
    started_at: str
    elapsed_seconds: int | float
    target_seconds: int | float
    deadline: str | None
    breached: bool


def open_group(state: TicketState) -> str | None:
    """The group whose cycle of this ticket still has no outcome (counting or paused), if
    any: the tickets worth looking at for that group's risk."""
    for clock in state.group_clocks.values():
        if clock.phase is Phase.ACTIVE and clock.group:
            return clock.group
    return None


def tickets_at_risk(
    state: TicketState,
    group: str,
    policy: CompiledPolicy,
    now_us: int,
    versions: PolicyBook | None = None,
) -> list[AtRisk]:
    """The ticket's cycles of `group` at risk at `now_us`, in metric order."""
    version = None if versions is None else versions.find(state.version)
    if version is not None:
        policy = version.policy
    terms = policy.groups.get(group)
    if terms is None:
        return []
    calendar_of = era_calendars(versions, policy)

    found: list[AtRisk] = []
    for metric in GROUP_METRICS:
        clock = state.group_clocks.get(metric)
        if clock is None or clock.group != group or not clock.running:
            continue
        # an event runs ahead of the partition clock by up to the grace: never count back
        counted = clock.counted(terms.calendar, max(now_us, clock.segments[-1]))
        if counted * AT_RISK_DENOMINATOR < clock.target * AT_RISK_NUMERATOR:
            continue
        deadline = clock.deadline(terms.calendar, calendar_of)
        found.append(
            {
                "ticket_id": state.ticket_id,
                "customer_id": state.customer_id,
                "priority": state.priority,
                "metric": metric,
                "cycle": clock.cycle,
                "started_at": format_us(clock.started),
                "elapsed_seconds": seconds_value(counted),
                "target_seconds": seconds_value(clock.target),
                "deadline": None if deadline is None else format_us(deadline),
                "breached": clock.breached,
            }
        )
    return found


def _by_deadline(entry: AtRisk) -> tuple[str, str, str]:
    return (entry["deadline"] or "", entry["ticket_id"], entry["metric"])


def order_at_risk(entries: list[AtRisk]) -> list[AtRisk]:
    """Most urgent first: by deadline (ISO UTC text sorts as time), then ticket and metric."""
    return sorted(entries, key=_by_deadline)


def group_month_view(
    groups: GroupLedger, group: str, as_of: int | None, at_risk: list[AtRisk]
) -> dict[str, Any] | None:
    """The group's open month as of the ledger's watermark `as_of`; None when no policy
    version defines the group. Counted as its statement will count them (holds begun and
    hand-offs in the month, a breach in the month it was decided, a met at its
    completion); the month is the one `as_of` falls in, in the group calendar's time zone.
    """
    version = groups.versions.first if as_of is None else groups.versions.in_force(as_of)
    terms = version.policy.groups.get(group)
    if terms is None:
        return None
    instant = as_of if as_of is not None else version.effective
    view: dict[str, Any] = {
        "group": group,
        "as_of": None if as_of is None else format_us(as_of),
        "policy_version": version.version_id,
        "timezone": None,
        "open_period": None,
        "at_risk_fraction": AT_RISK_FRACTION,
        "at_risk": order_at_risk(at_risk),
    }
    zone = groups.zone(group, instant)
    if zone is None:
        return view
    view["timezone"] = zone.key
    if as_of is None:
        return view
    period = groups.month_of(group, as_of, zone)  # as the ledger counts it
    start, end = period_bounds(period, zone)
    counters = groups.months.get(group, {}).get(period) or [0] * 6
    view["open_period"] = {
        "period": period,
        "start": format_us(start),
        "end": format_us(end),
        "holds": counters[HOLDS],
        "handoffs": counters[HANDOFFS],
        "metrics": {
            metric: metric_figures(counters[MET + i], counters[BREACHED + i])
            for i, metric in enumerate(GROUP_METRICS)
        },
        "overall": metric_figures(
            counters[MET] + counters[MET + 1], counters[BREACHED] + counters[BREACHED + 1]
        ),
    }
    return view
