"""Stage 1 partitions and the ledger together, with explicit ticks and interleavings.

The ledger must not depend on which partition's records reach it first: credits are
allocated in key order once every partition's clock has passed their decision, and a month
is closed once every clock has reached its end. So any interleaving gives the ledger
outputs of replay, in replay's order.
"""

from __future__ import annotations

import random
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.replay import Replayer
from tests.core.builders import POLICY_YAML, created, make_policy, status
from tests.core.reference_model import REF_POLICY_YAML, random_scenario
from tests.inprocess.harness import Pipeline, ledger_owner, partition_of

# Two tickets that land in different partitions of a 2-partition pipeline.
LEFT, RIGHT = "L1", "R1"
assert partition_of(LEFT, 2) != partition_of(RIGHT, 2)


def replay_outputs(policy: CompiledPolicy, events: list[dict[str, Any]], until: str) -> list[Any]:
    outputs: list[dict[str, Any]] = []
    replayer = Replayer(policy, outputs.append)
    for event in events:
        replayer.on_line(orjson.dumps(event))
    replayer.finish(parse_instant(until))
    return outputs


LEDGER_TYPES = ("sla.credit", "sla.statement", "sla.credit_earned_back", "sla.group_statement")


def ledger_part(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in outputs if o["type"] in LEDGER_TYPES]


def test_a_lagging_partition_holds_credits_back_until_its_clock_passes_the_decision() -> None:
    pipeline = Pipeline(make_policy())
    left = pipeline.event(created("2026-03-02T09:00:00Z", ticket=LEFT))  # high: 1 h
    right = pipeline.event(created("2026-03-02T08:00:00Z", ticket=RIGHT, priority="low"))
    pipeline.tick(left, "2026-03-02T12:00:00Z")  # left's first_response breached at 10:00
    pipeline.deliver(left)
    pipeline.deliver(right)  # right's clock: 08:00
    assert pipeline.of("sla.breach") and pipeline.of("sla.credit") == []
    pipeline.tick(right, "2026-03-02T10:00:00Z")  # exactly at the decision: not past it
    pipeline.deliver(right)
    assert [c["ticket_id"] for c in pipeline.of("sla.credit")] == []
    pipeline.tick(right, "2026-03-02T10:00:00.000001Z")
    pipeline.deliver(right)
    assert [c["ticket_id"] for c in pipeline.of("sla.credit")] == [LEFT]


def test_credits_competing_for_the_cap_do_not_depend_on_arrival_order() -> None:
    events = [
        created("2026-03-02T09:00:00Z", ticket=LEFT),
        created("2026-03-02T09:00:00Z", ticket=RIGHT),
    ]
    until = "2026-03-02T18:00:00Z"  # both first responses (10:00) and resolutions (17:00)
    expected = ledger_part(replay_outputs(make_policy(), events, until))
    assert [c["amount"] for c in expected] == ["10.00", "10.00", "25.00", "5.00"]  # cap 50
    for first in (0, 1):
        pipeline = Pipeline(make_policy())
        for event in events:
            pipeline.event(event)
        pipeline.tick_all(until)
        pipeline.deliver(first)  # one partition's breaches and clock arrive first
        pipeline.deliver(1 - first)
        pipeline.finish(until)
        assert pipeline.ledger_outputs == expected


def test_a_month_is_closed_only_when_every_partition_has_reached_its_end() -> None:
    pipeline = Pipeline(make_policy())
    left = pipeline.event(created("2026-03-30T09:00:00Z", ticket=LEFT))
    right = pipeline.event(created("2026-03-30T09:00:00Z", ticket=RIGHT))
    march_end = "2026-03-31T22:00:00Z"  # midnight in Berlin (CEST)
    pipeline.tick(left, march_end)
    pipeline.tick(right, "2026-03-31T21:59:59.999999Z")
    pipeline.deliver_all()
    assert pipeline.of("sla.statement") == []
    pipeline.tick(right, march_end)
    pipeline.deliver(right)
    statements = pipeline.of("sla.statement")
    assert [(s["customer_id"], s["period"], s["at"]) for s in statements] == [
        ("acme", "2026-03", march_end)
    ]
    assert statements[0]["overall"]["breached"] == 4  # both tickets: first response, resolution


@cache
def earn_back_policy() -> CompiledPolicy:
    return make_policy(
        REF_POLICY_YAML.replace(
            "monthly_cap: 6", "monthly_cap: 6\n      earn_back: {months: 1, min_compliance: 0.5}"
        )
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    tickets=st.integers(1, 5),
    partitions=st.integers(1, 3),
)
def test_any_split_into_partitions_and_any_interleaving_gives_the_replay_outputs(
    seed: int, tickets: int, partitions: int
) -> None:
    rng = random.Random(seed)
    scenario = random_scenario(rng, tickets)
    policy = earn_back_policy()
    expected = replay_outputs(policy, scenario.events, scenario.until)

    pipeline = Pipeline(policy, partitions)
    for event in scenario.events:
        pipeline.event(event)
        if rng.random() < 0.5:  # records travel at random moments, partition by partition
            pipeline.deliver(rng.randrange(partitions), rng.randint(0, 3))
    pipeline.finish(scenario.until)

    assert pipeline.ledger_outputs == ledger_part(expected)
    tickets_out = [o for o in expected if o["type"] not in LEDGER_TYPES]
    assert Counter(orjson.dumps(o) for o in pipeline.ticket_outputs) == Counter(
        orjson.dumps(o) for o in tickets_out
    )


# -- groups (OLAs) ---------------------------------------------------------------------------

REF_GROUPS_YAML = """
groups:
  tier1:
    calendar: always
    targets:
      group_response: {urgent: 10m, high: 30m, normal: 1h, low: 4h}
      group_resolution: {urgent: 1h, high: 2h, normal: 4h}
    pause_on: [pending]
    warnings: [0.5]
  engineering:
    calendar: berlin
    targets:
      group_response: {high: 1h, normal: 4h}
      group_resolution: {urgent: 4h, high: 8h, normal: 2d}
    pause_on: [pending, on_hold]
    warnings: [0.75]
"""
GROUP_CHOICES = ("tier1", "engineering", "billing", None, "")


@cache
def groups_policy() -> CompiledPolicy:
    return make_policy(REF_POLICY_YAML + REF_GROUPS_YAML)


def with_assignments(rng: random.Random, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with random assignments to groups (defined, undefined, none) after some."""
    out: list[dict[str, Any]] = []
    for number, event in enumerate(events):
        out.append(event)
        if rng.random() < 0.35:
            out.append(
                {
                    "event_id": f"{event['event_id']}-as{number}",
                    "type": "ticket.assigned",
                    "ticket_id": event["ticket_id"],
                    "occurred_at": event["occurred_at"],
                    "assignee": f"agent{rng.randint(1, 3)}",
                    "group": rng.choice(GROUP_CHOICES),
                }
            )
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    tickets=st.integers(1, 5),
    partitions=st.integers(1, 3),
    ledgers=st.integers(1, 2),
)
def test_group_clocks_and_statements_live_give_the_replay_outputs(
    seed: int, tickets: int, partitions: int, ledgers: int
) -> None:
    rng = random.Random(seed)
    scenario = random_scenario(rng, tickets)
    events = with_assignments(rng, scenario.events)
    policy = groups_policy()
    expected = replay_outputs(policy, events, scenario.until)

    pipeline = Pipeline(policy, partitions, ledgers=ledgers)
    for event in events:
        pipeline.event(event)
        if rng.random() < 0.5:
            pipeline.deliver(rng.randrange(partitions), rng.randint(0, 3))
    pipeline.finish(scenario.until)

    # several ledger tasks emit in their own order; each one's equals replay's order
    assert Counter(orjson.dumps(o) for o in pipeline.ledger_outputs) == Counter(
        orjson.dumps(o) for o in ledger_part(expected)
    )
    tickets_out = [o for o in expected if o["type"] not in LEDGER_TYPES]
    assert Counter(orjson.dumps(o) for o in pipeline.ticket_outputs) == Counter(
        orjson.dumps(o) for o in tickets_out
    )
    assert {s["group"] for s in pipeline.of("sla.group_statement")} <= {"tier1", "engineering"}
    group_ids = [o["event_id"] for o in expected if o.get("group") is not None]
    assert len(group_ids) == len(set(group_ids))  # one id per group output


def test_group_statements_come_from_the_ledger_task_that_owns_the_group() -> None:
    policy = groups_policy()
    events = [
        created("2026-03-02T09:00:00Z", ticket=LEFT, customer="c1"),
        {
            "event_id": "as1",
            "type": "ticket.assigned",
            "ticket_id": LEFT,
            "occurred_at": "2026-03-02T09:05:00Z",
            "group": "tier1",
        },
    ]
    expected = replay_outputs(policy, events, "2026-04-01T00:00:00Z")
    pipeline = Pipeline(policy, 2, ledgers=2)
    for event in events:
        pipeline.event(event)
    pipeline.finish("2026-04-01T00:00:00Z")
    statements = [o for o in expected if o["type"] == "sla.group_statement"]
    assert [s["holds"] for s in statements if s["group"] == "tier1"] == [1]
    assert sorted(orjson.dumps(o) for o in pipeline.of("sla.group_statement")) == sorted(
        orjson.dumps(o) for o in statements
    )


# -- contract changes "from the 1st" across two ledger partitions ------------------------------

BETA = """  beta:
    tier: enterprise
    monthly_fee: "3000.00"
    currency: EUR
    timezone: Europe/Berlin
"""
NOV_END = "2026-11-30T23:00:00Z"  # = 2026-12-01T00:00:00+01:00


def test_changes_from_the_1st_leave_november_its_terms_in_every_ledger_partition() -> None:
    example = (Path(__file__).resolve().parents[2] / "examples" / "policy.yaml").read_text()
    policy = make_policy(example + BETA)  # the file ends with its customers
    assert ledger_owner("acme", 2) != ledger_owner("beta", 2)
    cheaper = {"tier": "enterprise", "monthly_fee": "6000.00", "currency": "EUR",
               "timezone": "Europe/Berlin", "effective_at": "2026-12-01T00:00:00+01:00"}  # fmt: skip
    timeline: list[dict[str, Any]] = [
        created("2026-11-10T09:00:00Z", ticket=LEFT, customer="acme"),  # 120.00 + 300.00
        created("2026-11-10T09:00:00Z", ticket=RIGHT, customer="beta"),  # 30.00 + 75.00
        {"type": "contract.changed", "customer_id": "acme", "occurred_at": "2026-11-20T10:00:00Z",
         "contract": cheaper},
        {"type": "contract.changed", "customer_id": "beta", "occurred_at": NOV_END,
         "contract": None},  # withdrawn exactly at November's end
    ]  # fmt: skip
    until = "2026-12-31T23:00:00Z"
    expected = ledger_part(replay_outputs(policy, timeline, until))

    pipeline = Pipeline(policy, partitions=2, ledgers=2)
    for item in timeline:
        if item["type"] == "contract.changed":
            pipeline.contract(item["customer_id"], item["contract"], item["occurred_at"])
        else:
            pipeline.event(item)
    pipeline.tick(0, "2026-12-01T00:00:00Z")  # partition 0 past November's end first
    pipeline.deliver_all()
    pipeline.finish(until)

    def by_customer(outputs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return {c: [o for o in outputs if o["customer_id"] == c] for c in ("acme", "beta")}

    assert by_customer(pipeline.ledger_outputs) == by_customer(expected)
    statements = {
        (s["customer_id"], s["period"]): s
        for s in pipeline.of("sla.statement")
        if s["customer_id"] in ("acme", "beta")
    }
    assert sorted(statements) == [("acme", "2026-11"), ("acme", "2026-12"), ("beta", "2026-11")]
    assert statements["acme", "2026-11"]["monthly_fee"] == "12000.00"
    assert statements["acme", "2026-12"]["monthly_fee"] == "6000.00"
    assert statements["beta", "2026-11"]["credits_total"] == "105.00"  # 1% + 2.5% (unsolved)


# -- a policy version with a grace: live gives replay's outputs ----------------------------------


def test_a_version_applies_at_p_in_every_partition_even_ahead_of_a_graced_clock() -> None:
    """Partition clocks lag their events by the grace (2 s); an event at or after P must
    still be judged by the new version, and the outputs are replay's."""
    doc = yaml.safe_load(POLICY_YAML)
    doc["tiers"]["enterprise"]["targets"]["resolution"]["high"] = "2h"
    version = {"type": "policy.changed", "event_id": "p2", "version": "2",
               "occurred_at": "2026-03-02T10:45:00Z", "effective_at": "2026-03-02T12:00:00Z",
               "policy": doc}  # fmt: skip
    timeline: list[dict[str, Any]] = [
        created("2026-03-02T09:00:00Z", ticket=LEFT),
        created("2026-03-02T09:00:00Z", ticket=RIGHT),
        version,
        # exactly at P: judged by version 2, whose 2 h passed at 11:00 (breached first)
        status("2026-03-02T12:00:00Z", "solved", ticket=LEFT),
        status("2026-03-02T12:00:01Z", "solved", ticket=RIGHT),
    ]
    until = "2026-03-02T13:00:00Z"
    expected = replay_outputs(make_policy(), timeline, until)

    pipeline = Pipeline(make_policy(), partitions=2, grace_us=2_000_000)
    for item in timeline:
        if item["type"] == "policy.changed":
            pipeline.policy_version(item)
        else:
            pipeline.event(item)
    pipeline.finish(until)

    completed = [o for o in pipeline.ticket_outputs if o["type"] == "sla.completed"]
    resolution = {o["ticket_id"]: o for o in completed if o["metric"] == "resolution"}
    assert {t: (o["outcome"], o["policy_version"]) for t, o in resolution.items()} == {
        LEFT: ("breached", "2"),
        RIGHT: ("breached", "2"),
    }
    tickets_out = [o for o in expected if o["type"] not in LEDGER_TYPES]
    assert Counter(orjson.dumps(o) for o in pipeline.ticket_outputs) == Counter(
        orjson.dumps(o) for o in tickets_out
    )
    assert pipeline.ledger_outputs == ledger_part(expected)
