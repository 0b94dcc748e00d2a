"""`sla.cancelled`: every tracked cycle that ends without an outcome says so, and why.

Policy (tests/core/builders.py): enterprise (acme), 24x7; high: first_response 1h,
next_response 2h, periodic_update 4h, resolution 8h; low: resolution 5d only.
"""

from __future__ import annotations

from slaclock.processors.engine.ids import output_event_id
from slaclock.processors.engine.ledger import ledger_input
from tests.core.builders import (
    Harness,
    agent_reply,
    created,
    customer_reply,
    priority,
    status,
)

CREATED = "2026-03-02T09:00:00Z"
REPLY = "2026-03-02T09:10:00Z"  # first response; periodic_update cycle 1 starts
CUSTOMER = "2026-03-02T09:20:00Z"  # next_response cycle 1 starts: deadline 11:20
NR_DEADLINE = "2026-03-02T11:20:00Z"
SOLVED = "2026-03-02T12:00:00Z"
LATER = "2026-03-02T18:00:00Z"


def test_a_breached_next_response_ended_by_solved_is_cancelled_as_breached() -> None:
    h = Harness().feed(
        created(CREATED),
        agent_reply(REPLY),
        customer_reply(CUSTOMER),
        status(SOLVED, "solved"),
    )
    h.until(LATER)
    assert h.one("breach", "next_response")["at"] == NR_DEADLINE
    cancelled = h.one("cancelled", "next_response")
    assert {k: cancelled[k] for k in ("at", "cycle", "reason", "breached")} == {
        "at": SOLVED,
        "cycle": 1,
        "reason": "solved",
        "breached": True,
    }
    assert (cancelled["elapsed_seconds"], cancelled["target_seconds"]) == (9600, 7200)
    assert h.of("completed", "next_response") == []


def test_a_periodic_update_ended_by_solved_is_cancelled_without_a_breach() -> None:
    h = Harness().feed(created(CREATED), agent_reply(REPLY), status(SOLVED, "solved"))
    h.until(LATER)
    cancelled = h.one("cancelled", "periodic_update")
    assert (cancelled["reason"], cancelled["breached"]) == ("solved", False)
    assert (cancelled["elapsed_seconds"], cancelled["target_seconds"]) == (10200, 14400)


def test_first_response_closed_before_any_reply_is_cancelled_as_closed() -> None:
    h = Harness().feed(created(CREATED), status("2026-03-02T09:20:00Z", "closed"))
    h.until(LATER)
    cancelled = h.one("cancelled", "first_response")
    assert (cancelled["reason"], cancelled["elapsed_seconds"]) == ("closed", 1200)
    assert h.one("completed", "resolution")["outcome"] == "met"  # closed completes it


def test_a_priority_change_to_one_without_a_target_cancels_with_the_target_it_had() -> None:
    h = Harness().feed(created(CREATED), priority("2026-03-02T09:30:00Z", "low"))
    h.until(LATER)
    cancelled = h.one("cancelled", "first_response")
    assert (cancelled["reason"], cancelled["priority"]) == ("no_target", "low")
    assert (cancelled["elapsed_seconds"], cancelled["target_seconds"]) == (1800, 3600)
    assert h.of("cancelled", "resolution") == []  # low has a resolution target: retargeted


def test_a_completed_or_untracked_cycle_is_never_cancelled() -> None:
    h = Harness().feed(created(CREATED), agent_reply(REPLY), status(SOLVED, "closed"))
    h.until(LATER)
    assert [o["metric"] for o in h.of("cancelled")] == ["periodic_update"]


def test_the_cancellation_id_is_its_own_natural_key_never_a_completion_id() -> None:
    h = Harness().feed(created(CREATED), priority("2026-03-02T09:30:00Z", "low"))
    h.until(LATER)
    cancelled = h.one("cancelled", "first_response")
    assert cancelled["event_id"] == output_event_id("sla.cancelled", "T1", "first_response", 1)
    assert cancelled["event_id"] != output_event_id("sla.completed", "T1", "first_response", 1, 1)


def test_statements_do_not_take_cancellations() -> None:
    h = Harness().feed(
        created(CREATED), agent_reply(REPLY), customer_reply(CUSTOMER), status(SOLVED, "solved")
    )
    h.until(LATER)
    assert h.of("cancelled")
    assert not any(ledger_input(o) for o in h.of("cancelled"))
