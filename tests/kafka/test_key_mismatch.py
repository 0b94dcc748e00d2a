"""Input records keyed other than by their ticket id go to the dead-letter topic.

A record whose key is missing or differs from its `ticket_id` would be applied in whatever
partition the key chose, away from the ticket's state: the worker rejects it as
`KeyMismatch` (its key and bytes unchanged, reason headers) and goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from processors.engine.instants import parse_instant
from tests.kafka.pipeline import LivePipeline

pytestmark = [pytest.mark.kafka]

POLICY = (
    "default_tier: fast\n"
    "calendars: {always: {timezone: UTC, hours: 24x7}}\n"
    "tiers:\n"
    "  fast:\n"
    "    calendar: always\n"
    "    targets: {first_response: {urgent: 1m}}\n"
)
CREATED = "2026-03-02T09:00:00Z"
REPLY = "2026-03-02T09:00:30Z"  # inside the 1 min target, if it were applied
DEADLINE = "2026-03-02T09:01:00Z"
FINAL_CLOCK = parse_instant("2026-03-02T10:00:00Z")


def event(kind: str, ticket: str, at: str, event_id: str, **fields: object) -> bytes:
    body = {"event_id": event_id, "type": kind, "ticket_id": ticket, "occurred_at": at}
    return orjson.dumps({**body, **fields})


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    live = LivePipeline(
        kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy, partitions=2, manual_clock=True
    )
    yield live
    live.close()


def test_records_keyed_other_than_by_ticket_id_are_dead_lettered_as_key_mismatch(
    pipeline: LivePipeline,
) -> None:
    ticket = {"customer_id": "c1", "priority": "urgent"}
    good = event("ticket.created", "T-A", CREATED, "a1", **ticket)
    unkeyed = event("ticket.created", "T-B", CREATED, "b1", **ticket)
    other_key = event("ticket.created", "T-C", CREATED, "c1", **ticket)
    misrouted_reply = event("ticket.agent_replied", "T-A", REPLY, "a2")
    records: list[tuple[bytes | None, bytes]] = [
        (b"T-A", good),
        (None, unkeyed),
        (b"T-X", other_key),
        (b"T-B", misrouted_reply),
    ]
    pipeline.publish(records)
    worker = pipeline.start_worker()
    with pipeline.ticking(FINAL_CLOCK):
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0

    dead = pipeline.committed_dead_letters()
    found = {(d.key, d.value, d.error_class) for d in dead}
    assert len(dead) == 3 and found == {
        (None, unkeyed, "KeyMismatch"),
        (b"T-X", other_key, "KeyMismatch"),
        (b"T-B", misrouted_reply, "KeyMismatch"),
    }
    messages = {d.value: d.message for d in dead}
    assert "has no key" in messages[unkeyed] and "'T-B'" in messages[unkeyed]
    assert "'T-X'" in messages[other_key] and "key = ticket_id" in messages[other_key]

    outputs = pipeline.committed_outputs()
    assert {o["ticket_id"] for o in outputs} == {"T-A"}  # T-B and T-C were never created
    breach = [o for o in outputs if o["type"] == "sla.breach"]
    assert [(b["ticket_id"], b["at"]) for b in breach] == [("T-A", DEADLINE)]  # reply not applied
