"""Quiet services on the real broker: no service event at all, only tickets.

Every service of the policy is reported for every month after the earliest ticket event,
by the owner of its partition of `services.events`, although no partition of that topic
ever sees a record: the services tasks learn the earliest input instant from the ticket
partitions' clock progress on the services clock topic. Live equals the replay of the same
events, every output topic included (statements, which these reports do not change).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from slaclock.processors.engine.instants import parse_instant
from tests.kafka.pipeline import LivePipeline, difference, replay_outputs
from tests.kafka.test_services_live import LIVE_YAML, QUIET
from tests.kafka.test_services_pipeline import all_clocks_at, canonical, outputs, services_ticking

pytestmark = pytest.mark.kafka

FINAL = parse_instant("2026-06-01T00:00:00Z")
SERVICES = ("office-app", "portal", *QUIET)


def ticket_lines() -> list[bytes]:
    """Three tickets of acme (whose contract lists portal) in April and May 2026."""
    events: list[dict[str, Any]] = []
    for n, (created, replied) in enumerate(
        [
            ("2026-04-10T09:00:00Z", "2026-04-10T09:30:00Z"),
            ("2026-04-20T12:00:00Z", "2026-04-20T14:00:00Z"),  # late: a breach
            ("2026-05-04T08:00:00Z", "2026-05-04T08:10:00Z"),
        ],
        start=1,
    ):
        ticket = f"Q-{n}"
        events += [
            {
                "event_id": f"{ticket}-1",
                "type": "ticket.created",
                "ticket_id": ticket,
                "customer_id": "acme",
                "priority": "high",
                "occurred_at": created,
            },
            {
                "event_id": f"{ticket}-2",
                "type": "ticket.agent_replied",
                "ticket_id": ticket,
                "occurred_at": replied,
            },
        ]
    events.sort(key=lambda e: e["occurred_at"])
    return [orjson.dumps(e) for e in events]


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    policy = tmp_path / "services.yaml"
    policy.write_text(LIVE_YAML)
    live = LivePipeline(
        kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy, partitions=2, manual_clock=True
    )
    yield live
    live.close()


def test_services_without_any_event_are_reported_live_as_in_replay(
    pipeline: LivePipeline,
) -> None:
    lines = ticket_lines()
    pipeline.publish((orjson.loads(line)["ticket_id"].encode(), line) for line in lines)
    # April and May 2026 are never "ahead of the worker's clock", whatever day the test runs
    pipeline.extra_env["SLACLOCK_MAX_FUTURE_SKEW"] = str(20 * 365 * 86_400)
    worker = pipeline.start_worker("w1")
    expected = canonical(replay_outputs(pipeline.policy_path, lines, FINAL))
    reports = [
        orjson.loads(r) for r in expected if b'"sla.availability_report"' in r
    ]  # every service, April and May (office-app's months in Berlin)
    assert sorted((r["service_id"], r["period"]) for r in reports) == sorted(
        (s, m) for s in SERVICES for m in ("2026-04", "2026-05")
    )
    with pipeline.ticking(FINAL), services_ticking(pipeline, FINAL):
        rounds = 240
        while not all_clocks_at(pipeline, FINAL) and rounds:
            rounds -= 1
            time.sleep(0.5)
        assert rounds, f"the clocks did not reach FINAL\n{worker.log_tail()}"
        pipeline.settle(FINAL)
        # the services tasks report once they have read the ticket partitions' progress
        deadline = time.monotonic() + 60
        live = canonical(outputs(pipeline))
        while live != expected and time.monotonic() < deadline:
            time.sleep(0.5)
            live = canonical(outputs(pipeline))
    assert worker.stop() == 0, worker.log_tail()
    assert live == expected, difference(live, expected)
