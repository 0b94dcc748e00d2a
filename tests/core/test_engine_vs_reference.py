"""The engine against the brute-force reference model (`reference_model.py`).

Random ticket histories (several tickets interleaved, events on minute boundaries, in time
order) around ordinary weeks, holidays, month ends and the 2026 DST changes in
Europe/Berlin are replayed through the real replay adapter and through the model; the
outputs must be equal as multisets of (type, ticket, metric, cycle, at, and per type:
threshold / deadline + decided_at / outcome + elapsed / period + amount + capped + total).

Regression (tests at the end): a metric that stops counting at the very instant its
counted time reaches a threshold or its target must still warn / breach at that instant;
the model flags such batches and the guard below makes sure the generator produces some.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.policy import CompiledPolicy
from tests.core.builders import Harness, created, make_policy, status
from tests.core.reference_model import (
    REF_POLICY_YAML,
    ReferenceModel,
    Row,
    Scenario,
    default_ref_policy,
    engine_rows,
    minute_of,
    minute_text,
    multiset_diff,
    random_scenario,
)

BATCHES = 50
TICKETS_PER_BATCH = 8


@cache
def _policy() -> CompiledPolicy:
    return make_policy(REF_POLICY_YAML)


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return _policy()


def _scenario(seed: int) -> Scenario:
    return random_scenario(random.Random(seed), TICKETS_PER_BATCH, prefix=f"S{seed}-")


@cache
def _batch(seed: int) -> tuple[Scenario, list[Row], list[Row], set[str]]:
    """A random batch run through both (cached: several tests look at the same batches)."""
    scenario = _scenario(seed)
    return (scenario, *_run_both(_policy(), scenario))


def _run_both(policy: CompiledPolicy, scenario: Scenario) -> tuple[list[Row], list[Row], set[str]]:
    harness = Harness(policy).feed(*scenario.events).until(scenario.until)
    assert harness.rejections == [], harness.rejections
    model = ReferenceModel()
    expected = model.run(scenario.events, scenario.until)
    return engine_rows(harness.outputs), expected, model.crossings_while_not_counting


def _explain(scenario: Scenario, only_engine: Sequence[Row], only_model: Sequence[Row]) -> str:
    tickets = {row[2] if row[0] == "sla.credit" else row[1] for row in [*only_engine, *only_model]}
    lines = [f"until {scenario.until}", "events of the tickets that differ:"]
    lines += [f"  {e}" for e in scenario.events if e["ticket_id"] in tickets]
    lines += ["only in the engine:", *(f"  {r}" for r in only_engine)]
    lines += ["only in the model:", *(f"  {r}" for r in only_model)]
    return "\n".join(lines)


# -- the model itself ---------------------------------------------------------------------


def _utc_intervals(day: str) -> list[tuple[str, str]]:
    calendar = default_ref_policy().tiers["office"].calendar
    return [
        (minute_text(a), minute_text(b)) for a, b in calendar.day_intervals(date.fromisoformat(day))
    ]


def test_model_calendar_maps_spring_gap_times_to_the_gap_end() -> None:
    # Sun 2026-03-29, 02:00 CET -> 03:00 CEST. 00:30-02:30 ends where the gap ends;
    # 02:40-02:50 lies inside the gap (no time); 03:30-06:00 and 20:00-24:00 are CEST.
    assert _utc_intervals("2026-03-29") == [
        ("2026-03-28T23:30:00Z", "2026-03-29T01:00:00Z"),
        ("2026-03-29T01:30:00Z", "2026-03-29T04:00:00Z"),
        ("2026-03-29T18:00:00Z", "2026-03-29T22:00:00Z"),
    ]


def test_model_calendar_maps_ambiguous_times_to_their_first_occurrence() -> None:
    # Sun 2026-10-25, 03:00 CEST -> 02:00 CET: 02:30 and 02:40-02:50 are the CEST ones.
    assert _utc_intervals("2026-10-25") == [
        ("2026-10-24T22:30:00Z", "2026-10-25T00:30:00Z"),
        ("2026-10-25T00:40:00Z", "2026-10-25T00:50:00Z"),
        ("2026-10-25T02:30:00Z", "2026-10-25T05:00:00Z"),
        ("2026-10-25T19:00:00Z", "2026-10-25T23:00:00Z"),
    ]


def test_model_calendar_skips_holidays_and_lunch_breaks() -> None:
    assert _utc_intervals("2026-03-04") == []  # a Wednesday holiday
    assert _utc_intervals("2026-03-03") == [  # Tuesday, CET
        ("2026-03-03T08:00:00Z", "2026-03-03T11:00:00Z"),
        ("2026-03-03T12:00:00Z", "2026-03-03T16:00:00Z"),
    ]


def test_model_breaches_a_24x7_first_response_at_its_target() -> None:
    events = [created("2026-03-02T09:00:00Z", ticket="M1", priority="high", customer="acme")]
    rows = ReferenceModel().run(events, "2026-03-02T09:40:00Z")
    assert [r for r in rows if r[2] == "first_response"] == [
        ("sla.warning", "M1", "first_response", 1, "2026-03-02T09:20:00Z", 0.5),
        ("sla.warning", "M1", "first_response", 1, "2026-03-02T09:30:00Z", 0.75),
        ("sla.warning", "M1", "first_response", 1, "2026-03-02T09:36:00Z", 0.9),
        (
            "sla.breach",
            "M1",
            "first_response",
            1,
            "2026-03-02T09:40:00Z",
            "2026-03-02T09:40:00Z",
            "2026-03-02T09:40:00Z",
        ),
    ]


# -- engine against model -----------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    ["2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25", "2026-10-27", "2026-12-23"],
)
@pytest.mark.parametrize("priority", ["urgent", "high", "normal", "low"])
def test_engine_matches_model_for_untouched_office_ticket_around_dst_and_holidays(
    policy: CompiledPolicy, day: str, priority: str
) -> None:
    start = minute_of(f"{day}T00:00:00Z")
    events = [
        created(
            minute_text(start + offset), ticket=f"D{offset}", priority=priority, customer="globex"
        )
        for offset in range(0, 24 * 60, 50)
    ]
    scenario = Scenario(events, minute_text(start + 6 * 1440))
    engine, expected, flagged = _run_both(policy, scenario)
    assert not flagged
    only_engine, only_model = multiset_diff(engine, expected)
    assert not only_engine and not only_model, _explain(scenario, only_engine, only_model)


@pytest.mark.parametrize("seed", range(BATCHES))
def test_engine_matches_model_on_random_ticket_histories(seed: int) -> None:
    scenario, engine, expected, _flagged = _batch(seed)
    only_engine, only_model = multiset_diff(engine, expected)
    assert not only_engine and not only_model, _explain(scenario, only_engine, only_model)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    return random_scenario(draw(st.randoms(use_true_random=False)), draw(st.integers(1, 4)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_engine_matches_model_on_generated_histories(scenario: Scenario) -> None:
    """The same comparison with hypothesis driving the generator (so failures shrink)."""
    engine, expected, _flagged = _run_both(_policy(), scenario)
    only_engine, only_model = multiset_diff(engine, expected)
    assert not only_engine and not only_model, _explain(scenario, only_engine, only_model)


def test_random_histories_exercise_every_output_kind_and_dst_days() -> None:
    """Guard against a generator that silently stops covering the interesting cases."""
    kinds: set[str] = set()
    reasons: set[str] = set()
    dst_tickets = 0
    flagged_batches = 0
    for seed in range(BATCHES):
        scenario, _engine, rows, flagged = _batch(seed)
        flagged_batches += bool(flagged)
        kinds |= {row[0] for row in rows}
        reasons |= {row[5] for row in rows if row[0] == "sla.completed"}
        reasons |= {"decided-later" for row in rows if row[0] == "sla.breach" and row[4] != row[6]}
        reasons |= {"capped" for row in rows if row[0] == "sla.credit" and row[8]}
        reasons |= {f"cancelled-{row[5]}" for row in rows if row[0] == "sla.cancelled"}
        reasons |= {"cancelled-breached" for row in rows if row[0] == "sla.cancelled" and row[8]}
        dst_tickets += sum(
            1
            for e in scenario.events
            if e["type"] == "ticket.created"
            and e["occurred_at"][:10] in ("2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25")
        )
    assert kinds == {"sla.warning", "sla.breach", "sla.completed", "sla.cancelled", "sla.credit"}
    assert {"met", "breached", "decided-later", "capped"} <= reasons
    cancels = {"cancelled-solved", "cancelled-closed", "cancelled-no_target", "cancelled-breached"}
    assert cancels <= reasons, reasons
    assert dst_tickets >= 20
    assert flagged_batches >= 1  # the stop-at-a-crossing regression is exercised


# -- regression: a metric stopped exactly at a crossing ---------------------------------


def test_engine_matches_model_on_histories_that_stop_a_metric_at_a_crossing() -> None:
    compared = 0
    problems: list[str] = []
    for seed in range(BATCHES):
        scenario, engine, expected, flagged = _batch(seed)
        if not flagged:
            continue
        compared += 1
        only_engine, only_model = multiset_diff(engine, expected)
        if only_engine or only_model:
            problems.append(f"seed {seed}:\n" + _explain(scenario, only_engine, only_model))
    assert compared > 0
    assert not problems, "\n\n".join(problems)


def test_resolution_paused_exactly_at_its_deadline_breaches_then(policy: CompiledPolicy) -> None:
    # ent, low: resolution 1d of 24x7 time, no first_response target. Pending at exactly
    # 24 h counted, solved 3 h later: the deadline (09:00 next day) passed while it ran.
    h = Harness(policy).feed(
        created("2026-03-02T09:00:00Z", ticket="P1", priority="low", customer="acme"),
        status("2026-03-03T09:00:00Z", "pending", ticket="P1"),
        status("2026-03-03T12:00:00Z", "solved", ticket="P1"),
    )
    h.until("2026-03-03T12:00:00Z")
    done = h.one("completed", "resolution")
    assert (done["elapsed_seconds"], done["at"]) == (86400, "2026-03-03T12:00:00Z")
    assert h.one("breach", "resolution")["at"] == "2026-03-03T09:00:00Z"  # engine: none
    assert done["outcome"] == "breached"  # engine: "met"


def test_first_response_stopped_by_solved_exactly_at_a_threshold_is_not_warned(
    policy: CompiledPolicy,
) -> None:
    # ent, high: first_response 40m, warnings at 20m, 30m, 36m. Solved at exactly 20 min
    # counted (the 0.5 instant): stopped is not running, so no warning then; the reopen
    # recomputes it and skips the 0.5 threshold, whose instant is before the reopen.
    events = [
        created("2026-03-02T09:00:00Z", ticket="P2", priority="high", customer="acme"),
        status("2026-03-02T09:20:00Z", "solved", ticket="P2"),
        status("2026-03-02T11:00:00Z", "open", ticket="P2"),
    ]
    h = Harness(policy).feed(*events).until("2026-03-02T11:20:00Z")
    warnings = [(w["threshold"], w["at"]) for w in h.of("warning", "first_response")]
    assert warnings == [
        (0.75, "2026-03-02T11:10:00Z"),
        (0.9, "2026-03-02T11:16:00Z"),
    ]
    rows = ReferenceModel().run(events, "2026-03-02T11:20:00Z")
    assert [r[5] for r in rows if r[0] == "sla.warning" and r[2] == "first_response"] == [
        0.75,
        0.9,
    ]


def test_breach_found_on_resume_is_still_credited_in_key_order(policy: CompiledPolicy) -> None:
    # acme: resolution credit 25.00, cap 60.00 a month. A's resolution (1d) reaches its
    # deadline at 09:00 exactly when it goes pending; B and C breach at 09:30 and 10:00.
    # Key order (decided_at) is A, B, C: 25 + 25 + 10 (capped). The engine only finds A's
    # breach when A resumes at 11:00, after B's and C's credits were allocated.
    h = Harness(policy).feed(
        created("2026-03-02T09:00:00Z", ticket="A", priority="low", customer="acme"),
        created("2026-03-02T09:30:00Z", ticket="B", priority="low", customer="acme"),
        created("2026-03-02T10:00:00Z", ticket="C", priority="low", customer="acme"),
        status("2026-03-03T09:00:00Z", "pending", ticket="A"),
        status("2026-03-03T11:00:00Z", "open", ticket="A"),
    )
    h.until("2026-03-03T11:00:00Z")
    credits = [(c["ticket_id"], c["amount"], c["capped"]) for c in h.of("credit")]
    assert credits == [("A", "25.00", False), ("B", "25.00", False), ("C", "10.00", True)]
