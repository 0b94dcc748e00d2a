"""Group clocks and group statements (docs/semantics.md: Groups) live against replay.

The shared workload with its assignments spread over two defined groups, a group the
policy lacks and unassignments, so there are holds, hand-offs and unassignments in every
partition; the ledger tasks own the groups' months by key. Live outputs (group metrics
with `group` set, customer metrics with `group: null`, group statements) equal replay's,
record for record; also with workers killed around commits (slow).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.kafka.pipeline import LivePipeline, compare, replay_cli
from tests.kafka.test_live_pipeline import FINAL_CLOCK, keyed, workload

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
GROUPS = """
groups:
  support:
    calendar: berlin-office
    targets:
      group_response: {urgent: 30m, high: 2h, normal: 4h, low: 1d}
      group_resolution: {urgent: 4h, high: 1d, normal: 2d, low: 5d}
    pause_on: [pending]
    warnings: [0.75]
  engineering:
    calendar: always
    targets:
      group_response: {urgent: 15m, high: 1h, normal: 4h}
      group_resolution: {urgent: 2h, high: 8h, normal: 2d}
    pause_on: [pending, on_hold]
    warnings: [0.5, 0.9]
"""
CHOICES = ("support", "engineering", "engineering", "billing", None)


def with_groups(lines: list[bytes], seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for line in lines:
        event: dict[str, Any] = orjson.loads(line)
        if event.get("type") == "ticket.assigned":
            event["group"] = rng.choice(CHOICES)
        out.append(orjson.dumps(event))
    return out


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Any:
    policy = tmp_path / "groups.yaml"
    policy.write_text((ROOT / "examples" / "policy.yaml").read_text() + GROUPS)
    live = LivePipeline(
        kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy, manual_clock=True
    )
    yield live
    live.close()


def assert_equals_replay(pipeline: LivePipeline, records: list[Any]) -> list[dict[str, Any]]:
    expected = replay_cli(pipeline.policy_path, records, FINAL_CLOCK, pipeline.workdir)
    live = pipeline.committed_outputs()
    outputs = compare(live, expected.outputs)
    assert outputs.equal, outputs.describe("outputs")
    return live


def assert_groups_seen(live: list[dict[str, Any]]) -> None:
    group_outputs = [o for o in live if o.get("group") is not None]
    assert {o["group"] for o in group_outputs} == {"support", "engineering"}
    statements = [(o["group"], o["period"]) for o in live if o["type"] == "sla.group_statement"]
    assert len(statements) == len(set(statements)) >= 8  # both groups, every month
    assert sum(o["handoffs"] for o in live if o["type"] == "sla.group_statement") > 0
    customer = [o for o in live if o["type"] == "sla.breach" and o["group"] is None]
    assert customer


def test_group_outputs_and_statements_live_equal_replay(pipeline: LivePipeline) -> None:
    records = keyed(with_groups(workload(400, seed=41), seed=5))
    pipeline.publish(records)
    with pipeline.ticking(FINAL_CLOCK):
        worker = pipeline.start_worker()
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()
    assert_groups_seen(assert_equals_replay(pipeline, records))


@pytest.mark.slow
def test_workers_killed_around_commits_emit_every_group_statement_once(
    pipeline: LivePipeline,
) -> None:
    records = keyed(with_groups(workload(400, seed=43), seed=7))
    pipeline.publish(records)
    plan = [
        "between_produce_and_commit:1:ledger",
        "after_commits:2:tickets",
        "between_produce_and_commit:2:tickets",
    ]
    with pipeline.ticking(FINAL_CLOCK):
        worker, report = pipeline.run_crash_plan(plan)
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()
    assert len(report.kills) == len(plan)
    assert_groups_seen(assert_equals_replay(pipeline, records))
