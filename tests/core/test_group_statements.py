"""Group statements (docs/semantics.md: Groups): one per defined group per month in the time
zone of the group's calendar, quiet months included, holds and hand-offs counted.

Policy: tests/core/group_builders.py (tier1: UTC, 24x7; engineering: Berlin office hours).
Berlin is UTC+2 from 2026-03-29, so its April begins at 2026-03-31T22:00Z.
"""

from __future__ import annotations

from typing import Any

import orjson

from slaclock.processors.engine.instants import parse_instant
from tests.core.builders import Harness, created, status
from tests.core.group_builders import assigned, group_policy

OPENED = "2026-03-31T21:30:00Z"  # tier1's March (UTC); 23:30 in Berlin, still March there
HANDOFF = "2026-03-31T22:30:00Z"  # tier1's March; 00:30 on April 1st in Berlin
UNTIL = "2026-05-01T00:00:00Z"


def _statements(h: Harness) -> list[dict[str, Any]]:
    return h.of("sla.group_statement")


def _figures(met: int, breached: int, compliance: str | None) -> dict[str, Any]:
    return {"met": met, "breached": breached, "compliance": compliance}


def test_group_months_end_in_each_groups_own_time_zone() -> None:
    h = Harness(group_policy()).feed(
        created(OPENED), assigned(OPENED, "tier1"), assigned(HANDOFF, "engineering")
    )
    h.until(UNTIL)
    found = [(s["group"], s["period"], s["at"], s["period_start"]) for s in _statements(h)]
    assert found == [
        ("engineering", "2026-03", "2026-03-31T22:00:00Z", "2026-02-28T23:00:00Z"),
        ("tier1", "2026-03", "2026-04-01T00:00:00Z", "2026-03-01T00:00:00Z"),
        ("engineering", "2026-04", "2026-04-30T22:00:00Z", "2026-03-31T22:00:00Z"),
        ("tier1", "2026-04", "2026-05-01T00:00:00Z", "2026-04-01T00:00:00Z"),
    ]


def test_a_group_statement_counts_outcomes_holds_and_hand_offs_of_its_month() -> None:
    h = Harness(group_policy()).feed(
        created(OPENED), assigned(OPENED, "tier1"), assigned(HANDOFF, "engineering")
    )
    h.until(UNTIL)
    by_key = {(s["group"], s["period"]): s for s in _statements(h)}
    tier1 = by_key["tier1", "2026-03"]
    # group_response breached at 22:00; group_resolution met at the hand-off (1h of 2h)
    assert tier1["metrics"] == {
        "group_response": _figures(0, 1, "0.0000"),
        "group_resolution": _figures(1, 0, "1.0000"),
    }
    assert tier1["overall"] == _figures(1, 1, "0.5000")
    assert (tier1["holds"], tier1["handoffs"], tier1["policy_version"]) == (1, 1, "1")
    engineering = by_key["engineering", "2026-04"]
    # Berlin office hours from Wednesday April 1st 09:00: response due 10:00, resolution
    # (8h: 7h on Wednesday) Thursday 10:00, both breached in April
    assert engineering["metrics"] == {
        "group_response": _figures(0, 1, "0.0000"),
        "group_resolution": _figures(0, 1, "0.0000"),
    }
    assert (engineering["holds"], engineering["handoffs"]) == (1, 0)
    quiet = by_key["engineering", "2026-03"]
    assert (quiet["holds"], quiet["overall"]) == (0, _figures(0, 0, None))
    assert by_key["tier1", "2026-04"]["overall"] == _figures(0, 0, None)


def test_unassigning_is_no_hand_off_and_a_reopen_is_no_hold() -> None:
    start = "2026-03-02T09:00:00Z"
    h = Harness(group_policy()).feed(
        created(start),
        assigned("2026-03-02T09:05:00Z", "tier1"),
        assigned("2026-03-02T09:10:00Z", None, assignee=None),  # ends the hold: no hand-off
        assigned("2026-03-02T09:15:00Z", "tier1"),  # a second hold
        status("2026-03-02T09:20:00Z", "solved"),
        status("2026-03-02T09:30:00Z", "open"),  # a new group_resolution cycle, not a hold
        assigned("2026-03-02T09:40:00Z", "billing"),  # a group the policy lacks: a hand-off
    )
    h.until("2026-04-01T00:00:00Z")
    tier1 = next(s for s in _statements(h) if s["group"] == "tier1")
    assert (tier1["holds"], tier1["handoffs"]) == (2, 1)
    assert {s["group"] for s in _statements(h)} == {"tier1", "engineering"}


def test_every_group_output_meets_the_published_output_contract() -> None:
    from slaclock.schemas.outputs import parse_output_event

    h = Harness(group_policy()).feed(
        created(OPENED), assigned(OPENED, "tier1"), assigned(HANDOFF, "engineering")
    )
    h.until(UNTIL)
    group_outputs = [o for o in h.outputs if o.get("group") is not None]
    assert {o["type"] for o in group_outputs} >= {"sla.group_statement", "sla.breach"}
    for output in group_outputs:
        event = parse_output_event(orjson.dumps(output))
        assert orjson.loads(event.model_dump_json()) == output


def test_the_worked_example_escalated_to_engineering_and_back() -> None:
    """docs/semantics.md: Groups, worked example."""
    from tests.core.builders import agent_reply

    h = Harness(group_policy()).feed(
        created("2026-03-02T09:00:00Z"),
        assigned("2026-03-02T09:00:00Z", "tier1"),
        agent_reply("2026-03-02T09:20:00Z", public=False),
        assigned("2026-03-02T10:00:00Z", "engineering"),
        agent_reply("2026-03-02T12:30:00Z", public=False),
        assigned("2026-03-03T09:00:00Z", "tier1"),
        agent_reply("2026-03-03T09:10:00Z"),
        status("2026-03-03T09:30:00Z", "solved"),
    )
    h.until("2026-04-01T00:00:00Z")
    rows = [
        (o["type"], o["group"], o["metric"], o["cycle"], o["at"], o.get("elapsed_seconds"))
        for o in h.outputs
        if o.get("group") is not None and o["type"] != "sla.group_statement"
    ]
    w, c, b = "sla.warning", "sla.completed", "sla.breach"
    assert rows == [
        (w, "tier1", "group_response", 1, "2026-03-02T09:15:00Z", None),
        (c, "tier1", "group_response", 1, "2026-03-02T09:20:00Z", 1200),
        (c, "tier1", "group_resolution", 1, "2026-03-02T10:00:00Z", 3600),
        (w, "engineering", "group_response", 1, "2026-03-02T10:45:00Z", None),
        (b, "engineering", "group_response", 1, "2026-03-02T11:00:00Z", None),
        (c, "engineering", "group_response", 1, "2026-03-02T12:30:00Z", 9000),
        (w, "engineering", "group_resolution", 1, "2026-03-02T16:00:00Z", None),
        (c, "engineering", "group_resolution", 1, "2026-03-03T09:00:00Z", 25200),
        (c, "tier1", "group_response", 2, "2026-03-03T09:10:00Z", 600),
        (c, "tier1", "group_resolution", 2, "2026-03-03T09:30:00Z", 1800),
    ]
    ids = [o["event_id"] for o in h.outputs]
    assert len(ids) == len(set(ids))  # tier1's and engineering's cycle 1 are distinct outputs
    statements = {s["group"]: s for s in _statements(h)}
    engineering, tier1 = statements["engineering"], statements["tier1"]
    assert (engineering["at"], engineering["holds"], engineering["handoffs"]) == (
        "2026-03-31T22:00:00Z",
        1,
        1,
    )
    assert engineering["overall"] == _figures(1, 1, "0.5000")
    assert (tier1["at"], tier1["holds"], tier1["handoffs"]) == ("2026-04-01T00:00:00Z", 2, 1)
    assert tier1["overall"] == _figures(4, 0, "1.0000")


def test_the_worked_example_explains_each_group_cycle_in_its_groups_hours() -> None:
    from slaclock.processors.engine.explain import explain_with_policy
    from slaclock.processors.engine.instants import parse_instant
    from tests.core.builders import agent_reply

    policy = group_policy()
    h = Harness(policy).feed(
        created("2026-03-02T09:00:00Z"),
        assigned("2026-03-02T09:00:00Z", "tier1"),
        assigned("2026-03-02T10:00:00Z", "engineering"),
        agent_reply("2026-03-02T12:30:00Z", public=False),
    )
    state = h.replayer.store["T1"]
    at = parse_instant("2026-03-02T17:00:00Z")
    cycles = explain_with_policy(state, policy, at, h.replayer.versions)["cycles"]
    groups = [(c["metric"], c["group"], c["cycle"], c["state"]) for c in cycles if c["group"]]
    assert groups == [
        ("group_resolution", "tier1", 1, "met"),
        ("group_resolution", "engineering", 1, "running"),
        ("group_response", "tier1", 1, "cancelled"),
        ("group_response", "engineering", 1, "breached"),
    ]
    engineering = next(c for c in cycles if c["group"] == "engineering")
    # 10:00 to 16:00Z counted (11:00 to 17:00 Berlin), nothing after the office closes
    assert (engineering["counted_seconds"], engineering["deadline"]) == (
        21600,
        "2026-03-03T10:00:00Z",
    )
    assert {c["group"] for c in cycles if not c["metric"].startswith("group_")} == {None}


def test_the_replay_summary_counts_group_statements_and_no_hold_facts() -> None:
    from slaclock.processors.engine.instants import parse_instant
    from slaclock.processors.replay import replay

    events = [created(OPENED), assigned(OPENED, "tier1"), assigned(HANDOFF, "engineering")]
    outputs: list[dict[str, Any]] = []
    summary = replay(
        group_policy(),
        [orjson.dumps(e) for e in events],
        outputs.append,
        lambda rejection: None,
        until=parse_instant(UNTIL),
    )
    text = summary.describe()
    assert f"outputs {len(outputs)} " in text
    assert "group statements 4" in text
    assert all(o["type"] != "sla.group_hold" for o in outputs)


def _dropping(at: str, version: str, group: str) -> dict[str, Any]:
    import yaml

    from tests.core.group_builders import GROUP_POLICY_YAML

    doc = yaml.safe_load(GROUP_POLICY_YAML)
    del doc["groups"][group]
    return {
        "type": "policy.changed",
        "event_id": f"policy-{version}",
        "occurred_at": at,
        "version": version,
        "policy": doc,
    }


def test_a_group_the_version_at_the_months_last_instant_lacks_gets_no_statement() -> None:
    # engineering's March ends at 2026-03-31T22:00Z (Berlin): dropped during March, no March
    # statement; dropped exactly at its end, March is still engineering's, April is not
    h = Harness(group_policy()).feed(
        created(OPENED), _dropping("2026-03-31T21:59:59Z", "2", "engineering")
    )
    h.until(UNTIL)
    assert {(s["group"], s["period"]) for s in _statements(h)} == {
        ("tier1", "2026-03"),
        ("tier1", "2026-04"),
    }
    h = Harness(group_policy()).feed(
        created(OPENED), _dropping("2026-03-31T22:00:00Z", "2", "engineering")
    )
    h.until(UNTIL)
    found = [(s["group"], s["period"], s["policy_version"]) for s in _statements(h)]
    assert found == [
        ("engineering", "2026-03", "1"),
        ("tier1", "2026-03", "2"),
        ("tier1", "2026-04", "2"),
    ]


def test_a_breach_counts_in_the_month_it_was_decided_and_a_met_in_the_month_it_completed() -> None:
    from tests.core.builders import priority

    h = Harness(group_policy()).feed(
        created("2026-03-31T23:40:00Z"),
        assigned("2026-03-31T23:40:00Z", "tier1"),  # a hold begun in March
        # urgent: 10m, due 23:50 in March, decided at the change in April
        priority("2026-04-01T00:05:00Z", "urgent"),
        # urgent resolution: 1h, due 00:40: met at the hand-off in April
        assigned("2026-04-01T00:30:00Z", "engineering"),
    )
    h.until("2026-05-01T00:00:00Z")
    assert _fields_of(h.one("breach", "group_response"), "deadline", "decided_at") == (
        "2026-03-31T23:50:00Z",
        "2026-04-01T00:05:00Z",
    )
    tier1 = {s["period"]: s for s in _statements(h) if s["group"] == "tier1"}
    march, april = tier1["2026-03"], tier1["2026-04"]
    assert (march["holds"], march["handoffs"], march["overall"]) == (1, 0, _figures(0, 0, None))
    assert april["metrics"] == {
        "group_response": _figures(0, 1, "0.0000"),
        "group_resolution": _figures(1, 0, "1.0000"),
    }
    assert (april["holds"], april["handoffs"]) == (0, 1)


def _fields_of(output: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(output[n] for n in names)


def _defining_billing(published: str, effective: str) -> dict[str, Any]:
    import yaml

    from tests.core.group_builders import GROUP_POLICY_YAML

    doc = yaml.safe_load(GROUP_POLICY_YAML)
    doc["groups"]["billing"] = doc["groups"]["tier1"]
    return {
        "type": "policy.changed",
        "event_id": "policy-2",
        "occurred_at": published,
        "effective_at": effective,
        "version": "2",
        "policy": doc,
    }


def test_a_hold_counts_only_for_a_group_the_version_in_force_at_its_start_defines() -> None:
    """billing is defined from 09:20 (version 2), whenever version 2 was published: the hold
    begun at 09:05 was held without clocks and is not counted; its hand-off at 09:30 and the
    hold begun at 09:40 are billing's."""
    early = _defining_billing("2026-03-02T09:00:00Z", "2026-03-02T09:20:00Z")
    on_time = _defining_billing("2026-03-02T09:20:00Z", "2026-03-02T09:20:00Z")
    opened = created("2026-03-02T09:00:00Z")
    first_hold = assigned("2026-03-02T09:05:00Z", "billing")
    rest = [assigned("2026-03-02T09:30:00Z", "tier1"), assigned("2026-03-02T09:40:00Z", "billing")]
    found = []
    for events in ([opened, early, first_hold, *rest], [opened, first_hold, on_time, *rest]):
        h = Harness(group_policy()).feed(*events)
        h.until("2026-04-01T00:00:00Z")
        billing = next(s for s in _statements(h) if s["group"] == "billing")
        found.append((billing["holds"], billing["handoffs"], billing["policy_version"]))
    assert found == [(1, 1, "2"), (1, 1, "2")]


def _with_calendar(at: str, group: str, calendar: str) -> dict[str, Any]:
    import yaml

    from tests.core.group_builders import GROUP_POLICY_YAML

    doc = yaml.safe_load(GROUP_POLICY_YAML)
    doc["groups"][group]["calendar"] = calendar
    return {
        "type": "policy.changed",
        "event_id": "policy-2",
        "occurred_at": at,
        "version": "2",
        "policy": doc,
    }


def _months(h: Harness, group: str) -> list[tuple[str, str, str, int, int]]:
    return [
        (s["period"], s["period_start"], s["at"], s["holds"], s["handoffs"])
        for s in _statements(h)
        if s["group"] == group
    ]


def test_a_group_moved_from_berlin_to_utc_counts_in_utc_from_the_month_that_follows() -> None:
    h = Harness(group_policy()).feed(
        created("2026-03-02T09:00:00Z"),
        assigned("2026-03-02T09:00:00Z", "engineering"),
        _with_calendar("2026-03-15T00:00:00Z", "engineering", "always"),
        # after Berlin's March ended (22:00Z), before UTC's (00:00Z): April's
        assigned("2026-03-31T23:00:00Z", "tier1"),
        assigned("2026-03-31T23:30:00Z", "engineering"),
    )
    h.until("2026-05-01T00:00:00Z")
    assert _months(h, "engineering") == [
        ("2026-03", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z", 1, 0),
        ("2026-04", "2026-03-31T22:00:00Z", "2026-05-01T00:00:00Z", 1, 1),
    ]
    ids = [s["event_id"] for s in _statements(h)]
    assert len(ids) == len(set(ids))


def test_a_group_moved_from_utc_to_berlin_counts_in_berlin_from_the_month_that_follows() -> None:
    h = Harness(group_policy()).feed(
        created("2026-03-02T09:00:00Z"),
        assigned("2026-03-02T09:00:00Z", "tier1"),
        _with_calendar("2026-03-15T00:00:00Z", "tier1", "berlin-office"),
        # April in Berlin already, still UTC's March: March's
        assigned("2026-03-31T22:30:00Z", "engineering"),
        assigned("2026-03-31T23:30:00Z", "tier1"),
    )
    h.until("2026-05-01T00:00:00Z")
    assert _months(h, "tier1") == [
        ("2026-03", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", 2, 1),
        ("2026-04", "2026-04-01T00:00:00Z", "2026-04-30T22:00:00Z", 0, 0),
    ]


def test_a_restored_group_ledger_keeps_the_months_it_closed_after_a_time_zone_change() -> None:
    from slaclock.processors.engine.group_ledger import GroupLedger

    h = Harness(group_policy()).feed(
        created("2026-03-02T09:00:00Z"),
        assigned("2026-03-02T09:00:00Z", "tier1"),
        _with_calendar("2026-03-15T00:00:00Z", "tier1", "berlin-office"),
    )
    h.until("2026-04-01T00:00:00Z")  # UTC's March is closed (it ends in Berlin's April)
    groups = h.replayer.ledger.groups
    again = GroupLedger(groups.versions, groups.owns, groups.figures)
    again.restore(orjson.loads(orjson.dumps(groups.to_record())))
    first = parse_instant("2026-03-02T09:00:00Z")
    berlin_april_end = parse_instant("2026-04-30T22:00:00Z")
    assert again.ends("tier1", first, None) == groups.ends("tier1", first, None)
    assert again.ends("tier1", first, None) == [berlin_april_end]
