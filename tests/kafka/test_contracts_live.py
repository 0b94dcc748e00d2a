"""Contracts through the log, and the monthly ledger, live against replay.

A contract published on `sla.contracts` after tickets exist changes only later decisions,
the same way live and in replay (where the change is a `contract.changed` line at the
record's timestamp). The workload spans several month ends, so statements and earn-backs
are compared too; workers killed at deterministic points around the run (inside open
transactions as well) change nothing, and a restarted worker resolves the same tiers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from slaclock.processors.engine.instants import parse_instant
from tests.kafka.pipeline import LivePipeline, compare, replay_cli
from tests.kafka.test_live_pipeline import FINAL_CLOCK, keyed, workload

pytestmark = [pytest.mark.kafka]

CONTRACT_AT = "2026-03-01T00:00:00Z"
NEWCO = {
    "tier": "enterprise",
    "monthly_fee": "5000.00",
    "currency": "EUR",
    "timezone": "Europe/Berlin",
}


def newco_tickets() -> list[dict[str, Any]]:
    """High tickets of a customer without a contract, before and after CONTRACT_AT,
    never answered: their first responses breach (credited only under the contract)."""
    events = []
    for n, created in enumerate(
        (
            "2026-02-20T10:00:00Z",
            "2026-02-28T23:50:00Z",
            "2026-03-01T00:00:00Z",
            "2026-03-10T10:00:00Z",
        )
    ):
        events.append(
            {
                "event_id": f"nc-{n}",
                "type": "ticket.created",
                "ticket_id": f"NC-{n}",
                "occurred_at": created,
                "customer_id": "newco",
                "priority": "high",
            }
        )
    return events


def wait_until_assigned(worker: Any, timeout: float = 60.0) -> None:
    """Until both loops of a freshly started worker have their partitions."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = worker.log_path.read_text(errors="replace")
        if "tickets: assigned tasks" in text and "ledger: assigned tasks" in text:
            return
        time.sleep(0.2)
    raise AssertionError(f"worker not assigned in {timeout}s\n{worker.log_tail()}")


def timestamp_ms(text: str) -> int:
    return parse_instant(text) // 1000


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Any:
    live = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, manual_clock=True)
    yield live
    live.close()


def publish_with_contract(pipeline: LivePipeline) -> list[tuple[bytes | None, bytes]]:
    """Events before the contract, the contract record, events after it (in that order).

    Returns the replay input: the same, with the contract as a `contract.changed` line.
    """
    events = [orjson.loads(line) for line in workload(240, seed=31)] + newco_tickets()
    events.sort(key=lambda e: e["occurred_at"])
    cut = parse_instant(CONTRACT_AT)
    before = [orjson.dumps(e) for e in events if parse_instant(e["occurred_at"]) < cut]
    after = [orjson.dumps(e) for e in events if parse_instant(e["occurred_at"]) >= cut]
    pipeline.publish(keyed(before))
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(
        pipeline.settings.topic_contracts,
        orjson.dumps(NEWCO),
        key=b"newco",
        timestamp=timestamp_ms(CONTRACT_AT),
    )
    assert producer.flush(30) == 0
    pipeline.publish(keyed(after))
    change = orjson.dumps(
        {
            "type": "contract.changed",
            "customer_id": "newco",
            "occurred_at": CONTRACT_AT,
            "contract": NEWCO,
        }
    )
    return [*keyed(before), (None, change), *keyed(after)]


def assert_equals_replay(pipeline: LivePipeline, replay_input: list[Any]) -> list[dict[str, Any]]:
    expected = replay_cli(pipeline.policy_path, replay_input, FINAL_CLOCK, pipeline.workdir)
    live = pipeline.committed_outputs()
    outputs = compare(live, expected.outputs)
    assert outputs.equal, outputs.describe("outputs")
    return live


def test_a_contract_published_after_tickets_exist_changes_only_later_decisions_live_as_in_replay(
    pipeline: LivePipeline,
) -> None:
    replay_input = publish_with_contract(pipeline)
    with pipeline.ticking(FINAL_CLOCK):
        worker = pipeline.start_worker()
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()
    live = assert_equals_replay(pipeline, replay_input)

    tiers = {
        o["ticket_id"]: o["tier"]
        for o in live
        if o["type"] == "sla.breach"
        and o["customer_id"] == "newco"
        and o["metric"] == "first_response"
    }
    default = "standard"  # examples/policy.yaml's default tier
    assert tiers == {"NC-0": default, "NC-1": default, "NC-2": "enterprise", "NC-3": "enterprise"}
    credited = sorted(
        o["ticket_id"] for o in live if o["type"] == "sla.credit" and o["customer_id"] == "newco"
    )
    # under the new contract: first response and resolution of NC-2 and NC-3; the standard
    # tier of the earlier tickets earns nothing, though NC-1 breaches after the change
    assert credited == ["NC-2", "NC-2", "NC-3", "NC-3"]
    newco_statements = sorted(
        o["period"] for o in live if o["type"] == "sla.statement" and o["customer_id"] == "newco"
    )
    assert newco_statements[0] == "2026-03"  # the first month ending after it took effect
    kinds = {o["type"] for o in live}
    assert {"sla.statement", "sla.credit"} <= kinds


@pytest.mark.slow
def test_workers_killed_around_month_ends_emit_every_statement_once(
    pipeline: LivePipeline,
) -> None:
    replay_input = publish_with_contract(pipeline)
    # The ledger's first batch carries the backfill's month ends; later workers restore the
    # ledger from its changelog (a statement must not come twice) while ticks keep coming.
    plan = [
        "between_produce_and_commit:1:ledger",
        "after_commits:2:tickets",
        "between_produce_and_commit:2:tickets",
    ]
    with pipeline.ticking(FINAL_CLOCK):
        worker, report = pipeline.run_crash_plan(plan)
        wait_until_assigned(worker)  # it has work to redo: the last kill left a transaction open
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()
    assert len(report.kills) == len(plan)
    live = assert_equals_replay(pipeline, replay_input)
    statements = [(o["customer_id"], o["period"]) for o in live if o["type"] == "sla.statement"]
    assert len(statements) == len(set(statements)) > 10
    assert datetime.fromtimestamp(FINAL_CLOCK / 1e6, UTC).month == 7
