"""Properties of explanations over random ticket histories (hypothesis; docs/semantics.md: Explanations).

The reference model's random scenarios (two calendars: 24x7 UTC, and Berlin office hours
with holidays, odd weekend intervals and both DST changes; pauses, reopenings, priority
changes, several tickets) are replayed; then, for every cycle of every ticket:
- the segments are ordered, contiguous, non-empty, and cover the cycle from its start to
  its end (or the final clock);
- the counted segments add up exactly to the clock's counted time, and for a completed
  cycle to its last `sla.completed` `elapsed_seconds`;
- for every `sla.breach`, the counted segments reach its target exactly at its deadline;
- the deadline shown for a running cycle is the one the clock computes;
- every cycle that had an output is in the explanation;
- a state round-tripped through its changelog record explains the same.

The same properties hold under random policy versions (docs/semantics.md: Policy changes)
published while the tickets run: targets scaled, calendars swapped, holidays added, `pause_on`
and warnings changed, a metric's targets dropped, `applies_to: new` or not, effective at once
or later. Each segment is counted by the calendar of the version that counted it, and every
cause that names a version is at that version's P.
"""

from __future__ import annotations

import itertools
import random
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.calendar import BusinessCalendar
from slaclock.processors.engine.clock import Phase
from slaclock.processors.engine.explain import (
    COUNTED,
    CycleTimeline,
    cycle_timeline,
    explain_with_policy,
    tier_calendars,
    version_calendars,
)
from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.ticket import TicketState
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.replay import Replayer
from slaclock.schemas.rejection import Rejected
from tests.core.builders import make_policy
from tests.core.reference_model import (
    REF_POLICY_YAML,
    Scenario,
    minute_of,
    minute_text,
    random_scenario,
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
YEAR_US = 366 * 86_400 * US_PER_SECOND


@cache
def _policy() -> CompiledPolicy:
    return make_policy(REF_POLICY_YAML)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    rng = draw(st.randoms(use_true_random=False))
    return random_scenario(rng, draw(st.integers(1, 3)))


def _random_document(rng: random.Random) -> dict[str, Any]:
    """The reference policy with a few random rule changes (never a tier dropped: the
    contracts name both)."""
    doc: dict[str, Any] = yaml.safe_load(REF_POLICY_YAML)
    doc.pop("customers")
    tiers = doc["tiers"]
    for _ in range(rng.randint(1, 3)):
        change = rng.randrange(6)
        tier = tiers[rng.choice(["ent", "office"])]
        if change == 0:  # targets scaled
            factor = rng.choice([2, 3])
            for metric, targets in tier["targets"].items():
                for name, text in targets.items():
                    if rng.random() < 0.5:
                        amount, unit = int(text[:-1]), text[-1]
                        scaled = amount * factor if rng.random() < 0.5 else max(1, amount // factor)
                        tier["targets"][metric][name] = f"{scaled}{unit}"
        elif change == 1:  # the calendars swapped
            tiers["ent"]["calendar"], tiers["office"]["calendar"] = (
                tiers["office"]["calendar"],
                tiers["ent"]["calendar"],
            )
        elif change == 2:  # holidays added (some in the scenarios' days)
            days = ["2026-03-02", "2026-03-03", "2026-03-05", "2026-03-30", "2026-03-31"]
            doc["calendars"]["berlin"]["holidays"] += rng.sample(days, rng.randint(1, 2))
        elif change == 3:
            tier["pause_on"] = rng.choice([[], ["pending"], ["on_hold"], ["pending", "on_hold"]])
        elif change == 4:
            tier["warnings"] = rng.choice([[], [0.5], [0.6, 0.95], [0.25, 0.75, 0.9]])
        else:  # a metric without targets from now on
            tier["targets"].pop(rng.choice(["next_response", "periodic_update"]), None)
    return doc


@st.composite
def versioned_scenarios(draw: st.DrawFn) -> Scenario:
    """A random scenario with one to three policy versions published while it runs."""
    rng = draw(st.randoms(use_true_random=False))
    scenario = random_scenario(rng, draw(st.integers(1, 3)))
    events = list(scenario.events)
    first = minute_of(events[0]["occurred_at"])
    last = minute_of(scenario.until)
    for number in range(2, 2 + draw(st.integers(1, 3))):
        published = rng.randint(first, last)
        line: dict[str, Any] = {
            "type": "policy.changed",
            "event_id": f"pv{number}",
            "occurred_at": minute_text(published),
            "version": f"v{number}",
            "policy": _random_document(rng),
        }
        if rng.random() < 0.5:
            line["effective_at"] = minute_text(published + rng.randint(0, 600))
        if rng.random() < 0.25:
            line["applies_to"] = "new"
        at = [i for i, e in enumerate(events) if minute_of(e["occurred_at"]) <= published]
        events.insert(at[-1] + 1 if at else 0, line)
    return Scenario(events, scenario.until)


def _replay(scenario: Scenario) -> tuple[Replayer, list[dict[str, Any]], int]:
    outputs: list[dict[str, Any]] = []
    replayer = Replayer(_policy(), outputs.append, closed_retention_us=YEAR_US)
    for line in scenario.lines():
        try:
            replayer.on_line(line)
        except Rejected:  # a version lacking what a contract names (never in these)
            continue
    until = parse_instant(scenario.until)
    replayer.finish(until)
    return replayer, outputs, until


def _seconds_us(value: int | float) -> int:
    return int(Decimal(str(value)) * US_PER_SECOND)


def _reach(timeline: CycleTimeline, target: int) -> int | None:
    """The instant the counted segments reach `target`, walking them in order."""
    counted = 0
    for piece in timeline.pieces:
        if piece.kind != COUNTED:
            continue
        if counted + (piece.end - piece.start) >= target:
            return piece.start + (target - counted)
        counted += piece.end - piece.start
    return None


def _timelines(state: TicketState, at: int, versions: PolicyBook) -> list[CycleTimeline]:
    calendar_for = (
        tier_calendars(_policy(), state.tier)
        if len(versions) == 1
        else version_calendars(versions, state)
    )
    return [
        cycle_timeline(clock, calendar_for, at, state.priority, state.version)
        for clock in [*state.finished, *state.metrics.values()]
    ]


@SETTINGS
@given(scenarios())
def test_timelines_add_up_to_the_counted_time_and_reach_each_breach_deadline(
    scenario: Scenario,
) -> None:
    _check_timelines(scenario)


@SETTINGS
@given(versioned_scenarios())
def test_timelines_under_policy_versions_add_up_and_reach_each_breach_deadline(
    scenario: Scenario,
) -> None:
    replayer = _check_timelines(scenario)
    effective = {v.version_id: v.effective for v in replayer.versions.versions}
    for state in replayer.store.values():
        explained = explain_with_policy(state, _policy(), replayer.clock() or 0, replayer.versions)
        for cycle in explained["cycles"]:
            for change in cycle["target_history"]:
                named = (change["cause"] or {}).get("policy_version")
                if named is not None:  # a version's change is at its P, under its id
                    assert change["policy_version"] == named
                    assert parse_instant(change["at"]) >= effective[named]
            for segment in cycle["segments"]:
                named = (segment["cause"] or {}).get("policy_version")
                if named is not None:
                    assert parse_instant(segment["from"]) >= effective[named]


def _check_timelines(scenario: Scenario) -> Replayer:
    replayer, outputs, until = _replay(scenario)
    engine = replayer.engine
    completed: dict[tuple[str, str, int], dict[str, Any]] = {}
    breaches: dict[tuple[str, str, int], dict[str, Any]] = {}
    for output in outputs:
        if output["type"] not in ("sla.completed", "sla.breach"):
            continue
        key = (output["ticket_id"], output["metric"], output["cycle"])
        if output["type"] == "sla.completed":
            completed[key] = output
        elif output["type"] == "sla.breach":
            breaches[key] = output
    explained: set[tuple[str, str, int]] = set()
    for state in replayer.store.values():
        calendar = engine.policy_of(state).tiers[state.tier].calendar
        for timeline in _timelines(state, until, replayer.versions):
            clock = timeline.clock
            key = (state.ticket_id, clock.metric, clock.cycle)
            assert key not in explained, f"cycle {key} explained twice"
            explained.add(key)
            _check_contiguous(timeline)
            assert timeline.counted == sum(
                p.end - p.start for p in timeline.pieces if p.kind == COUNTED
            )
            assert timeline.counted == clock.counted(calendar, timeline.end), key
            if clock.phase is Phase.COMPLETED:
                elapsed = completed[key]["elapsed_seconds"]
                assert timeline.counted == _seconds_us(elapsed), key
            breach = breaches.get(key)
            if breach is not None:
                reached = _reach(timeline, _seconds_us(breach["target_seconds"]))
                assert reached == parse_instant(breach["deadline"]), (key, breach)
                assert timeline.state in ("breached", "cancelled")
            if clock.running:
                assert timeline.deadline == clock.deadline(calendar, engine.calendar_of), key
            if timeline.deadline is not None and timeline.deadline <= timeline.end:
                assert _reach(timeline, clock.target) == timeline.deadline
                ends = {p.end for p in timeline.pieces}
                assert timeline.deadline in ends or timeline.deadline == timeline.start
    assert set(completed) | set(breaches) <= explained
    return replayer


@SETTINGS
@given(st.one_of(scenarios(), versioned_scenarios()))
def test_a_state_restored_from_its_record_explains_the_same(scenario: Scenario) -> None:
    replayer, _outputs, until = _replay(scenario)
    versions = replayer.versions
    for state in replayer.store.values():
        restored = TicketState.from_record(orjson.loads(orjson.dumps(state.to_record())))
        assert explain_with_policy(restored, _policy(), until, versions) == explain_with_policy(
            state, _policy(), until, versions
        )


def _check_contiguous(timeline: CycleTimeline) -> None:
    pieces = timeline.pieces
    if timeline.start == timeline.end:
        assert pieces == []
        return
    assert pieces[0].start == timeline.start
    assert pieces[-1].end == timeline.end
    for piece, following in itertools.pairwise(pieces):
        assert piece.start < piece.end
        assert piece.end == following.start
    assert pieces[-1].start < pieces[-1].end


# -- the calendar's intervals ------------------------------------------------------------------

BERLIN = BusinessCalendar(
    "Europe/Berlin",
    {0: [(9 * 3600, 17 * 3600)], 5: [(22 * 3600, 86_400)], 6: [(0, 2 * 3600 + 1800)]},
    [date(2026, 3, 30), date(2026, 10, 26), date(2026, 12, 24)],
)
ALWAYS_WITH_HOLIDAY = BusinessCalendar("America/New_York", None, [date(2026, 3, 8)])
START_2026_03 = parse_instant("2026-03-01T00:00:00Z")
SPAN_US = 300 * 86_400 * US_PER_SECOND


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([BERLIN, ALWAYS_WITH_HOLIDAY]),
    st.integers(0, SPAN_US),
    st.integers(0, 20 * 86_400 * US_PER_SECOND),
)
def test_working_spans_are_the_intervals_counted_between_sums(
    calendar: BusinessCalendar, offset: int, length: int
) -> None:
    a = START_2026_03 + offset
    b = a + length
    spans = calendar.working_spans(a, b)
    assert sum(hi - lo for lo, hi in spans) == calendar.counted_between(a, b)
    for n, (lo, hi) in enumerate(spans):
        assert a <= lo < hi <= b
        assert calendar.counted_between(lo, hi) == hi - lo
        if n + 1 < len(spans):
            assert hi < spans[n + 1][0]
            assert calendar.counted_between(hi, spans[n + 1][0]) == 0
    for lo, hi, day in calendar.holidays_in(a, b):
        assert a <= lo < hi <= b
        assert calendar.counted_between(lo, hi) == 0
        assert day in (date(2026, 3, 30), date(2026, 10, 26), date(2026, 12, 24), date(2026, 3, 8))
