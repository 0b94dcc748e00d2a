"""Explanations at exact instants (docs/semantics.md: Explanations): a DST day, a holiday, a
pause across a weekend, a priority change, replaced cycles, and states written before
explanations existed. Each expected timeline is written out segment by segment."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml

from slaclock.processors.engine.explain import CycleExplanation, explain_with_policy
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.ticket import TicketState
from tests.core.builders import (
    Harness,
    agent_reply,
    created,
    customer_reply,
    make_policy,
    priority,
    status,
)

POLICY_YAML = """
default_tier: office
calendars:
  always:
    timezone: UTC
    hours: 24x7
  berlin-office:
    timezone: Europe/Berlin
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-17:00"]
      wed: ["09:00-12:00", "13:00-17:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-15:00"]
    holidays: ["2026-12-24", "2026-12-25"]
  berlin-sundays:
    timezone: Europe/Berlin
    hours:
      sun: ["00:00-24:00"]
      mon: ["09:00-17:00"]
tiers:
  office:
    calendar: berlin-office
    targets:
      first_response: {high: 2h}
      resolution: {high: 16h}
    pause_on: [pending]
    warnings: [0.75]
  sundays:
    calendar: berlin-sundays
    targets:
      first_response: {high: 24h}
    warnings: []
  ent:
    calendar: always
    targets:
      first_response: {urgent: 15m, high: 1h}
      next_response: {urgent: 30m, high: 1h}
      periodic_update: {urgent: 1h, high: 4h}
      resolution: {urgent: 4h, high: 8h}
    pause_on: [pending]
    warnings: [0.5]
"""

POLICY = make_policy(POLICY_YAML)


def seg(start: str, end: str, kind: str, **cause: Any) -> dict[str, Any]:
    return {"from": start, "to": end, "kind": kind, "cause": cause or None}


def explain(harness: Harness, at: str, ticket: str = "T1") -> list[CycleExplanation]:
    state = harness.replayer.store[ticket]
    at_us = parse_instant(at)
    return explain_with_policy(state, POLICY, at_us, harness.replayer.versions)["cycles"]


def cycle(cycles: list[CycleExplanation], metric: str, number: int = 1) -> CycleExplanation:
    found = [c for c in cycles if c["metric"] == metric and c["cycle"] == number]
    assert len(found) == 1, cycles
    return found[0]


def test_a_dst_day_counts_23_hours_and_the_deadline_falls_on_monday_morning() -> None:
    # Sunday 2026-03-29 in Berlin is 23 h long (02:00 -> 03:00); 24 h of counted time
    # from Saturday noon: Sunday's 23 h, then Monday 09:00-10:00 CEST.
    h = Harness(POLICY).feed(created("2026-03-28T12:00:00Z", tier="sundays", event_id="c1"))
    h.until("2026-03-30T10:00:00Z")
    first = cycle(explain(h, "2026-03-30T10:00:00Z"), "first_response")
    assert first["segments"] == [
        seg(
            "2026-03-28T12:00:00Z",
            "2026-03-28T23:00:00Z",
            "outside_hours",
            calendar="berlin-sundays",
        ),
        seg("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", "counted", event_id="c1"),
        seg(
            "2026-03-29T22:00:00Z",
            "2026-03-30T07:00:00Z",
            "outside_hours",
            calendar="berlin-sundays",
        ),
        seg("2026-03-30T07:00:00Z", "2026-03-30T08:00:00Z", "counted", event_id="c1"),
        seg("2026-03-30T08:00:00Z", "2026-03-30T10:00:00Z", "counted", event_id="c1"),
    ]
    assert first["deadline"] == "2026-03-30T08:00:00Z" == h.one("breach")["deadline"]
    assert first["original_deadline"] == "2026-03-30T08:00:00Z"
    assert first["state"] == "breached"
    assert first["counted_seconds"] == 23 * 3600 + 3 * 3600


def test_holidays_are_marked_with_their_dates_and_push_the_deadline_past_them() -> None:
    # Wednesday 2026-12-23 16:00 in Berlin, 2 h to first response: 1 h that day, the
    # 24th and 25th are holidays, the weekend is outside hours, 1 h on Monday the 28th.
    h = Harness(POLICY).feed(created("2026-12-23T15:00:00Z", customer="x", event_id="c1"))
    h.until("2026-12-28T09:30:00Z")
    first = cycle(explain(h, "2026-12-28T09:30:00Z"), "first_response")
    office = {"calendar": "berlin-office"}
    assert first["segments"] == [
        seg("2026-12-23T15:00:00Z", "2026-12-23T16:00:00Z", "counted", event_id="c1"),
        seg("2026-12-23T16:00:00Z", "2026-12-23T23:00:00Z", "outside_hours", **office),
        seg(
            "2026-12-23T23:00:00Z",
            "2026-12-24T23:00:00Z",
            "holiday",
            holiday="2026-12-24",
            **office,
        ),
        seg(
            "2026-12-24T23:00:00Z",
            "2026-12-25T23:00:00Z",
            "holiday",
            holiday="2026-12-25",
            **office,
        ),
        seg("2026-12-25T23:00:00Z", "2026-12-28T08:00:00Z", "outside_hours", **office),
        seg("2026-12-28T08:00:00Z", "2026-12-28T09:00:00Z", "counted", event_id="c1"),
        seg("2026-12-28T09:00:00Z", "2026-12-28T09:30:00Z", "counted", event_id="c1"),
    ]
    assert first["deadline"] == "2026-12-28T09:00:00Z" == h.one("breach", "first_response")["at"]
    assert first["counted_seconds"] == 2 * 3600 + 1800


def test_a_pause_across_a_weekend_is_one_paused_segment_with_its_status_and_event() -> None:
    # Friday 2026-03-06 10:00 Berlin: resolution (16 h) counts 3 h, waits on the customer
    # from 13:00 until Monday 11:00, then counts again.
    h = Harness(POLICY).feed(
        created("2026-03-06T09:00:00Z", customer="x", event_id="c1"),
        status("2026-03-06T12:00:00Z", "pending", event_id="p1"),
        status("2026-03-09T10:00:00Z", "open", event_id="o1"),
    )
    h.until("2026-03-09T12:00:00Z")
    resolution = cycle(explain(h, "2026-03-09T12:00:00Z"), "resolution")
    assert resolution["segments"] == [
        seg("2026-03-06T09:00:00Z", "2026-03-06T12:00:00Z", "counted", event_id="c1"),
        seg(
            "2026-03-06T12:00:00Z",
            "2026-03-09T10:00:00Z",
            "paused",
            event_id="p1",
            status="pending",
        ),
        seg("2026-03-09T10:00:00Z", "2026-03-09T12:00:00Z", "counted", event_id="o1"),
    ]
    assert resolution["state"] == "running"
    assert resolution["counted_seconds"] == 5 * 3600
    # 11 h left at Monday 13:00 (CET): 4 h on Monday, 7 h on Tuesday from 09:00
    assert resolution["deadline"] == "2026-03-10T15:00:00Z"
    # as first computed, without the pause: Fri 5 h + Mon 8 h + Tue 3 h
    assert resolution["original_deadline"] == "2026-03-10T11:00:00Z"
    assert cycle(explain(h, "2026-03-09T12:00:00Z"), "first_response")["segments"][0] == seg(
        "2026-03-06T09:00:00Z", "2026-03-06T11:00:00Z", "counted", event_id="c1"
    )


def test_a_paused_cycle_shows_each_status_of_its_pause() -> None:
    yaml = POLICY_YAML.replace(
        "pause_on: [pending]\n    warnings: [0.5]",
        "pause_on: [pending, on_hold]\n    warnings: [0.5]",
    )
    policy = make_policy(yaml)
    h = Harness(policy).feed(
        created("2026-03-02T09:00:00Z", customer="x", tier="ent", event_id="c1"),
        status("2026-03-02T10:00:00Z", "pending", event_id="p1"),
        status("2026-03-02T11:00:00Z", "on_hold", event_id="h1"),
    )
    h.until("2026-03-02T12:00:00Z")
    state = h.replayer.store["T1"]
    cycles = explain_with_policy(state, policy, parse_instant("2026-03-02T12:00:00Z"))["cycles"]
    resolution = cycle(cycles, "resolution")
    assert resolution["segments"] == [
        seg("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z", "counted", event_id="c1"),
        seg(
            "2026-03-02T10:00:00Z",
            "2026-03-02T11:00:00Z",
            "paused",
            event_id="p1",
            status="pending",
        ),
        seg(
            "2026-03-02T11:00:00Z",
            "2026-03-02T12:00:00Z",
            "paused",
            event_id="h1",
            status="on_hold",
        ),
    ]
    assert resolution["state"] == "paused"
    assert resolution["deadline"] == "2026-03-02T19:00:00Z"  # 7 h left, if it resumed now


def test_a_priority_change_shows_both_targets_and_the_deadline_it_moved_into_the_past() -> None:
    h = Harness(POLICY).feed(
        created("2026-03-02T09:00:00Z", tier="ent", customer="x", event_id="c1"),
        priority("2026-03-02T09:20:00Z", "urgent", event_id="u1"),
    )
    h.until("2026-03-02T09:30:00Z")
    first = cycle(explain(h, "2026-03-02T09:30:00Z"), "first_response")
    assert first["segments"] == [
        seg("2026-03-02T09:00:00Z", "2026-03-02T09:15:00Z", "counted", event_id="c1"),
        seg("2026-03-02T09:15:00Z", "2026-03-02T09:30:00Z", "counted", event_id="c1"),
    ]
    assert first["target_history"] == [
        {
            "at": "2026-03-02T09:00:00Z",
            "priority": "high",
            "policy_version": "1",
            "target_seconds": 3600,
            "cause": {"event_id": "c1"},
        },
        {
            "at": "2026-03-02T09:20:00Z",
            "priority": "urgent",
            "policy_version": "1",
            "target_seconds": 900,
            "cause": {"event_id": "u1"},
        },
    ]
    assert (first["priority"], first["target_seconds"]) == ("urgent", 900)
    assert first["original_deadline"] == "2026-03-02T10:00:00Z"
    assert first["deadline"] == "2026-03-02T09:15:00Z" == h.one("breach", "first_response")["at"]
    assert first["state"] == "breached"


def test_every_cycle_the_ticket_had_is_explained_with_how_it_ended() -> None:
    h = Harness(POLICY).feed(
        created("2026-03-02T09:00:00Z", tier="ent", customer="x", event_id="c1"),
        agent_reply("2026-03-02T09:10:00Z", event_id="a1"),
        customer_reply("2026-03-02T09:20:00Z", event_id="r1"),
        agent_reply("2026-03-02T09:40:00Z", event_id="a2"),
        status("2026-03-02T10:00:00Z", "solved", event_id="s1"),
    )
    h.until("2026-03-02T11:00:00Z")
    cycles = explain(h, "2026-03-02T11:00:00Z")
    assert [(c["metric"], c["cycle"], c["state"]) for c in cycles] == [
        ("first_response", 1, "met"),
        ("next_response", 1, "met"),
        ("periodic_update", 1, "met"),
        ("periodic_update", 2, "cancelled"),
        ("resolution", 1, "met"),
    ]
    update = cycle(cycles, "periodic_update", 2)
    assert update["segments"] == [
        seg("2026-03-02T09:40:00Z", "2026-03-02T10:00:00Z", "counted", event_id="a2")
    ]
    assert (update["ended_at"], update["counted_seconds"], update["deadline"]) == (
        "2026-03-02T10:00:00Z",
        1200,
        None,
    )
    resolution = cycle(cycles, "resolution")
    assert resolution["ended_at"] == "2026-03-02T10:00:00Z"
    assert resolution["counted_seconds"] == h.one("completed", "resolution")["elapsed_seconds"]


def test_a_first_response_stopped_by_solved_and_reopened_shows_the_stop() -> None:
    h = Harness(POLICY).feed(
        created("2026-03-02T09:00:00Z", tier="ent", customer="x", event_id="c1"),
        status("2026-03-02T09:10:00Z", "solved", event_id="s1"),
        status("2026-03-02T09:40:00Z", "open", event_id="o1"),
    )
    h.until("2026-03-02T09:50:00Z")
    first = cycle(explain(h, "2026-03-02T09:50:00Z"), "first_response")
    assert first["segments"] == [
        seg("2026-03-02T09:00:00Z", "2026-03-02T09:10:00Z", "counted", event_id="c1"),
        seg(
            "2026-03-02T09:10:00Z",
            "2026-03-02T09:40:00Z",
            "stopped",
            event_id="s1",
            status="solved",
        ),
        seg("2026-03-02T09:40:00Z", "2026-03-02T09:50:00Z", "counted", event_id="o1"),
    ]
    assert first["deadline"] == "2026-03-02T10:30:00Z"


def test_a_state_written_before_explanations_loads_and_explains_without_causes() -> None:
    h = Harness(POLICY).feed(
        created("2026-03-02T09:00:00Z", tier="ent", customer="x", event_id="c1"),
        status("2026-03-02T09:30:00Z", "pending", event_id="p1"),
    )
    record = orjson.loads(orjson.dumps(h.replayer.store["T1"].to_record()))
    old = [*record[:9], [clock[:11] for clock in record[9]], *record[10:13]]
    state = TicketState.from_record(old)
    cycles = explain_with_policy(state, POLICY, parse_instant("2026-03-02T10:00:00Z"))["cycles"]
    resolution = cycle(cycles, "resolution")
    assert resolution["segments"] == [
        seg("2026-03-02T09:00:00Z", "2026-03-02T09:30:00Z", "counted"),
        seg("2026-03-02T09:30:00Z", "2026-03-02T10:00:00Z", "paused"),
    ]
    assert resolution["counted_seconds"] == 1800
    assert resolution["target_history"][0]["cause"] is None


def test_a_record_with_too_many_fields_is_refused() -> None:
    h = Harness(POLICY).feed(created("2026-03-02T09:00:00Z", tier="ent", customer="x"))
    record = orjson.loads(orjson.dumps(h.replayer.store["T1"].to_record()))
    with pytest.raises(TypeError, match="fields, not 18"):
        TicketState.from_record([*record, [], None])
    clock = record[9][0]
    with pytest.raises(TypeError, match="fields, not 16"):
        TicketState.from_record([*record[:9], [[*clock, "", None]], *record[10:]])


# -- policy versions ---------------------------------------------------------------------------


def _version_2(**office: Any) -> dict[str, Any]:
    """The test policy with the office tier changed, as version 2's document."""
    doc: dict[str, Any] = yaml.safe_load(POLICY_YAML)
    doc["tiers"]["office"].update(office)
    return doc


def _policy_changed(at: str, effective_at: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "policy.changed",
        "event_id": "pv2",
        "occurred_at": at,
        "version": "2",
        "effective_at": effective_at,
        "policy": doc,
    }


def test_a_version_that_changes_the_calendar_splits_the_timeline_at_p() -> None:
    # Monday 2026-03-02, Berlin office hours 08:00-16:00Z. Version 2, effective 15:00Z,
    # puts the office tier on the 24x7 calendar and its high resolution target at 8 h:
    # 7 h counted under the office calendar stay counted, the last hour runs 24x7 from P.
    targets = yaml.safe_load(POLICY_YAML)["tiers"]["office"]["targets"]
    targets["resolution"]["high"] = "8h"
    h = Harness(POLICY).feed(created("2026-03-02T07:00:00Z", customer="x", event_id="c1"))
    h.feed(agent_reply("2026-03-02T08:30:00Z", event_id="a1"))
    h.feed(
        _policy_changed(
            "2026-03-02T12:00:00Z",
            "2026-03-02T15:00:00Z",
            _version_2(calendar="always", targets=targets),
        )
    )
    h.until("2026-03-02T18:00:00Z")
    resolution = cycle(explain(h, "2026-03-02T18:00:00Z"), "resolution")
    version_2 = {"event_id": None, "policy_version": "2"}
    assert resolution["segments"] == [
        seg(
            "2026-03-02T07:00:00Z",
            "2026-03-02T08:00:00Z",
            "outside_hours",
            calendar="berlin-office",  # the era before P: version 1's calendar
        ),
        seg("2026-03-02T08:00:00Z", "2026-03-02T15:00:00Z", "counted", event_id="c1"),
        seg("2026-03-02T15:00:00Z", "2026-03-02T16:00:00Z", "counted", **version_2),
        seg("2026-03-02T16:00:00Z", "2026-03-02T18:00:00Z", "counted", **version_2),
    ]
    assert resolution["target_history"] == [
        {
            "at": "2026-03-02T07:00:00Z",
            "priority": "high",
            "policy_version": "1",
            "target_seconds": 16 * 3600,
            "cause": {"event_id": "c1"},
        },
        {
            "at": "2026-03-02T15:00:00Z",
            "priority": "high",
            "policy_version": "2",
            "target_seconds": 8 * 3600,
            "cause": version_2,
        },
    ]
    breach = h.one("breach", "resolution")
    assert (breach["deadline"], breach["policy_version"]) == ("2026-03-02T16:00:00Z", "2")
    assert resolution["deadline"] == "2026-03-02T16:00:00Z"
    # as first computed: 16 h of office hours from the first run (Monday 08:00-16:00Z, Tuesday)
    assert resolution["original_deadline"] == "2026-03-03T16:00:00Z"
    assert (resolution["state"], resolution["policy_version"]) == ("breached", "2")
    assert resolution["counted_seconds"] == 10 * 3600  # 7 h + 1 h + 2 h
    restored = TicketState.from_record(
        orjson.loads(orjson.dumps(h.replayer.store["T1"].to_record()))
    )
    at = parse_instant("2026-03-02T18:00:00Z")
    versions = h.replayer.versions
    assert explain_with_policy(restored, POLICY, at, versions) == explain_with_policy(
        h.replayer.store["T1"], POLICY, at, versions
    )


def test_a_version_that_stops_pausing_a_status_resumes_the_clock_at_p_with_it_as_cause() -> None:
    h = Harness(POLICY).feed(created("2026-03-02T08:00:00Z", customer="x", event_id="c1"))
    h.feed(status("2026-03-02T09:00:00Z", "pending", event_id="p1"))
    h.feed(_policy_changed("2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z", _version_2(pause_on=[])))
    h.until("2026-03-02T12:00:00Z")
    resolution = cycle(explain(h, "2026-03-02T12:00:00Z"), "resolution")
    assert resolution["segments"] == [
        seg("2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z", "counted", event_id="c1"),
        seg(
            "2026-03-02T09:00:00Z",
            "2026-03-02T11:00:00Z",
            "paused",
            event_id="p1",
            status="pending",
        ),
        seg(
            "2026-03-02T11:00:00Z",
            "2026-03-02T12:00:00Z",
            "counted",
            event_id=None,
            policy_version="2",
        ),
    ]
    assert [c["policy_version"] for c in resolution["target_history"]] == ["1", "2"]
    assert resolution["counted_seconds"] == 2 * 3600
