"""Group clocks (OLAs): every row and note of the groups table (docs/semantics.md: Groups).

Policy: tests/core/group_builders.py. The ticket is acme's (enterprise, 24x7), high, created
Monday 2026-03-02 09:00 UTC.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.ticket import TicketState
from tests.core.builders import Harness, agent_reply, created, priority, status
from tests.core.group_builders import GROUP_POLICY_YAML, assigned, group_policy

CREATED = "2026-03-02T09:00:00Z"
HELD = "2026-03-02T09:05:00Z"  # tier1 begins its hold: group_response due 09:35
T1_WARN = "2026-03-02T09:20:00Z"  # 0.5 x 30m after HELD
T1_RESPONSE_DEADLINE = "2026-03-02T09:35:00Z"
T1_RESOLUTION_DEADLINE = "2026-03-02T11:05:00Z"  # 2h after HELD
LATER = "2026-03-02T23:00:00Z"
TICKET_OUTPUTS = ("sla.warning", "sla.breach", "sla.completed", "sla.cancelled")


def _fields(output: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(output[n] for n in names)


def test_an_assignment_to_a_group_starts_both_group_metrics() -> None:
    h = Harness(group_policy()).feed(created(CREATED), assigned(HELD, "tier1"))
    h.until("2026-03-02T12:00:00Z")
    warning = h.one("warning", "group_response")
    assert _fields(warning, "at", "group", "cycle", "threshold", "deadline") == (
        T1_WARN,
        "tier1",
        1,
        0.5,
        T1_RESPONSE_DEADLINE,
    )
    breach = h.one("breach", "group_response")
    assert _fields(breach, "at", "group", "decided_at", "target_seconds") == (
        T1_RESPONSE_DEADLINE,
        "tier1",
        T1_RESPONSE_DEADLINE,
        1800,
    )
    assert h.one("breach", "group_resolution")["at"] == T1_RESOLUTION_DEADLINE


def test_customer_outputs_say_group_null() -> None:
    h = Harness(group_policy()).feed(created(CREATED), assigned(HELD, "tier1"))
    h.until(LATER)
    ticket = [o for o in h.outputs if o["type"] in TICKET_OUTPUTS]
    customer = [o for o in ticket if not o["metric"].startswith("group_")]
    assert customer and all(o["group"] is None for o in customer)
    assert all("group" in o for o in ticket)


def test_a_private_agent_reply_while_held_completes_group_response() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), agent_reply("2026-03-02T09:15:00Z", public=False)
    )
    h.until(LATER)
    completed = h.one("completed", "group_response")
    assert _fields(completed, "at", "outcome", "elapsed_seconds", "group") == (
        "2026-03-02T09:15:00Z",
        "met",
        600,
        "tier1",
    )
    assert h.of("completed", "first_response") == []  # a private reply answers no customer
    assert h.of("breach", "group_response") == []


def test_a_reply_exactly_at_the_group_deadline_is_met() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), agent_reply(T1_RESPONSE_DEADLINE)
    )
    h.until(LATER)
    assert h.one("completed", "group_response")["outcome"] == "met"
    assert h.of("breach", "group_response") == []


def test_a_reply_before_any_hold_completes_no_group_metric() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), agent_reply("2026-03-02T09:01:00Z"), assigned(HELD, "tier1")
    )
    h.until("2026-03-02T10:00:00Z")
    assert h.one("breach", "group_response")["at"] == T1_RESPONSE_DEADLINE


def test_a_hand_off_cancels_group_response_and_completes_group_resolution() -> None:
    handoff = "2026-03-02T09:20:00Z"  # 10:20 in Berlin: engineering's office is open
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), assigned(handoff, "engineering")
    )
    h.until("2026-03-02T10:30:00Z")
    cancelled = h.one("cancelled", "group_response")
    assert _fields(cancelled, "at", "group", "reason", "elapsed_seconds", "breached") == (
        handoff,
        "tier1",
        "hold_ended",
        900,
        False,
    )
    completed = h.one("completed", "group_resolution")
    assert _fields(completed, "at", "group", "outcome", "elapsed_seconds", "cycle") == (
        handoff,
        "tier1",
        "met",
        900,
        1,
    )
    # engineering's 1h from 10:20 Berlin: 11:20 Berlin = 10:20 UTC
    breach = h.one("breach", "group_response")
    assert _fields(breach, "at", "group", "cycle") == ("2026-03-02T10:20:00Z", "engineering", 1)
    assert h.one("warning", "group_response")["at"] == "2026-03-02T10:05:00Z"  # 0.75 x 1h


def test_a_reassignment_to_the_group_that_holds_it_changes_nothing() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "tier1", assignee="ann"),
        assigned("2026-03-02T09:20:00Z", "tier1", assignee="bob"),
    )
    h.until("2026-03-02T12:00:00Z")
    assert h.of("cancelled", "group_response") == []
    assert h.of("completed", "group_resolution") == []
    assert h.one("breach", "group_response")["at"] == T1_RESPONSE_DEADLINE
    assert h.one("breach", "group_resolution")["cycle"] == 1


def test_an_unassignment_ends_the_hold() -> None:
    ended = "2026-03-02T09:20:00Z"
    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "tier1"),
        assigned(ended, None, assignee=None),
        agent_reply("2026-03-02T09:30:00Z"),
    )
    h.until(LATER)
    assert _fields(h.one("cancelled", "group_response"), "at", "reason") == (ended, "hold_ended")
    assert _fields(h.one("completed", "group_resolution"), "at", "outcome") == (ended, "met")
    assert h.of("completed", "group_response") == []
    assert h.of("breach", "group_response") == h.of("breach", "group_resolution") == []


def test_an_assignment_with_an_empty_group_ends_the_hold() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), assigned("2026-03-02T09:20:00Z", "")
    )
    h.until(LATER)
    assert h.one("cancelled", "group_response")["reason"] == "hold_ended"


def test_a_group_the_policy_does_not_define_holds_the_ticket_without_clocks() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "billing"),
        assigned("2026-03-02T09:20:00Z", "tier1"),
    )
    h.until("2026-03-02T12:00:00Z")
    assert {o["group"] for o in h.outputs if o.get("group") is not None} == {"tier1"}
    breach = h.one("breach", "group_response")
    assert _fields(breach, "at", "cycle") == ("2026-03-02T09:50:00Z", 1)  # from 09:20


def test_solved_while_held_cancels_group_response_and_completes_group_resolution() -> None:
    solved = "2026-03-02T09:20:00Z"
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), status(solved, "solved")
    )
    h.until(LATER)
    assert _fields(h.one("cancelled", "group_response"), "at", "reason", "group") == (
        solved,
        "solved",
        "tier1",
    )
    assert _fields(h.one("completed", "group_resolution"), "at", "elapsed_seconds") == (
        solved,
        900,
    )


def test_closed_while_held_cancels_group_response_as_closed() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), status("2026-03-02T09:20:00Z", "closed")
    )
    h.until(LATER)
    assert h.one("cancelled", "group_response")["reason"] == "closed"
    assert h.one("completed", "group_resolution")["outcome"] == "met"


def test_a_reopen_while_held_starts_a_new_group_resolution_cycle_only() -> None:
    reopened = "2026-03-02T10:00:00Z"
    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "tier1"),
        status("2026-03-02T09:20:00Z", "solved"),
        status(reopened, "open"),
    )
    h.until(LATER)
    breach = h.one("breach", "group_resolution")
    assert _fields(breach, "at", "cycle", "group") == ("2026-03-02T12:00:00Z", 2, "tier1")
    assert h.of("breach", "group_response") == []
    assert [o["cycle"] for o in h.of("warning", "group_response")] == []


def test_a_hold_begun_on_a_solved_ticket_starts_no_clock_until_a_reopen() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED),
        status("2026-03-02T09:10:00Z", "solved"),
        assigned("2026-03-02T09:20:00Z", "tier1"),
    )
    h.until("2026-03-02T11:00:00Z")
    assert [o for o in h.outputs if o.get("group") is not None] == []
    h.feed(status("2026-03-02T11:00:00Z", "open"))
    h.until(LATER)
    assert _fields(h.one("breach", "group_resolution"), "at", "cycle") == (
        "2026-03-02T13:00:00Z",
        1,
    )
    assert h.of("breach", "group_response") == h.of("warning", "group_response") == []


def test_group_resolution_pauses_on_the_groups_pause_on_only() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned("2026-03-02T09:00:00Z", "tier1"),
        status("2026-03-02T09:30:00Z", "pending"),  # tier1 pauses
        status("2026-03-02T10:00:00Z", "on_hold"),  # tier1 counts again
    )
    h.until(LATER)
    assert h.one("breach", "group_resolution")["at"] == "2026-03-02T11:30:00Z"
    # group_response never pauses
    assert h.one("breach", "group_response")["at"] == "2026-03-02T09:30:00Z"


def test_a_priority_change_while_held_retargets_the_group_clocks() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), priority("2026-03-02T09:20:00Z", "urgent")
    )
    h.until(LATER)
    breach = h.one("breach", "group_response")  # urgent: 10m from 09:05, decided at the change
    assert _fields(breach, "at", "decided_at", "target_seconds", "priority") == (
        "2026-03-02T09:15:00Z",
        "2026-03-02T09:20:00Z",
        600,
        "urgent",
    )
    assert h.one("breach", "group_resolution")["at"] == "2026-03-02T10:05:00Z"  # 1h


def test_a_priority_without_a_group_target_cancels_the_group_cycle() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), priority("2026-03-02T09:20:00Z", "low")
    )
    h.until(LATER)
    assert {o["reason"] for o in h.of("cancelled") if o["group"]} == {"no_target"}


def test_the_group_calendar_counts_the_groups_own_hours() -> None:
    # Friday 2026-03-06 13:30 UTC = 14:30 Berlin: 30 min left that day, 30 min on Monday
    h = Harness(group_policy()).feed(
        created("2026-03-06T13:00:00Z"), assigned("2026-03-06T13:30:00Z", "engineering")
    )
    h.until("2026-03-10T00:00:00Z")
    assert h.one("breach", "group_response")["at"] == "2026-03-09T08:30:00Z"


def test_cycles_are_numbered_per_group_across_hand_offs_and_back() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "tier1"),
        assigned("2026-03-02T09:10:00Z", "engineering"),
        assigned("2026-03-02T09:20:00Z", "tier1"),
    )
    h.until("2026-03-02T12:00:00Z")
    by_group = [(o["group"], o["cycle"]) for o in h.of("completed", "group_resolution")]
    assert by_group == [("tier1", 1), ("engineering", 1)]
    assert _fields(h.one("breach", "group_response"), "group", "cycle", "at") == (
        "tier1",
        2,
        "2026-03-02T09:50:00Z",
    )


def test_group_metrics_earn_no_credit_and_no_customer_statement_counts_them() -> None:
    h = Harness(group_policy()).feed(created(CREATED), assigned(HELD, "tier1"))
    h.until("2026-04-01T00:00:00Z")
    assert h.of("breach", "group_response") and h.of("breach", "group_resolution")
    assert {c["metric"] for c in h.of("credit")} == {"first_response", "resolution"}
    statement = h.one("sla.statement")
    assert statement["overall"]["breached"] == 2  # first_response and resolution only
    assert "group_response" not in statement["metrics"]


def test_a_ticket_state_with_group_clocks_survives_its_record() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), assigned("2026-03-02T09:10:00Z", "engineering")
    )
    state = h.replayer.store["T1"]
    record = orjson.loads(orjson.dumps(state.to_record()))
    again = TicketState.from_record(record)
    assert again.to_record() == record
    assert {c.group for c in again.group_clocks.values()} == {"engineering"}


def test_a_held_ticket_restores_its_group_timers_from_its_record() -> None:
    """The timer a restore takes from a record (`rebuild_timers_from_records`) counts the
    group clocks: a group response due before the ticket's own deadlines wakes it."""
    h = Harness(group_policy()).feed(created(CREATED), assigned(HELD, "tier1"))
    stage = h.replayer.stage
    stage.rebuild_timers()
    from_states = stage.scheduled_timers()
    state = h.replayer.store["T1"]
    assert from_states["T1"] == min(c.due for c in state.group_clocks.values() if c.due)
    stage.rebuild_timers_from_records([orjson.loads(orjson.dumps(state.to_record()))])
    assert stage.scheduled_timers() == from_states


def test_a_ticket_no_group_held_keeps_its_record_layout() -> None:
    h = Harness(group_policy()).feed(created(CREATED), assigned(HELD, None))
    record = h.replayer.store["T1"].to_record()
    assert len(record) == 16
    assert all(len(clock) <= 14 for clock in record[9])


def test_tickets_no_group_held_share_the_empty_group_containers() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED, ticket="A"),
        created(CREATED, ticket="B"),
        assigned(HELD, "tier1", ticket="B"),
        assigned(HELD, "tier1", ticket="C"),  # unknown ticket: refused, changes nothing
    )
    a, b = h.replayer.store["A"], h.replayer.store["B"]
    fresh = TicketState("X", "acme", "enterprise", "high", "new")
    assert a.group_clocks is fresh.group_clocks and a.group_cycles is fresh.group_cycles
    assert fresh.group_clocks == {} and fresh.group_finished == [] and fresh.group_cycles == {}
    assert b.group_clocks is not fresh.group_clocks and set(b.group_clocks) == {
        "group_response",
        "group_resolution",
    }


# -- policy versions (docs/semantics.md: Policy changes, Groups) -------------------------------


def _version(at: str, version: str, change: Any) -> dict[str, Any]:
    doc = yaml.safe_load(GROUP_POLICY_YAML)
    change(doc["groups"])
    return {
        "type": "policy.changed",
        "event_id": f"policy-{version}",
        "occurred_at": at,
        "version": version,
        "policy": doc,
    }


def test_a_version_that_shortens_a_group_target_breaches_at_once_when_already_past() -> None:
    def shorten(groups: dict[str, Any]) -> None:
        groups["tier1"]["targets"]["group_response"]["high"] = "10m"

    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "tier1"),
        _version("2026-03-02T09:20:00Z", "2", shorten),
    )
    h.until(LATER)
    breach = h.one("breach", "group_response")
    assert _fields(breach, "at", "decided_at", "target_seconds", "policy_version") == (
        "2026-03-02T09:15:00Z",
        "2026-03-02T09:20:00Z",
        600,
        "2",
    )


def test_a_version_that_drops_the_holding_group_cancels_its_running_cycles() -> None:
    def drop(groups: dict[str, Any]) -> None:
        del groups["tier1"]

    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "tier1"),
        _version("2026-03-02T09:20:00Z", "2", drop),
    )
    h.until(LATER)
    cancelled = [(o["metric"], o["reason"], o["at"]) for o in h.of("cancelled") if o["group"]]
    assert cancelled == [
        ("group_response", "no_target", "2026-03-02T09:20:00Z"),
        ("group_resolution", "no_target", "2026-03-02T09:20:00Z"),
    ]
    assert h.of("breach", "group_response") == []


def test_a_version_that_changes_the_group_calendar_counts_the_rest_in_the_new_hours() -> None:
    def office(groups: dict[str, Any]) -> None:
        groups["tier1"]["calendar"] = "berlin-office"

    # held Monday 15:30Z (24x7); from 16:00Z (17:00 Berlin, the office closes) the office
    # hours count: 30 of 120 minutes counted, 90 left from Tuesday 08:00Z
    h = Harness(group_policy()).feed(
        created("2026-03-02T15:30:00Z"),
        assigned("2026-03-02T15:30:00Z", "tier1"),
        _version("2026-03-02T16:00:00Z", "2", office),
    )
    h.until("2026-03-04T00:00:00Z")
    assert h.one("breach", "group_resolution")["at"] == "2026-03-03T09:30:00Z"
    assert h.one("breach", "group_response")["at"] == "2026-03-02T16:00:00Z"
    clock = h.replayer.store["T1"].group_clocks["group_resolution"]
    assert [era.tier for era in clock.eras] == ["\x00group:tier1"]


def test_the_ticket_status_shows_the_holds_group_clocks() -> None:
    from slaclock.processors.engine.status import ticket_status

    policy = group_policy()
    h = Harness(policy).feed(
        created(CREATED), assigned(HELD, "tier1"), assigned("2026-03-02T10:00:00Z", "engineering")
    )
    status_now = ticket_status(
        h.replayer.store["T1"], policy, parse_instant("2026-03-02T10:30:00Z")
    )
    assert status_now["group"] == "engineering"
    response = status_now["group_metrics"]["group_response"]
    # engineering: Berlin office hours, 1h from 11:00 Berlin
    assert (response["state"], response["counted_seconds"], response["deadline"]) == (
        "running",
        1800,
        "2026-03-02T11:00:00Z",
    )
    assert set(status_now["metrics"]) == {"first_response", "resolution"}


def test_a_version_that_defines_the_holding_group_starts_no_clock_for_it() -> None:
    def define_billing(groups: dict[str, Any]) -> None:
        groups["billing"] = groups["tier1"]

    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "billing"),  # no clocks: the policy lacks billing
        _version("2026-03-02T09:20:00Z", "2", define_billing),
        agent_reply("2026-03-02T09:30:00Z", public=False),
    )
    h.until(LATER)
    # a metric not tracked before is not started by a version (docs/semantics.md: Policy changes)
    assert [o for o in h.outputs if o.get("group") is not None] == []
    h.feed(assigned("2026-03-02T23:00:00Z", "tier1"), assigned("2026-03-02T23:10:00Z", "billing"))
    h.until("2026-03-03T12:00:00Z")
    # the next hold of billing starts its clocks under version 2
    breach = h.one("breach", "group_response")
    assert _fields(breach, "group", "cycle", "at", "policy_version") == (
        "billing",
        1,
        "2026-03-02T23:40:00Z",
        "2",
    )


def test_a_version_for_new_tickets_only_leaves_a_held_tickets_group_terms() -> None:
    def shorten(groups: dict[str, Any]) -> None:
        groups["tier1"]["targets"]["group_response"]["high"] = "10m"

    pinned = {**_version("2026-03-02T09:06:00Z", "2", shorten), "applies_to": "new"}
    h = Harness(group_policy()).feed(
        created(CREATED),
        pinned,
        assigned("2026-03-02T09:10:00Z", "tier1"),  # T1 keeps version 1: 30m
        created("2026-03-02T09:10:00Z", ticket="T2"),
        assigned("2026-03-02T09:10:00Z", "tier1", ticket="T2"),  # created after P: 10m
    )
    h.until(LATER)
    breaches = {
        o["ticket_id"]: (o["at"], o["target_seconds"], o["policy_version"])
        for o in h.of("breach", "group_response")
    }
    assert breaches == {
        "T1": ("2026-03-02T09:40:00Z", 1800, "1"),
        "T2": ("2026-03-02T09:20:00Z", 600, "2"),
    }


def test_a_hand_off_exactly_at_the_group_resolution_deadline_is_met() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED), assigned(HELD, "tier1"), assigned(T1_RESOLUTION_DEADLINE, "engineering")
    )
    h.until("2026-03-02T11:30:00Z")
    completed = h.one("completed", "group_resolution")
    assert _fields(completed, "at", "group", "outcome", "elapsed_seconds") == (
        T1_RESOLUTION_DEADLINE,
        "tier1",
        "met",
        7200,
    )
    assert h.of("breach", "group_resolution") == []


def test_a_hold_begun_while_pending_starts_group_resolution_paused() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED),
        status("2026-03-02T09:00:00Z", "pending"),
        assigned(HELD, "tier1"),
        status("2026-03-02T10:00:00Z", "open"),
    )
    h.until(LATER)
    assert h.one("breach", "group_resolution")["at"] == "2026-03-02T12:00:00Z"  # 2h from 10:00
    assert h.one("breach", "group_response")["at"] == T1_RESPONSE_DEADLINE  # never pauses


def test_a_hand_off_while_solved_starts_the_new_holders_resolution_at_the_reopen() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED),
        assigned(HELD, "tier1"),
        status("2026-03-02T09:10:00Z", "solved"),
        assigned("2026-03-02T09:20:00Z", "engineering"),  # a hand-off; no clock while solved
        status("2026-03-02T09:30:00Z", "open"),  # 10:30 in Berlin
    )
    h.until("2026-03-04T00:00:00Z")
    engineering = [
        (o["type"], o["metric"], o["cycle"], o["at"])
        for o in h.outputs
        if o.get("group") == "engineering"
    ]
    # 8h of Berlin office hours from Monday 10:30: 6h30 on Monday, 1h30 on Tuesday
    assert engineering == [
        ("sla.warning", "group_resolution", 1, "2026-03-02T15:30:00Z"),
        ("sla.breach", "group_resolution", 1, "2026-03-03T09:30:00Z"),
    ]


def test_the_status_shows_a_solved_holds_cycles_and_none_for_an_undefined_group() -> None:
    from slaclock.processors.engine.status import ticket_status

    policy = group_policy()
    h = Harness(policy).feed(
        created(CREATED), assigned(HELD, "tier1"), status("2026-03-02T09:10:00Z", "solved")
    )
    now = parse_instant("2026-03-02T09:20:00Z")
    shown = ticket_status(h.replayer.store["T1"], policy, now)["group_metrics"]
    assert {m: s["state"] for m, s in shown.items()} == {
        "group_response": "cancelled",
        "group_resolution": "met",
    }
    h.feed(assigned("2026-03-02T09:20:00Z", "billing"))  # a group the policy lacks
    shown = ticket_status(h.replayer.store["T1"], policy, now)
    assert (shown["group"], shown["group_metrics"]) == ("billing", {})


def test_a_hold_without_a_target_for_the_priority_takes_no_cycle_number() -> None:
    h = Harness(group_policy()).feed(
        created(CREATED, priority="urgent"),
        assigned(HELD, "engineering"),  # engineering has no urgent target: nothing runs
        priority("2026-03-02T09:10:00Z", "high"),  # not started by the change either
        assigned("2026-03-02T09:20:00Z", "tier1"),
        assigned("2026-03-02T09:30:00Z", "engineering"),  # 10:30 in Berlin
    )
    h.until("2026-03-04T00:00:00Z")
    engineering = [o for o in h.outputs if o.get("group") == "engineering"]
    assert {(o["metric"], o["cycle"]) for o in engineering} == {
        ("group_response", 1),
        ("group_resolution", 1),
    }
    assert h.one("breach", "group_response")["at"] == "2026-03-02T10:30:00Z"
