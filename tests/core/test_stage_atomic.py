"""A rejected record leaves no trace: no clock move, no timer fired, no output lost.

The stage decides whether a record is acceptable (unknown ticket, a ticket whose closed
state the clock step would purge, a second `ticket.created`) before the clock moves or any
timer fires, so the outputs of other tickets can never be fired and then dropped with the
rejection.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.build_info import core_compiled
from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import Output, TicketEngine, TicketState
from slaclock.processors.replay import Replayer
from slaclock.schemas.rejection import Rejected, decode_event
from tests.core.builders import created, customer_reply, make_policy, status
from tests.core.reference_model import (
    REF_POLICY_YAML,
    Scenario,
    minute_of,
    minute_text,
    random_scenario,
)

DAY_US = 86_400 * US_PER_SECOND

# Named instants. Enterprise, high: first_response 1h with warnings at 50 % and 75 %;
# acme's first_response credit is 1 % of 1000.00 EUR.
T1_CREATED = "2026-03-02T09:00:00Z"
T1_CLOSED = "2026-03-02T09:10:00Z"
T1_PURGED = "2026-03-09T09:10:00Z"  # closed + 7 d retention
T2_CREATED = "2026-03-09T09:00:00Z"
T2_WARN_50 = "2026-03-09T09:30:00Z"
T2_WARN_75 = "2026-03-09T09:45:00Z"
T2_BREACH = "2026-03-09T10:00:00Z"
T1_LATE_REPLY = "2026-03-09T10:30:00Z"  # after T1's purge and T2's breach


class Run:
    """A replayer with a chosen closed-ticket retention, collecting outputs and rejections."""

    def __init__(self, policy: CompiledPolicy, retention_us: int = 7 * DAY_US) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.replayer = Replayer(policy, self.outputs.append, closed_retention_us=retention_us)

    def feed(self, events: Sequence[dict[str, Any]]) -> Run:
        for event in events:
            try:
                self.replayer.on_line(orjson.dumps(event))
            except Rejected as rejected:
                self.rejected.append(rejected.error_class)
        return self

    def until(self, at: str) -> Run:
        self.replayer.finish(parse_instant(at))
        return self


def test_reply_to_a_purged_ticket_keeps_other_tickets_warnings_breach_and_credit() -> None:
    run = Run(make_policy()).feed(
        [
            created(T1_CREATED, ticket="T1"),
            status(T1_CLOSED, "closed", ticket="T1"),
            created(T2_CREATED, ticket="T2"),
            customer_reply(T1_LATE_REPLY, ticket="T1"),
        ]
    )
    run.until(T1_LATE_REPLY)
    assert run.rejected == ["UnknownTicket"]
    t2 = [(o["type"], o["at"]) for o in run.outputs if o["ticket_id"] == "T2"]
    assert t2 == [
        ("sla.warning", T2_WARN_50),
        ("sla.warning", T2_WARN_75),
        ("sla.breach", T2_BREACH),
        ("sla.credit", T2_BREACH),
    ]
    credit = run.outputs[-1]
    assert (credit["amount"], credit["currency"]) == ("10.00", "EUR")
    assert "T1" not in run.replayer.store


def test_reply_to_a_purged_ticket_does_not_move_the_clock() -> None:
    run = Run(make_policy()).feed(
        [
            created(T1_CREATED, ticket="T1"),
            status(T1_CLOSED, "closed", ticket="T1"),
            created(T2_CREATED, ticket="T2"),
            customer_reply(T1_LATE_REPLY, ticket="T1"),
        ]
    )
    assert run.replayer.stage.clock == parse_instant(T2_CREATED)
    assert run.replayer.stage.counters.late == 0
    # nothing of T2 fired: the rejection was decided first
    assert [o for o in run.outputs if o["ticket_id"] == "T2"] == []


def test_reply_to_a_closed_ticket_before_its_purge_is_ignored_not_rejected() -> None:
    just_before = "2026-03-09T09:09:59Z"
    run = Run(make_policy()).feed(
        [
            created(T1_CREATED, ticket="T1"),
            status(T1_CLOSED, "closed", ticket="T1"),
            customer_reply(just_before, ticket="T1"),
        ]
    )
    assert run.rejected == []
    assert run.replayer.stage.counters.ignored_closed == 1


def test_reply_exactly_at_the_purge_instant_is_still_ignored() -> None:
    # Events at t come before timers at t: the purge due at T1_PURGED has not happened.
    run = Run(make_policy()).feed(
        [
            created(T1_CREATED, ticket="T1"),
            status(T1_CLOSED, "closed", ticket="T1"),
            customer_reply(T1_PURGED, ticket="T1"),
        ]
    )
    assert run.rejected == []
    assert run.replayer.stage.counters.ignored_closed == 1


def test_ticket_created_again_after_the_purge_starts_a_new_ticket() -> None:
    run = Run(make_policy()).feed(
        [
            created(T1_CREATED, ticket="T1"),
            status(T1_CLOSED, "closed", ticket="T1"),
            created(T1_LATE_REPLY, ticket="T1"),
        ]
    )
    assert run.rejected == []
    state = run.replayer.store["T1"]
    assert state.closed_at is None and state.status == "new"


def test_ticket_created_again_before_the_purge_is_a_duplicate_ticket() -> None:
    run = Run(make_policy()).feed(
        [
            created(T1_CREATED, ticket="T1"),
            status(T1_CLOSED, "closed", ticket="T1"),
            created("2026-03-05T00:00:00Z", ticket="T1"),
        ]
    )
    assert run.rejected == ["DuplicateTicket"]


@pytest.mark.skipif(
    core_compiled(), reason="a compiled TicketEngine cannot be subclassed by Python code"
)
def test_a_timer_that_does_not_advance_raises_instead_of_looping() -> None:
    class StuckEngine(TicketEngine):
        """A broken engine that fires nothing and leaves the timer where it was."""

        def fire_due(self, state: TicketState, now: int) -> list[Output]:
            return []

    store: dict[str, TicketState] = {}
    stage = TicketStage(StuckEngine(make_policy()), store)
    event = created(T1_CREATED, ticket="T1")
    stage.on_event(decode_event(orjson.dumps(event)), parse_instant(T1_CREATED))
    with pytest.raises(RuntimeError, match=r"timer of ticket 'T1'.*did not advance"):
        stage.advance_to(parse_instant("2026-03-02T12:00:00Z"))


# -- property: bad records change nothing -------------------------------------------------

RETENTION_MIN = 120
RETENTION_US = RETENTION_MIN * 60 * US_PER_SECOND
TICK_LAG_MIN = 120
"""How far past an event a clock tick may come (the grace-and-ticks test): a closing event
applied after such a tick is late, closed at the clock, and retained from there."""
FAR_FUTURE = minute_of("2027-01-01T00:00:00Z")


def _with_bad_records(
    rng: random.Random, events: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """`events` with rejected or dropped records inserted; and how many must be rejected.

    Inserted: events for tickets never created, replies to tickets closed more than the
    retention before (whose state the clock step purges), a second `ticket.created` for an
    open ticket, and repeated event ids of open tickets. Each gets an instant that would
    make every later event late if it moved the clock.
    """
    out: list[dict[str, Any]] = []
    known: dict[str, dict[str, Any]] = {}  # open tickets: id -> their last event
    closed_at: dict[str, int] = {}
    rejected = 0
    serial = 0

    def bad(kind: str, ticket: str, minute: int, **fields: Any) -> dict[str, Any]:
        nonlocal serial
        serial += 1
        return {
            "event_id": f"bad-{serial}",
            "type": kind,
            "ticket_id": ticket,
            "occurred_at": minute_text(minute),
            **fields,
        }

    for event in events:
        if rng.random() < 0.35:
            roll = rng.random()
            late = rng.choice((FAR_FUTURE, minute_of(event["occurred_at"]) + rng.randint(0, 3000)))
            if roll < 0.25:
                out.append(bad("ticket.customer_replied", f"ghost-{serial}", late))
                rejected += 1
            elif roll < 0.5 and closed_at:
                ticket, closed = rng.choice(sorted(closed_at.items()))
                # past the retention even for a close applied late, at a tick's clock
                after = max(late, closed + TICK_LAG_MIN + RETENTION_MIN + 1)
                out.append(bad("ticket.customer_replied", ticket, after))
                rejected += 1
            elif roll < 0.75 and known:
                ticket = rng.choice(sorted(known))
                extra = {"customer_id": "acme", "priority": "high"}
                out.append(bad("ticket.created", ticket, late, **extra))
                rejected += 1
            elif known:
                again = known[rng.choice(sorted(known))]
                out.append({**again, "occurred_at": minute_text(late)})
        out.append(event)
        ticket = event["ticket_id"]
        closing = event.get("status") == "closed"
        if ticket in closed_at:
            continue
        if closing:
            closed_at[ticket] = minute_of(event["occurred_at"])
            known.pop(ticket, None)
        else:
            known[ticket] = event
    return out, rejected


def _outputs(policy: CompiledPolicy, events: Sequence[dict[str, Any]], until: str) -> Run:
    return Run(policy, RETENTION_US).feed(events).until(until)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), tickets=st.integers(1, 5))
def test_rejected_records_do_not_change_the_outputs_of_other_tickets(
    rng: random.Random, tickets: int
) -> None:
    policy = make_policy(REF_POLICY_YAML)
    scenario: Scenario = random_scenario(rng, tickets)
    clean = _outputs(policy, scenario.events, scenario.until)
    noisy_events, must_reject = _with_bad_records(rng, scenario.events)
    noisy = _outputs(policy, noisy_events, scenario.until)
    assert len(noisy.rejected) - len(clean.rejected) == must_reject
    assert noisy.outputs == clean.outputs


def _run_stage(
    policy: CompiledPolicy,
    events: Sequence[dict[str, Any]],
    ticks: dict[int, int],
    until: int,
) -> list[dict[str, Any]]:
    """Drive a stage as the Kafka worker does: grace, and clock ticks between events."""
    store: dict[str, TicketState] = {}
    stage = TicketStage(TicketEngine(policy), store, 2 * US_PER_SECOND, RETENTION_US)
    outputs: list[dict[str, Any]] = []
    for event in events:
        with contextlib.suppress(Rejected):  # rejected: dead-lettered, nothing else
            outputs += stage.on_event(
                decode_event(orjson.dumps(event)), parse_instant(event["occurred_at"])
            )
        tick = ticks.get(id(event))
        if tick is not None:
            outputs += stage.advance_to(tick)
    return outputs + stage.advance_to(until)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), tickets=st.integers(1, 5))
def test_rejected_records_change_nothing_with_grace_and_clock_ticks(
    rng: random.Random, tickets: int
) -> None:
    policy = make_policy(REF_POLICY_YAML)
    scenario = random_scenario(rng, tickets)
    ticks = {
        id(event): parse_instant(event["occurred_at"])
        + rng.randint(0, TICK_LAG_MIN * 60) * US_PER_SECOND
        for event in scenario.events
        if rng.random() < 0.3
    }
    until = parse_instant(scenario.until)
    clean = _run_stage(policy, scenario.events, ticks, until)
    noisy_events, _ = _with_bad_records(rng, scenario.events)
    assert _run_stage(policy, noisy_events, ticks, until) == clean
