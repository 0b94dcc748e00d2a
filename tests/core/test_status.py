"""The status view of a ticket (`GET /tickets/{id}`): state, counted time, deadline and next
warning of each metric, computed purely from the ticket's state at a given instant.

Enterprise tier (24x7, UTC): first_response high 1h, resolution high 8h, warnings 0.5 and
0.75; business tier (Berlin office hours): first_response normal 8h, warning 0.75.
"""

from __future__ import annotations

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.status import TicketStatus, ticket_status
from tests.core.builders import (
    Harness,
    _event,
    agent_reply,
    created,
    make_policy,
    status,
)

POLICY = make_policy()
T0 = "2026-03-02T09:00:00Z"  # Monday


def status_at(harness: Harness, at: str, ticket: str = "T1") -> TicketStatus:
    """Advance the harness clock to `at` (firing timers) and read the status there."""
    harness.until(at)
    return ticket_status(harness.replayer.store[ticket], POLICY, parse_instant(at))


def test_running_metric_counts_up_to_the_instant_and_projects_deadline_and_next_warning() -> None:
    h = Harness().feed(created(T0))
    first = status_at(h, "2026-03-02T09:20:00Z")["metrics"]["first_response"]
    assert first == {
        "cycle": 1,
        "state": "running",
        "counting": True,
        "completed": False,
        "started_at": T0,
        "counted_seconds": 1200,
        "target_seconds": 3600,
        "deadline": "2026-03-02T10:00:00Z",
        "next_warning": {"threshold": 0.5, "at": "2026-03-02T09:30:00Z"},
    }


def test_next_warning_moves_on_once_a_threshold_has_been_warned() -> None:
    h = Harness().feed(created(T0))
    first = status_at(h, "2026-03-02T09:40:00Z")["metrics"]["first_response"]
    assert first["next_warning"] == {"threshold": 0.75, "at": "2026-03-02T09:45:00Z"}
    assert len(h.of("warning", "first_response")) == 1


def test_metric_past_its_deadline_is_breached_and_still_counting() -> None:
    h = Harness().feed(created(T0))
    first = status_at(h, "2026-03-02T10:01:00Z")["metrics"]["first_response"]
    assert first["state"] == "breached"
    assert first["counting"] is True and first["completed"] is False
    assert first["counted_seconds"] == 3660
    assert first["deadline"] == "2026-03-02T10:00:00Z"
    assert first["next_warning"] is None
    assert h.one("breach", "first_response")["at"] == first["deadline"]


def test_late_completion_stays_breached_with_the_deadline_it_missed() -> None:
    h = Harness().feed(created(T0), agent_reply("2026-03-02T10:30:00Z"))
    first = status_at(h, "2026-03-02T11:00:00Z")["metrics"]["first_response"]
    assert first["state"] == "breached" and first["completed"] is True
    assert first["counted_seconds"] == 5400
    assert first["deadline"] == "2026-03-02T10:00:00Z"


def test_completed_in_time_is_met_with_its_counted_time_frozen() -> None:
    h = Harness().feed(created(T0), agent_reply("2026-03-02T09:12:00Z"))
    first = status_at(h, "2026-03-02T12:00:00Z")["metrics"]["first_response"]
    assert first["state"] == "met"
    assert first["completed"] is True and first["counting"] is False
    assert first["counted_seconds"] == 720
    assert first["deadline"] is None and first["next_warning"] is None


def test_paused_metric_keeps_its_counted_time_and_has_no_projected_instants() -> None:
    h = Harness().feed(created(T0), status("2026-03-02T10:00:00Z", "pending"))
    resolution = status_at(h, "2026-03-02T15:00:00Z")["metrics"]["resolution"]
    assert resolution["state"] == "paused" and resolution["counting"] is False
    assert resolution["counted_seconds"] == 3600
    assert resolution["deadline"] is None
    assert resolution["next_warning"] == {"threshold": 0.5, "at": None}


def test_closed_ticket_reports_cancelled_first_response_without_counted_time() -> None:
    h = Harness().feed(created(T0), status("2026-03-02T09:10:00Z", "closed"))
    view = status_at(h, "2026-03-02T09:20:00Z")
    assert view["status"] == "closed"
    assert view["closed_at"] == "2026-03-02T09:10:00Z"
    first = view["metrics"]["first_response"]
    assert first["state"] == "cancelled"
    assert first["counted_seconds"] is None and first["deadline"] is None
    assert view["metrics"]["resolution"]["state"] == "met"


def test_counted_time_follows_the_tier_calendar() -> None:
    # globex is on the business tier: Berlin office hours, Friday 09:00-15:00.
    friday_1400_berlin = "2026-02-27T13:00:00Z"
    h = Harness().feed(created(friday_1400_berlin, customer="globex", priority="normal"))
    monday_1000_berlin = "2026-03-02T09:00:00Z"
    first = status_at(h, monday_1000_berlin)["metrics"]["first_response"]
    assert first["counted_seconds"] == 2 * 3600  # 1 h on Friday, 1 h on Monday
    assert first["target_seconds"] == 8 * 3600
    assert first["deadline"] == "2026-03-02T15:00:00Z"  # 16:00 Berlin
    assert first["next_warning"] == {"threshold": 0.75, "at": "2026-03-02T13:00:00Z"}


def test_instant_before_the_metric_started_counts_zero_not_negative() -> None:
    # Live, an event is applied at its own instant while the partition clock may trail it
    # by up to `grace`: the view must not count backwards.
    h = Harness().feed(created(T0))
    state = h.replayer.store["T1"]
    view = ticket_status(state, POLICY, parse_instant(T0) - 2_000_000)
    assert view["metrics"]["first_response"]["counted_seconds"] == 0
    assert view["metrics"]["first_response"]["state"] == "running"


def test_ticket_fields_and_metrics_in_spec_order() -> None:
    h = Harness().feed(
        created(T0, priority="urgent", customer="acme"),
        agent_reply("2026-03-02T09:05:00Z"),
        _event("ticket.assigned", "T1", "2026-03-02T09:06:00Z", assignee="ana", group="l2"),
    )
    view = status_at(h, "2026-03-02T09:10:00Z")
    assert {k: v for k, v in view.items() if k != "metrics"} == {
        "ticket_id": "T1",
        "customer_id": "acme",
        "tier": "enterprise",
        "priority": "urgent",
        "status": "new",
        "assignee": "ana",
        "group": "l2",
        "closed_at": None,
        "as_of": "2026-03-02T09:10:00Z",
        "policy_version": "1",
        "group_metrics": {},  # held by a group the policy does not define: no clocks
    }
    assert list(view["metrics"]) == ["first_response", "periodic_update", "resolution"]
    assert view["metrics"]["periodic_update"]["counted_seconds"] == 300


def test_first_response_stopped_at_a_threshold_is_paused_with_no_warning_instant() -> None:
    h = Harness().feed(created(T0), status("2026-03-02T09:30:00Z", "solved"))
    first = status_at(h, "2026-03-02T11:00:00Z")["metrics"]["first_response"]
    assert first["state"] == "paused" and first["counting"] is False
    assert first["counted_seconds"] == 1800
    assert first["next_warning"] == {"threshold": 0.5, "at": None}
    assert h.of("warning", "first_response") == []
