"""A group's open month and its tickets at risk (`GET /groups/{group}`; docs/semantics.md:
Groups), computed by the pure core at explicit instants.

Policy: tests/core/group_builders.py (tier1: 24x7 UTC, high: group_response 30m,
group_resolution 2h, pauses on pending; engineering: Berlin office hours).
"""

from __future__ import annotations

import orjson

from slaclock.processors.engine.group_view import (
    group_month_view,
    open_group,
    order_at_risk,
    tickets_at_risk,
)
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.ticket import TicketState, record_open_group
from tests.core.builders import Harness, agent_reply, created, status
from tests.core.group_builders import assigned, group_policy

CREATED = "2026-03-02T09:00:00Z"
HELD = "2026-03-02T09:05:00Z"  # tier1's cycles start: response due 09:35, resolution 11:05
RESPONSE_AT_RISK = "2026-03-02T09:27:30Z"  # 22m30s = 0.75 x 30m
JUST_BEFORE = "2026-03-02T09:27:29.999999Z"
REPLIED = "2026-03-02T09:10:00Z"
RESOLUTION_AT_RISK = "2026-03-02T10:35:00Z"  # 90m = 0.75 x 2h


def held_by_tier1(*more: dict[str, object], until: str | None = None) -> Harness:
    h = Harness(group_policy()).feed(created(CREATED), assigned(HELD, "tier1"), *more)
    if until is not None:
        h.until(until)
    return h


def ticket(h: Harness) -> TicketState:
    return h.replayer.store["T1"]


def at(text: str) -> int:
    return parse_instant(text)


def test_a_group_response_at_exactly_three_quarters_of_its_target_is_at_risk() -> None:
    h = held_by_tier1()
    [entry] = tickets_at_risk(ticket(h), "tier1", group_policy(), at(RESPONSE_AT_RISK))
    assert entry == {
        "ticket_id": "T1",
        "customer_id": "acme",
        "priority": "high",
        "metric": "group_response",
        "cycle": 1,
        "started_at": HELD,
        "elapsed_seconds": 1350,
        "target_seconds": 1800,
        "deadline": "2026-03-02T09:35:00Z",
        "breached": False,
    }


def test_one_microsecond_before_three_quarters_nothing_is_at_risk() -> None:
    h = held_by_tier1()
    assert tickets_at_risk(ticket(h), "tier1", group_policy(), at(JUST_BEFORE)) == []


def test_a_cycle_past_its_deadline_and_still_counting_is_listed_as_breached() -> None:
    h = held_by_tier1(until="2026-03-02T09:40:00Z")
    risky = tickets_at_risk(ticket(h), "tier1", group_policy(), at("2026-03-02T09:40:00Z"))
    assert [(e["metric"], e["elapsed_seconds"], e["breached"]) for e in risky] == [
        ("group_response", 2100, True)
    ]


def test_a_completed_group_response_is_not_at_risk_but_the_resolution_then_is() -> None:
    h = held_by_tier1(agent_reply(REPLIED, public=False))
    risky = tickets_at_risk(ticket(h), "tier1", group_policy(), at(RESOLUTION_AT_RISK))
    assert [(e["metric"], e["elapsed_seconds"], e["deadline"]) for e in risky] == [
        ("group_resolution", 5400, "2026-03-02T11:05:00Z")
    ]


def test_a_paused_group_resolution_is_not_at_risk() -> None:
    h = held_by_tier1(agent_reply(REPLIED, public=False), status("2026-03-02T10:00:00Z", "pending"))
    assert tickets_at_risk(ticket(h), "tier1", group_policy(), at("2026-03-02T12:00:00Z")) == []
    assert open_group(ticket(h)) == "tier1"  # still open: worth looking at again later


def test_another_groups_cycles_are_not_its_risk() -> None:
    h = held_by_tier1()
    assert tickets_at_risk(ticket(h), "engineering", group_policy(), at(RESPONSE_AT_RISK)) == []


def test_a_ticket_whose_group_cycles_ended_has_no_open_group() -> None:
    h = held_by_tier1(agent_reply(REPLIED), assigned("2026-03-02T09:20:00Z", None))
    assert open_group(ticket(h)) is None


def test_tickets_at_risk_are_ordered_by_deadline() -> None:
    policy = group_policy()
    h = Harness(policy).feed(
        created(CREATED, ticket="T2"),
        created("2026-03-02T09:01:00Z", ticket="T1"),
        assigned("2026-03-02T09:01:00Z", "tier1", ticket="T1"),
        assigned(HELD, "tier1", ticket="T2"),
    )
    now = at("2026-03-02T09:30:00Z")
    found = [
        e for t in ("T2", "T1") for e in tickets_at_risk(h.replayer.store[t], "tier1", policy, now)
    ]
    assert [(e["ticket_id"], e["deadline"]) for e in order_at_risk(found)] == [
        ("T1", "2026-03-02T09:31:00Z"),
        ("T2", "2026-03-02T09:35:00Z"),
    ]


OPENED = "2026-03-31T21:30:00Z"  # tier1 (UTC) March; still March in Berlin
HANDOFF = "2026-03-31T22:30:00Z"  # tier1's March; April 1st 00:30 in Berlin


def test_the_open_month_counts_holds_hand_offs_and_outcomes_so_far() -> None:
    h = Harness(group_policy()).feed(
        created(OPENED), assigned(OPENED, "tier1"), assigned(HANDOFF, "engineering")
    )
    as_of = at("2026-03-31T23:00:00Z")
    h.until("2026-03-31T23:00:00Z")
    view = group_month_view(h.replayer.ledger.groups, "tier1", as_of, [])
    assert view is not None
    assert (view["as_of"], view["timezone"], view["policy_version"]) == (
        "2026-03-31T23:00:00Z",
        "UTC",
        "1",
    )
    # group_response breached at 22:00, group_resolution met at the hand-off
    assert view["open_period"] == {
        "period": "2026-03",
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-04-01T00:00:00Z",
        "holds": 1,
        "handoffs": 1,
        "metrics": {
            "group_response": {"met": 0, "breached": 1, "compliance": "0.0000"},
            "group_resolution": {"met": 1, "breached": 0, "compliance": "1.0000"},
        },
        "overall": {"met": 1, "breached": 1, "compliance": "0.5000"},
    }
    assert view["at_risk"] == []


def test_the_open_month_is_the_one_of_the_groups_own_time_zone() -> None:
    h = Harness(group_policy()).feed(
        created(OPENED), assigned(OPENED, "tier1"), assigned(HANDOFF, "engineering")
    )
    h.until("2026-03-31T23:00:00Z")
    view = group_month_view(h.replayer.ledger.groups, "engineering", at("2026-03-31T23:00Z"), [])
    assert view is not None and view["timezone"] == "Europe/Berlin"
    month = view["open_period"]
    assert (month["period"], month["start"], month["holds"], month["handoffs"]) == (
        "2026-04",
        "2026-03-31T22:00:00Z",
        1,
        0,
    )
    assert month["overall"] == {"met": 0, "breached": 0, "compliance": None}


def test_a_group_the_policy_does_not_define_has_no_view() -> None:
    h = held_by_tier1(until="2026-03-02T10:00:00Z")
    assert group_month_view(h.replayer.ledger.groups, "sales", at(HELD), []) is None


def test_before_any_input_the_view_has_no_open_month() -> None:
    h = Harness(group_policy())
    view = group_month_view(h.replayer.ledger.groups, "tier1", None, [])
    assert view is not None and view["open_period"] is None and view["as_of"] is None


def test_a_restore_reads_each_tickets_open_group_off_its_record_as_off_its_state() -> None:
    """`record_open_group` (a restore, no state rebuilt) agrees with `open_group`."""
    cases = {
        "no hold": Harness(group_policy()).feed(created(CREATED)),
        "held": held_by_tier1(),
        "held, response met": held_by_tier1(agent_reply(REPLIED, public=False)),
        "held, paused": held_by_tier1(
            agent_reply(REPLIED, public=False), status("2026-03-02T10:00:00Z", "pending")
        ),
        "unassigned": held_by_tier1(agent_reply(REPLIED), assigned("2026-03-02T09:20:00Z", None)),
        "handed to engineering": held_by_tier1(assigned("2026-03-02T09:20:00Z", "engineering")),
        "solved": held_by_tier1(status("2026-03-02T09:30:00Z", "solved")),
    }
    found = {}
    for name, h in cases.items():
        state = ticket(h)
        record = orjson.loads(orjson.dumps(state.to_record()))
        assert record_open_group(record) == open_group(state), name
        found[name] = open_group(state)
    assert found == {
        "no hold": None,
        "held": "tier1",
        "held, response met": "tier1",
        "held, paused": "tier1",
        "unassigned": None,
        "handed to engineering": "engineering",
        "solved": None,
    }
