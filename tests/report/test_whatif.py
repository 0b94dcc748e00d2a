"""What-if: outcomes matched by (ticket, metric, cycle); one changed target changes exactly its outcomes."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.replay import replay
from slaclock.processors.report.whatif import (
    calendar_projection,
    compare,
    outcomes_by_key,
    shift_bucket,
)
from slaclock.processors.report.whatif_render import whatif_json
from slaclock.schemas.policy import parse_policy
from slaclock.workload import WorkloadShape, ticket_events
from tests.report.workload import policy_yaml, replay_outputs, write_jsonl

SHAPE = WorkloadShape(
    tickets=400,
    start=datetime.fromisoformat("2026-10-01T00:00:00+00:00"),
    spread_seconds=20 * 86_400,
    mean_gap_seconds=1800.0,
    customers=("acme", "beta", "walk-in"),
    seed=11,
)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return ticket_events(SHAPE)


@pytest.fixture(scope="module")
def replays(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return replay_outputs(events), replay_outputs(events, policy_yaml(first_response_urgent="30m"))


def final_outcomes(
    outputs: list[dict[str, Any]],
) -> dict[tuple[str, str, int], tuple[str, str, str]]:
    """Per natural key: (outcome, metric, priority), computed plainly from the outputs."""
    result: dict[tuple[str, str, int], tuple[str, str, str]] = {}
    breached: set[tuple[str, str, int]] = set()
    for o in outputs:
        if o["type"] not in ("sla.warning", "sla.breach", "sla.completed"):
            continue
        key = (o["ticket_id"], o["metric"], o["cycle"])
        if o["type"] == "sla.breach":
            breached.add(key)
        outcome = (
            "breached"
            if key in breached
            else (
                o["outcome"] if o["type"] == "sla.completed" else result.get(key, ("running",))[0]
            )
        )
        # filed under the priority at the breach once breached, else the latest
        priority = result[key][2] if key in result and result[key][0] == "breached" else None
        result[key] = (outcome, o["metric"], priority or o["priority"])
    return result


def credits_by_key(outputs: list[dict[str, Any]]) -> dict[tuple[str, str, int], Decimal]:
    breach_key = {
        o["event_id"]: (o["ticket_id"], o["metric"], o["cycle"])
        for o in outputs
        if o["type"] == "sla.breach"
    }
    credits: dict[tuple[str, str, int], Decimal] = {}
    for o in outputs:
        if o["type"] == "sla.credit" and o.get("ticket_id"):
            key = breach_key[o["breach_event_id"]]
            credits[key] = credits.get(key, Decimal(0)) + Decimal(o["amount"])
    return credits


def test_changing_one_target_changes_exactly_that_metric_and_prioritys_outcomes(
    replays: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    a, b = replays
    comparison = compare(outcomes_by_key(a), outcomes_by_key(b))
    changed = [c for c in comparison.changes if c.outcome_a != c.outcome_b]
    assert changed, "the workload must have urgent first responses between 15 and 30 minutes"
    assert {(c.metric, c.priority) for c in changed} == {("first_response", "urgent")}
    # a longer target only takes breaches away (to met, or to not decided when cancelled)
    assert all(c.outcome_a == "breached" and c.outcome_b != "breached" for c in changed)
    assert any(c.outcome_b == "met" for c in changed)
    for (customer, tier, metric, priority), (side_a, side_b) in comparison.groups.items():
        if (metric, priority) != ("first_response", "urgent"):
            assert (side_a.met, side_a.breached) == (side_b.met, side_b.breached), (
                customer,
                tier,
                metric,
                priority,
            )


def test_reported_differences_equal_a_direct_comparison_by_natural_key(
    replays: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    a, b = replays
    direct_a, direct_b = final_outcomes(a), final_outcomes(b)
    credit_a, credit_b = credits_by_key(a), credits_by_key(b)
    expected = {
        key
        for key in set(direct_a) | set(direct_b)
        if direct_a.get(key, ("none",))[0] != direct_b.get(key, ("none",))[0]
        or credit_a.get(key, Decimal(0)) != credit_b.get(key, Decimal(0))
    }
    comparison = compare(outcomes_by_key(a), outcomes_by_key(b))
    assert {(c.ticket_id, c.metric, c.cycle) for c in comparison.changes} == expected
    for change in comparison.changes:
        key = (change.ticket_id, change.metric, change.cycle)
        assert change.outcome_a == direct_a.get(key, ("none",))[0]
        assert change.outcome_b == direct_b.get(key, ("none",))[0]
        assert change.credit_a == credit_a.get(key, Decimal(0))
        assert change.credit_b == credit_b.get(key, Decimal(0))
    # the same event ids appear under both policies for changed outcomes: ids cannot match them
    ids_a = {o["event_id"] for o in a if o["type"] == "sla.completed"}
    ids_b = {o["event_id"] for o in b if o["type"] == "sla.completed"}
    assert ids_a & ids_b


def test_whatif_command_writes_the_same_comparison_as_html_csv_and_json(
    events: list[dict[str, Any]],
    replays: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    write_jsonl(tmp_path / "events.jsonl", events)
    (tmp_path / "a.yaml").write_text(policy_yaml())
    (tmp_path / "b.yaml").write_text(policy_yaml(first_response_urgent="30m"))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from slaclock.cli import main; main()",
            "whatif",
            "--events",
            str(tmp_path / "events.jsonl"),
            "--policy",
            str(tmp_path / "a.yaml"),
            "--policy",
            str(tmp_path / "b.yaml"),
            "--until",
            "2026-12-01T00:00:00Z",
            "--out",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    document = orjson.loads((tmp_path / "w.json").read_bytes())
    a, b = replays
    expected = compare(outcomes_by_key(a), outcomes_by_key(b))
    assert [
        (c["ticket_id"], c["metric"], int(c["cycle"]), c["outcome_a"], c["outcome_b"])
        for c in document["changes"]
    ] == [(c.ticket_id, c.metric, c.cycle, c.outcome_a, c.outcome_b) for c in expected.changes]
    html = (tmp_path / "w.html").read_text()
    for chart in document["charts"]:
        assert f'data-chart="{chart}"' in html
    changes_csv = (tmp_path / "w-changes.csv").read_text().splitlines()
    assert len(changes_csv) == 1 + len(document["changes"])
    group_csv = (tmp_path / "w.csv").read_text().splitlines()
    assert len(group_csv) == 1 + len(document["groups"])
    for row in document["groups"]:
        key = f"{row['customer_id']}|{row['tier']}|{row['metric']}|{row['priority']}"
        assert f'data-k="{key}/breached_b">{row["breached_b"]}<' in html


def test_a_breached_cycle_is_filed_under_its_priority_at_the_breach() -> None:
    # Breached while urgent, downgraded to high, completed late: one urgent breach.
    base = {"ticket_id": "T1", "customer_id": "acme", "tier": "gold", "cycle": 1}
    outputs = [
        {**base, "type": "sla.breach", "event_id": "b", "metric": "resolution", "priority": "urgent",
         "deadline": "2026-11-02T10:00:00Z"},
        {**base, "type": "sla.completed", "event_id": "c", "metric": "resolution",
         "priority": "high", "outcome": "breached"},
        {**base, "type": "sla.completed", "event_id": "m", "metric": "first_response",
         "priority": "high", "outcome": "met"},
    ]  # fmt: skip
    outcomes = outcomes_by_key(outputs)
    assert outcomes[("T1", "resolution", 1)].priority == "urgent"
    assert outcomes[("T1", "first_response", 1)].priority == "high"
    groups = compare(outcomes, outcomes).groups
    assert groups[("acme", "gold", "resolution", "urgent")][0].breached == 1
    assert ("acme", "gold", "resolution", "high") not in groups


def test_whatif_json_totals_say_what_they_are_and_keep_currencies_apart(
    replays: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    a, b = replays
    comparison = compare(outcomes_by_key(a), outcomes_by_key(b))
    document = orjson.loads(whatif_json(comparison, {}))
    for n, side in enumerate(("a", "b")):
        totals = document["totals"][side]
        assert set(totals) == {"met", "breached", "running", "compliance", "credits"}
        assert set(totals["credits"]) == {"EUR", "USD"}  # acme pays in EUR, beta in USD
        for currency, amounts in comparison.credits_by_currency.items():
            assert totals["credits"][currency] == str(amounts[n])
    # a group's credits are one customer's, in its contract's currency, which the row names
    named = {
        (row["customer_id"], row["currency"])
        for row in document["groups"]
        if Decimal(row["credits_a"]) or Decimal(row["credits_b"])
    }
    assert named == {("acme", "EUR"), ("beta", "USD")}


# -- deadlines moved and the rules that differ ----------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"
EXAMPLE_EVENTS = ROOT / "examples" / "events.jsonl"


def test_doubling_a_target_moves_deadlines_without_flipping_outcomes_and_the_report_says_so(
    tmp_path: Path,
) -> None:
    # the example's two urgent enterprise tickets: T-1001 is answered in time under 15m and
    # 30m alike, T-1002 breaches under both (its breach decided 15 minutes later under B)
    doubled = tmp_path / "doubled.yaml"
    doubled.write_text(EXAMPLE_POLICY.read_text().replace("urgent: 15m", "urgent: 30m"))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from slaclock.cli import main; main()",
            "whatif",
            "--events",
            str(EXAMPLE_EVENTS),
            "--policy",
            str(EXAMPLE_POLICY),
            "--policy",
            str(doubled),
            "--out",
            str(tmp_path / "w"),
            "--serial",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert "1 rule(s) differ, 0 outcome(s) changed, 2 deadline(s) moved" in done.stderr
    # the text output: the rule, then what it did
    assert "enterprise · first_response · urgent: 15m → 30m (longer)" in done.stdout
    assert "Outcomes changed: 0" in done.stdout
    assert "Deadlines moved: 2 (2 without changing the outcome; 0 earlier, 2 later)" in done.stdout
    assert "later by up to an hour: 2" in done.stdout

    document = orjson.loads((tmp_path / "w.json").read_bytes())
    assert document["changes"] == []
    assert [r["text"] for r in document["rule_changes"]] == [
        "enterprise · first_response · urgent: 15m → 30m (longer)"
    ]
    moved = document["deadlines_moved"]
    assert (moved["count"], moved["outcome_unchanged"], moved["later"]) == (2, 2, 2)
    assert moved["median_shift_seconds"] == 900
    assert {d["shift"]: d["count"] for d in moved["distribution"]}["later by up to an hour"] == 2
    moves = document["moves"]
    assert [(m["ticket_id"], m["metric"], m["cycle"], m["shift"]) for m in moves] == [
        ("T-1001", "first_response", "1", "+15m"),
        ("T-1002", "first_response", "1", "+15m"),
    ]
    for m in moves:
        a, b = parse_instant(m["deadline_a"]), parse_instant(m["deadline_b"])
        assert b - a == 900 * 1_000_000
    assert [(m["outcome_a"], m["outcome_b"]) for m in moves] == [
        ("met", "met"),
        ("breached", "breached"),
    ]

    deadlines_csv = (tmp_path / "w-deadlines.csv").read_text().splitlines()
    assert deadlines_csv[0].startswith("ticket_id,metric,cycle,")
    assert len(deadlines_csv) == 3
    rules_csv = (tmp_path / "w-rules.csv").read_text().splitlines()
    assert len(rules_csv) == 2 and "15m" in rules_csv[1]
    html = (tmp_path / "w.html").read_text()
    assert 'data-k="moves">2<' in html
    assert 'data-rule="tiers.enterprise.targets.first_response.urgent"' in html
    assert 'data-move="T-1001|first_response|1"' in html
    assert "No outcome changed, but 2 deadline(s) moved" in html


def test_a_policy_compared_with_itself_moves_no_deadline() -> None:
    project = calendar_projection(
        compile_policy(parse_policy(EXAMPLE_POLICY.read_text(), "policy.yaml"))
    )
    outputs: list[dict[str, Any]] = []
    compiled = compile_policy(parse_policy(EXAMPLE_POLICY.read_text(), "policy.yaml"))
    replay(compiled, EXAMPLE_EVENTS.read_bytes().splitlines(), outputs.append, lambda r: None)
    assert any(o["type"] == "sla.warning" for o in outputs)
    comparison = compare(outcomes_by_key(outputs, project), outcomes_by_key(outputs, project))
    assert comparison.moves == [] and comparison.changes == []


def test_a_met_cycles_deadline_is_projected_from_its_completion_on_the_tier_calendar(
    replays: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    a, _ = replays
    compiled = compile_policy(parse_policy(policy_yaml(), "a.yaml"))
    outcomes = outcomes_by_key(a, calendar_projection(compiled))
    last_completion = {
        (o["ticket_id"], o["metric"], o["cycle"]): o for o in a if o["type"] == "sla.completed"
    }
    met = [o for key, o in last_completion.items() if outcomes[key].outcome == "met"]
    assert len(met) > 50
    for done in met:
        key = (done["ticket_id"], done["metric"], done["cycle"])
        calendar = compiled.tiers[done["tier"]].calendar
        left = round((done["target_seconds"] - done["elapsed_seconds"]) * 1_000_000)
        assert outcomes[key].deadline == calendar.instant_after(parse_instant(done["at"]), left)


@pytest.mark.parametrize(
    ("shift_s", "bucket"),
    [
        (-90_000, "earlier by more than a day"),
        (-86_400, "earlier by 1 hour to a day"),
        (-3_600, "earlier by up to an hour"),
        (-1, "earlier by up to an hour"),
        (1, "later by up to an hour"),
        (3_600, "later by up to an hour"),
        (3_601, "later by 1 hour to a day"),
        (86_401, "later by more than a day"),
    ],
)
def test_shift_buckets(shift_s: int, bucket: str) -> None:
    assert shift_bucket(shift_s * 1_000_000) == bucket
