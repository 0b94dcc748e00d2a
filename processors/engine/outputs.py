"""Typed output records of stage 1: `sla.warning`, `sla.breach`, `sla.completed`,
`sla.cancelled` (docs/semantics.md: Outputs).

The engine builds each output as one of these TypedDicts, so mypy checks every field name
and type where the output is made; the key order of the literal is the wire order. Past
the engine, adapters, the ledger and tests handle outputs generically as `Output` (a JSON
object), which every typed output converts to with `as_output`. `schemas/outputs.py` is
the subscriber-facing contract these records meet (a property test checks every one).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, cast

Output = dict[str, Any]
"""Any output event as a JSON object (ticket outputs, credits, statements...)."""

Seconds = int | float  # whole seconds as an int, else a float (see `seconds_value`)


class TicketOutputBase(TypedDict):
    """The fields every ticket output has, in their fixed order."""

    event_id: str
    type: str
    ticket_id: str
    customer_id: str
    tier: str
    priority: str  # the ticket's current priority
    metric: str
    cycle: int
    at: str  # RFC 3339 UTC: the instant of the SLA fact
    policy_version: str  # the version the ticket ran under when this was decided
    group: str | None  # the group of a group metric (docs/semantics.md: Groups), else None


class WarningOutput(TicketOutputBase):
    threshold: float
    deadline: str  # projected: the deadline if the metric counts on from `at`
    target_seconds: Seconds


class BreachOutput(TicketOutputBase):
    deadline: str  # = at
    decided_at: str
    target_seconds: Seconds


class CompletedOutput(TicketOutputBase):
    outcome: Literal["met", "breached"]
    elapsed_seconds: Seconds  # counted time
    target_seconds: Seconds


CancelReason = Literal["solved", "closed", "no_target", "hold_ended"]


class CancelledOutput(TicketOutputBase):
    """A tracked cycle that ended without an outcome (no statement counts it)."""

    reason: CancelReason
    elapsed_seconds: Seconds  # counted time when it ended
    target_seconds: Seconds  # the target it had when it ended
    breached: bool


TicketOutput = WarningOutput | BreachOutput | CompletedOutput | CancelledOutput


def as_output(output: TicketOutput) -> Output:
    """A typed ticket output as the generic JSON object the runtimes pass on (no copy)."""
    return cast(Output, output)
