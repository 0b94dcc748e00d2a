"""Policy versions: the rules change while the clocks run (docs/semantics.md: Policy changes).

Policy: tests/core/builders.py. acme: enterprise (24x7; high: first response 1 h,
resolution 8 h; urgent resolution 4 h; warnings 0.5 and 0.75; first response 1 % = 10.00,
resolution 2.5 % = 25.00, cap 5 % = 50.00 of 1000.00 EUR). globex: business (Berlin office
hours, Mon-Thu 09:00-17:00 local (Wed with a lunch hour), Fri 09:00-15:00; high: first
response 2 h, resolution 16 h; normal 8 h / 40 h; pauses on pending; warning 0.75).
2026-03-02 is a Monday; Berlin is UTC+1, so office hours are 08:00-16:00Z.
Every version is published as a `policy.changed` line (replay), ordered with the events
by its instant.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.ticket import TicketState
from tests.core.builders import (
    POLICY_YAML,
    Harness,
    agent_reply,
    created,
    customer_reply,
    make_policy,
    priority,
    status,
)
from tests.core.reference_model import REF_POLICY_YAML, random_scenario

MON = "2026-03-02"
TUE = "2026-03-03"
WED = "2026-03-04"
THU = "2026-03-05"
FRI = "2026-03-06"

_published = iter(range(1, 10_000))


def document(yaml_text: str = POLICY_YAML) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(yaml_text)
    return loaded


def policy_changed(
    at: str,
    version: str,
    doc: dict[str, Any],
    effective_at: str | None = None,
    applies_to: str | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "policy.changed",
        "event_id": f"p{next(_published)}",
        "occurred_at": at,
        "version": version,
        "policy": doc,
    }
    if effective_at is not None:
        line["effective_at"] = effective_at
    if applies_to is not None:
        line["applies_to"] = applies_to
    return line


def with_targets(metric: str, **by_priority: str) -> dict[str, Any]:
    """The test policy with some of enterprise's targets of `metric` changed."""
    doc = document()
    doc["tiers"]["enterprise"]["targets"][metric].update(by_priority)
    return doc


def outputs_of(h: Harness, ticket: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in h.outputs if o.get("ticket_id") == ticket and (kind is None or o["type"] == kind)
    ]


def fields(output: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(output[name] for name in names)


# -- a shorter target: the deadline already past at P -------------------------------------------


def test_a_target_shortened_past_its_deadline_breaches_at_p_with_the_past_deadline() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:30:00Z"))
    h.feed(policy_changed(f"{MON}T10:45:00Z", "2", with_targets("resolution", high="2h"),
                          effective_at=f"{MON}T12:00:00Z"))  # fmt: skip
    h.feed(status(f"{MON}T12:00:00Z", "solved"))  # exactly at P: judged by version 2
    h.until(f"{MON}T18:00:00Z")
    breach = h.one("breach", "resolution")
    assert fields(breach, "at", "deadline", "decided_at", "target_seconds", "policy_version") == (
        f"{MON}T11:00:00Z",  # 2 h of counted time from 09:00, as it was counted
        f"{MON}T11:00:00Z",
        f"{MON}T12:00:00Z",  # P
        7200,
        "2",
    )
    # the warnings of 0.5 and 0.75 of the new target (10:00, 10:30) are before P: skipped
    assert h.of("warning", "resolution") == []
    completed = h.one("completed", "resolution")
    assert fields(completed, "outcome", "elapsed_seconds", "policy_version") == (
        "breached",
        3 * 3600,
        "2",
    )
    credit = next(c for c in h.of("credit") if c["metric"] == "resolution")
    assert fields(credit, "decided_at", "amount", "policy_version") == (
        f"{MON}T12:00:00Z",
        "25.00",
        "2",
    )


def test_outputs_before_p_carry_the_old_version_and_after_it_the_new_one() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"))  # first response due 10:00 (v1); warnings 09:30, 09:45
    h.feed(policy_changed(f"{MON}T09:00:00Z", "2", with_targets("first_response", high="2h"),
                          effective_at=f"{MON}T09:40:00Z"))  # fmt: skip
    h.until(f"{MON}T12:00:00Z")
    first_response = [
        o
        for o in outputs_of(h, "T1")
        if o["metric"] == "first_response" and o["type"] in ("sla.warning", "sla.breach")
    ]
    assert [(o["type"], o["at"], o["policy_version"]) for o in first_response] == [
        ("sla.warning", f"{MON}T09:30:00Z", "1"),  # 0.5 of 1 h
        ("sla.warning", f"{MON}T10:30:00Z", "2"),  # 0.75 of 2 h, after P
        ("sla.breach", f"{MON}T11:00:00Z", "2"),
    ]


# -- calendars: a holiday added and a calendar changed while tickets are open and paused ----------

HOLIDAYS = ["2026-12-24", "2026-12-25", MON, WED]  # a past Monday and the coming Wednesday


def holidays_added() -> dict[str, Any]:
    doc = document()
    doc["calendars"]["berlin-office"]["holidays"] = HOLIDAYS
    doc["tiers"]["business"]["targets"]["resolution"]["urgent"] = "4h"
    return doc


def calendar_change(h: Harness) -> Harness:
    return h.feed(policy_changed(f"{MON}T18:00:00Z", "2", holidays_added(),
                                 effective_at=f"{TUE}T00:00:00Z"))  # fmt: skip


def test_a_paused_ticket_keeps_its_counted_time_and_resumes_under_the_new_holidays() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z", ticket="G1", customer="globex"))  # high: 16 h
    h.feed(agent_reply(f"{MON}T09:10:00Z", ticket="G1"))
    h.feed(status(f"{MON}T10:00:00Z", "pending", ticket="G1"))  # 1 h counted, paused
    calendar_change(h)
    h.feed(status(f"{WED}T08:00:00Z", "open", ticket="G1"))  # a holiday now: counts nothing
    h.until("2026-03-10T00:00:00Z")
    breach = h.one("breach", "resolution")
    # Monday's hour stays counted (the new Monday holiday is not retroactive); Wednesday
    # counts nothing; Thursday 8 h, Friday 6 h: 15 h; the 16th hour is Monday 9 March 08-09Z
    assert fields(breach, "at", "decided_at", "policy_version") == (
        "2026-03-09T09:00:00Z",
        "2026-03-09T09:00:00Z",
        "2",
    )
    warning = h.one("warning", "resolution")  # 0.75 = 12 h: Thursday's 8 h + 3 h on Friday
    assert fields(warning, "at", "policy_version") == (f"{FRI}T11:00:00Z", "2")


def test_counted_time_before_p_is_found_again_under_the_calendar_that_counted_it() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z", ticket="G2", customer="globex", priority="normal"))
    h.feed(agent_reply(f"{MON}T09:10:00Z", ticket="G2"))
    calendar_change(h)  # Monday (7 h counted) becomes a holiday in version 2
    h.feed(priority(f"{WED}T12:00:00Z", "urgent", ticket="G2"))  # version 2: urgent 4 h
    h.until(f"{WED}T13:00:00Z")
    breach = h.one("breach", "resolution")
    # 4 h of counted time were reached on Monday at 13:00Z, as Monday was counted then
    assert fields(breach, "at", "decided_at", "target_seconds", "policy_version") == (
        f"{MON}T13:00:00Z",
        f"{WED}T12:00:00Z",
        4 * 3600,
        "2",
    )


def test_a_ticket_created_after_p_counts_under_the_new_calendar() -> None:
    h = Harness()
    calendar_change(h)
    h.feed(created(f"{TUE}T08:00:00Z", ticket="G3", customer="globex"))  # high: 16 h
    h.feed(agent_reply(f"{TUE}T08:10:00Z", ticket="G3"))
    h.until(f"{FRI}T00:00:00Z")
    # Tuesday 8 h, Wednesday a holiday, Thursday 8 h
    assert h.one("breach", "resolution")["at"] == f"{THU}T16:00:00Z"


def test_a_version_that_stops_pausing_on_a_status_resumes_paused_tickets_at_p() -> None:
    doc = document()
    doc["tiers"]["enterprise"]["pause_on"] = ["on_hold"]
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))
    h.feed(status(f"{MON}T10:00:00Z", "pending"))  # resolution: 1 h counted, paused
    h.feed(policy_changed(f"{MON}T11:00:00Z", "2", doc, effective_at=f"{MON}T12:00:00Z"))
    h.until(f"{MON}T20:00:00Z")
    # counting again from 12:00: 7 h more
    assert h.one("breach", "resolution")["at"] == f"{MON}T19:00:00Z"


# -- a tier dropped ----------------------------------------------------------------------------

LEGACY = """  legacy:
    calendar: berlin-office
    targets:
      first_response: {high: 4h}
      resolution: {high: 24h}
  business:"""


def test_a_ticket_whose_tier_is_dropped_moves_to_the_new_default_tier_at_p() -> None:
    h = Harness(make_policy(POLICY_YAML.replace("  business:", LEGACY, 1)))
    h.feed(created(f"{MON}T09:00:00Z", ticket="L1", customer="initech", tier="legacy"))
    h.feed(policy_changed(f"{MON}T11:00:00Z", "2", document(),
                          effective_at=f"{MON}T12:00:00Z"))  # fmt: skip  # no `legacy`
    h.feed(created(f"{MON}T12:00:00Z", ticket="L2", customer="initech", tier="legacy"))
    h.until(f"{MON}T13:00:00Z")
    breach = h.one("breach", "first_response")
    # business (the default): 2 h of office time from 09:00Z, reached 11:00Z, decided at P
    assert fields(breach, "ticket_id", "tier", "at", "decided_at", "policy_version") == (
        "L1",
        "business",
        f"{MON}T11:00:00Z",
        f"{MON}T12:00:00Z",
        "2",
    )
    assert [r.error_class for r in h.rejections] == ["UnknownTier"]  # L2, after P


# -- warnings -------------------------------------------------------------------------------------


def test_a_changed_warnings_list_never_warns_a_fraction_already_passed() -> None:
    doc = document()
    doc["tiers"]["enterprise"]["warnings"] = [0.25, 0.5, 0.9]
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))  # resolution 8 h
    h.feed(policy_changed(f"{MON}T13:30:00Z", "2", doc, effective_at=f"{MON}T14:00:00Z"))
    h.until(f"{MON}T18:00:00Z")
    warnings = [
        (w["threshold"], w["at"], w["policy_version"]) for w in h.of("warning", "resolution")
    ]
    assert warnings == [
        (0.5, f"{MON}T13:00:00Z", "1"),  # before P
        (0.9, f"{MON}T16:12:00Z", "2"),  # 0.25 is below what was warned; 0.75 is gone
    ]
    assert h.one("breach", "resolution")["at"] == f"{MON}T17:00:00Z"


def test_a_lengthened_target_does_not_warn_an_already_warned_fraction_again() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))
    h.feed(policy_changed(f"{MON}T13:30:00Z", "2", with_targets("resolution", high="16h"),
                          effective_at=f"{MON}T14:00:00Z"))  # fmt: skip
    h.until(f"{TUE}T02:00:00Z")
    warnings = [(w["threshold"], w["at"]) for w in h.of("warning", "resolution")]
    # 0.5 of 16 h would be 17:00, but 0.5 was warned at 13:00 under version 1
    assert warnings == [(0.5, f"{MON}T13:00:00Z"), (0.75, f"{MON}T21:00:00Z")]
    assert h.one("breach", "resolution")["at"] == f"{TUE}T01:00:00Z"


def test_new_lower_fractions_are_not_warned_after_a_higher_one_was() -> None:
    doc = with_targets("resolution", high="1d")
    doc["tiers"]["enterprise"]["warnings"] = [0.25, 0.5, 0.75, 0.9]
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))  # resolution 8 h
    h.feed(policy_changed(f"{MON}T15:00:00Z", "2", doc, effective_at=f"{MON}T15:30:00Z"))
    h.until(f"{TUE}T10:00:00Z")
    warnings = [
        (w["threshold"], w["at"], w["policy_version"]) for w in h.of("warning", "resolution")
    ]
    # 0.5 and 0.75 were warned under version 1; of 24 h, 0.5 (21:00) and 0.75 (03:00) are
    # still ahead, but a cycle's warnings only go up and each fraction warns once
    assert warnings == [
        (0.5, f"{MON}T13:00:00Z", "1"),
        (0.75, f"{MON}T15:00:00Z", "1"),
        (0.9, f"{TUE}T06:36:00Z", "2"),
    ]


# -- credits: percent and cap changed in the middle of a month --------------------------------------

MARCH_END = "2026-03-31T22:00:00Z"  # midnight in Berlin (CEST from 29 March)


def breached(h: Harness, day: str, ticket: str) -> None:
    """A high ticket of acme unanswered for its hour: first response breached at 10:00Z."""
    h.feed(created(f"{day}T09:00:00Z", ticket=ticket))
    h.feed(status(f"{day}T11:00:00Z", "solved", ticket=ticket))


def test_credit_percent_and_cap_changed_mid_month_apply_from_p() -> None:
    doc = document()
    doc["tiers"]["enterprise"]["credits"] = {
        "per_breach": {"first_response": 3.0, "resolution": 2.5},
        "monthly_cap": 4,
    }
    h = Harness()
    breached(h, "2026-03-03", "A")  # 1 % = 10.00 under version 1
    h.feed(policy_changed("2026-03-10T00:00:00Z", "2", doc, effective_at="2026-03-15T00:00:00Z"))
    breached(h, "2026-03-16", "B")  # 3 % = 30.00: total 40.00, the new cap
    breached(h, "2026-03-17", "C")  # nothing left under the cap
    h.until(MARCH_END)
    credits = [(c["ticket_id"], c["percent"], c["amount"], c["capped"], c["policy_version"])
               for c in h.of("credit")]  # fmt: skip
    assert credits == [
        ("A", "1.0", "10.00", False, "1"),
        ("B", "3.0", "30.00", False, "2"),
        ("C", "3.0", "0.00", True, "2"),
    ]
    march = next(s for s in h.of("sla.statement") if s["customer_id"] == "acme")
    assert fields(march, "credit_cap", "credits_total", "policy_version") == ("40.00", "40.00", "2")


# -- applies_to: new -------------------------------------------------------------------------------


def pinned_then_open(h: Harness, later_open: bool, *meanwhile: dict[str, Any]) -> Harness:
    """OLD (high, from 09:00) is open when version 2 (`applies_to: new`) takes effect at
    12:00; NEW is created at 13:00; `meanwhile` happens in between."""
    v2 = with_targets("resolution", high="2h", urgent="1h")
    h.feed(created(f"{MON}T09:00:00Z", ticket="OLD"), agent_reply(f"{MON}T09:05:00Z", ticket="OLD"))
    h.feed(policy_changed(f"{MON}T11:00:00Z", "2", v2, effective_at=f"{MON}T12:00:00Z",
                          applies_to="new"))  # fmt: skip
    h.feed(*meanwhile)
    h.feed(created(f"{MON}T13:00:00Z", ticket="NEW"), agent_reply(f"{MON}T13:05:00Z", ticket="NEW"))
    if later_open:
        v3 = with_targets("resolution", high="4h")
        h.feed(policy_changed(f"{MON}T15:30:00Z", "3", v3, effective_at=f"{MON}T16:00:00Z"))
    return h


def test_applies_to_new_pins_open_tickets_to_their_version() -> None:
    # OLD's priority change uses its own version: urgent resolution 4 h (version 2: 1 h)
    urgent = priority(f"{MON}T12:30:00Z", "urgent", ticket="OLD")
    h = pinned_then_open(Harness(), False, urgent)
    h.until(f"{MON}T18:00:00Z")
    old = [b for b in outputs_of(h, "OLD", "sla.breach") if b["metric"] == "resolution"]
    assert [fields(b, "at", "decided_at", "policy_version") for b in old] == [
        (f"{MON}T13:00:00Z", f"{MON}T13:00:00Z", "1")  # not 10:00, decided at 12:30
    ]
    new = [b for b in outputs_of(h, "NEW", "sla.breach") if b["metric"] == "resolution"]
    assert [fields(b, "at", "policy_version") for b in new] == [(f"{MON}T15:00:00Z", "2")]


def test_a_later_open_version_applies_to_pinned_tickets_too() -> None:
    h = pinned_then_open(Harness(), later_open=True)
    h.until(f"{MON}T18:00:00Z")
    old = [b for b in outputs_of(h, "OLD", "sla.breach") if b["metric"] == "resolution"]
    # 4 h from 09:00 was reached at 13:00; decided at version 3's P
    assert [fields(b, "at", "decided_at", "target_seconds", "policy_version") for b in old] == [
        (f"{MON}T13:00:00Z", f"{MON}T16:00:00Z", 4 * 3600, "3")
    ]
    new = [b for b in outputs_of(h, "NEW", "sla.breach") if b["metric"] == "resolution"]
    assert [fields(b, "at", "policy_version") for b in new] == [(f"{MON}T15:00:00Z", "2")]
    # the pinned ticket's warnings before version 3 carried its own version
    old_warnings = outputs_of(h, "OLD", "sla.warning")
    assert {w["policy_version"] for w in old_warnings if w["at"] < f"{MON}T16:00:00Z"} == {"1"}


# -- replay: refused versions, order, the earliest input -------------------------------------------


def test_refused_versions_go_to_the_dead_letter_output() -> None:
    h = Harness()
    broken = document()
    broken["tiers"]["enterprise"]["calendar"] = "nowhere"
    no_business = document()
    del no_business["tiers"]["business"]
    del no_business["customers"]  # a version's customers are ignored: contracts are their own feed
    no_business["default_tier"] = "enterprise"
    h.feed(policy_changed(f"{MON}T08:00:00Z", "2", broken))
    h.feed(policy_changed(f"{MON}T08:00:00Z", "2", no_business))  # globex names business
    h.feed(policy_changed(f"{MON}T08:00:00Z", "3", document()))
    h.feed(policy_changed(f"{MON}T08:00:00Z", "3", document()))  # the id again
    assert [r.error_class for r in h.rejections] == [
        "InvalidPolicy",
        "IncompatiblePolicy",
        "DuplicateVersion",
    ]
    assert "nowhere" in h.rejections[0].message
    assert "'globex'" in h.rejections[1].message and "business" in h.rejections[1].message


def test_at_one_p_the_later_record_wins() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))
    h.feed(policy_changed(f"{MON}T10:00:00Z", "2", with_targets("resolution", high="2h"),
                          effective_at=f"{MON}T12:00:00Z"))  # fmt: skip
    h.feed(policy_changed(f"{MON}T10:30:00Z", "3", with_targets("resolution", high="6h"),
                          effective_at=f"{MON}T12:00:00Z"))  # fmt: skip
    h.until(f"{MON}T18:00:00Z")
    breach = h.one("breach", "resolution")
    assert fields(breach, "at", "policy_version") == (f"{MON}T15:00:00Z", "3")


def test_a_version_line_is_not_the_earliest_input_of_the_statements() -> None:
    h = Harness()
    h.feed(policy_changed("2026-01-20T00:00:00Z", "2", document()))
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))
    h.until(MARCH_END)
    assert sorted({s["period"] for s in h.of("sla.statement")}) == ["2026-03"]


def test_a_ticket_state_with_frozen_segments_survives_a_snapshot() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z", ticket="G2", customer="globex", priority="normal"))
    h.feed(agent_reply(f"{MON}T09:10:00Z", ticket="G2"))
    calendar_change(h)
    h.feed(status(f"{TUE}T12:00:00Z", "open", ticket="G2"))  # the clock moves past P
    store = h.replayer.store
    record = orjson.loads(orjson.dumps(store["G2"].to_record()))
    store["G2"] = TicketState.from_record(record)
    assert store["G2"].metrics["resolution"].eras  # Monday, frozen under version 1
    h.feed(priority(f"{WED}T12:00:00Z", "urgent", ticket="G2"))
    assert h.one("breach", "resolution")["at"] == f"{MON}T13:00:00Z"


# -- a version identical to the one in force changes nothing -----------------------------------------


def strip_versions(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in o.items() if k != "policy_version"} for o in outputs]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    tickets=st.integers(1, 4),
    applies_to=st.sampled_from([None, "new"]),
    effective_later=st.booleans(),
)
def test_a_version_identical_to_the_one_in_force_changes_no_output(
    seed: int, tickets: int, applies_to: str | None, effective_later: bool
) -> None:
    rng = random.Random(seed)
    scenario = random_scenario(rng, tickets)
    policy = make_policy(REF_POLICY_YAML)
    baseline = Harness(policy).feed(*scenario.events).until(scenario.until)

    events = copy.deepcopy(scenario.events)
    position = rng.randrange(len(events) + 1)
    published = events[min(position, len(events) - 1)]["occurred_at"]
    effective = events[-1]["occurred_at"] if effective_later else None
    line = policy_changed(published, "same", document(REF_POLICY_YAML), effective, applies_to)
    events.insert(position, line)
    changed = Harness(make_policy(REF_POLICY_YAML)).feed(*events).until(scenario.until)

    assert [r.error_class for r in changed.rejections] == [
        r.error_class for r in baseline.rejections
    ]
    assert strip_versions(changed.outputs) == strip_versions(baseline.outputs)


# -- stopped, cancelled, services ------------------------------------------------------------------


def test_a_stopped_first_response_takes_the_targets_in_force_when_a_reopen_resumes_it() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), status(f"{MON}T09:20:00Z", "solved"))  # 20 min counted
    h.feed(policy_changed(f"{MON}T09:30:00Z", "2", with_targets("first_response", high="30m"),
                          effective_at=f"{MON}T10:00:00Z"))  # fmt: skip
    h.feed(status(f"{MON}T11:00:00Z", "open"))  # reopen: 10 min left of version 2's 30 min
    h.until(f"{MON}T12:00:00Z")
    breach = h.one("breach", "first_response")
    assert fields(breach, "at", "decided_at", "target_seconds", "policy_version") == (
        f"{MON}T11:10:00Z",
        f"{MON}T11:10:00Z",
        1800,
        "2",
    )


def test_a_metric_without_a_target_in_the_new_version_ends_without_an_outcome() -> None:
    doc = document()
    del doc["tiers"]["enterprise"]["targets"]["periodic_update"]
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))  # update due 13:05
    h.feed(policy_changed(f"{MON}T09:30:00Z", "2", doc, effective_at=f"{MON}T10:00:00Z"))
    h.feed(agent_reply(f"{MON}T12:00:00Z"))  # starts no untracked cycle
    h.until(f"{MON}T20:00:00Z")
    periodic = [o for o in h.outputs if o.get("metric") == "periodic_update"]
    assert [o["type"] for o in periodic if o["type"] != "sla.cancelled"] == []


SERVICES_POLICY = (
    Path(__file__).resolve().parents[2] / "examples" / "services-policy.yaml"
).read_text()


def test_a_services_terms_change_at_its_first_period_starting_at_or_after_p() -> None:
    h = Harness(make_policy(SERVICES_POLICY))
    stricter = document(SERVICES_POLICY)
    stricter["services"]["portal"]["target"] = "99.9"
    outage = {"event_id": "s1", "type": "service.status_changed", "service_id": "portal",
              "occurred_at": "2026-11-10T00:00:00Z", "status": "major_outage"}  # fmt: skip
    back = {**outage, "event_id": "s2", "occurred_at": "2026-11-10T01:00:00Z",
            "status": "operational"}  # fmt: skip
    h.feed(outage, back)
    h.feed(policy_changed("2026-11-20T10:00:00Z", "2", stricter))
    h.until("2027-01-01T00:00:00Z")
    reports = {
        r["period"]: (r["target_percent"], r["policy_version"])
        for r in h.of("sla.availability_report")
        if r["service_id"] == "portal"
    }
    # November was finished under the terms it started with; December runs under version 2
    assert reports == {"2026-11": ("99.5", "1"), "2026-12": ("99.9", "2")}
    assert h.rejections == []


def test_the_worked_example_of_the_docs() -> None:
    root = Path(__file__).resolve().parents[2]
    h = Harness(make_policy((root / "examples" / "policy.yaml").read_text()))
    lines = (root / "examples" / "policy-change-events.jsonl").read_bytes().splitlines()
    h.feed(*lines).until("2026-03-06T18:00:00Z")
    breach = h.one("breach", "resolution")
    assert fields(breach, "ticket_id", "at", "decided_at", "target_seconds", "policy_version") == (
        "T-2001",
        f"{MON}T11:00:00Z",
        f"{MON}T12:00:00Z",
        7200,
        "2",
    )
    assert fields(h.one("credit"), "amount", "decided_at") == ("300.00", f"{MON}T12:00:00Z")
    warning = h.one("warning", "resolution")
    assert fields(warning, "ticket_id", "threshold", "at", "policy_version") == (
        "T-2002",
        0.75,
        f"{FRI}T11:00:00Z",
        "2",
    )
    assert len(h.outputs) == 6 and h.rejections == []


def test_a_metric_not_tracked_before_p_is_not_started_by_the_version() -> None:
    doc = document()
    doc["tiers"]["business"]["targets"]["next_response"] = {"high": "1h"}
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z", ticket="G1", customer="globex"))
    h.feed(agent_reply(f"{MON}T09:10:00Z", ticket="G1"))
    h.feed(customer_reply(f"{MON}T09:20:00Z", ticket="G1"))  # business: no next response yet
    h.feed(policy_changed(f"{MON}T09:30:00Z", "2", doc, effective_at=f"{MON}T10:00:00Z"))
    h.until(f"{MON}T14:00:00Z")
    assert [o for o in h.outputs if o.get("metric") == "next_response"] == []
    h.feed(customer_reply(f"{MON}T14:00:00Z", ticket="G1"))  # a new trigger: tracked now
    h.until(f"{MON}T16:00:00Z")
    breach = h.one("breach", "next_response")
    assert fields(breach, "cycle", "at", "policy_version") == (1, f"{MON}T15:00:00Z", "2")


def test_a_version_whose_p_is_after_the_end_of_the_replay_never_took_effect() -> None:
    h = Harness()
    h.feed(created(f"{MON}T09:00:00Z"), agent_reply(f"{MON}T09:05:00Z"))
    h.feed(policy_changed(f"{MON}T10:00:00Z", "2", with_targets("resolution", high="1h"),
                          effective_at=f"{MON}T20:00:00Z"))  # fmt: skip
    h.until(f"{MON}T16:00:00Z")
    assert {o["policy_version"] for o in h.outputs} == {"1"}
    assert h.of("breach", "resolution") == []
