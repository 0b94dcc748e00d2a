"""Input records keyed other than by their ticket id go to the dead-letter topic; tickets
that get no SLA and late events are counted for Prometheus.

A record whose key is missing or differs from its `ticket_id` would be applied in whatever
partition the key chose, away from the ticket's state: the worker rejects it as
`KeyMismatch` (its key and bytes unchanged, reason headers) and goes on.
"""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from slaclock.processors.engine.instants import parse_instant
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
def port() -> int:
    """A free local port for the worker's HTTP server (/metrics)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def pipeline(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, port: int
) -> Iterator[LivePipeline]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    live = LivePipeline(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        policy_path=policy,
        partitions=1,  # one partition clock: the late event is late against T-A's creation
        manual_clock=True,
        extra_env={"SLACLOCK_HTTP_PORT": str(port), "SLACLOCK_HTTP_HOST": "127.0.0.1"},
    )
    yield live
    live.close()


def test_records_keyed_other_than_by_ticket_id_are_dead_lettered_as_key_mismatch(
    pipeline: LivePipeline, port: int
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
        samples = scrape(port)
    assert worker.stop() == 0
    assert samples['slaclock_rejected_total{reason="KeyMismatch"}'] == 3

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


def scrape(port: int) -> dict[str, float]:
    """The worker's Prometheus samples: `name{labels}` -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        found = re.match(r"^(slaclock_[^ ]+) ([0-9.e+-]+)$", line)
        if found:
            samples[found.group(1)] = float(found.group(2))
    return samples


def test_untracked_tickets_and_late_events_are_counted_and_the_first_is_logged(
    pipeline: LivePipeline, port: int
) -> None:
    ticket = {"customer_id": "c1", "priority": "urgent"}
    # `fast` (the default tier; no contracts) has a target for urgent only
    untracked = {"customer_id": "walk-in", "priority": "low"}
    records: list[tuple[bytes | None, bytes]] = [
        (b"T-A", event("ticket.created", "T-A", CREATED, "a1", **ticket)),
        (b"T-U1", event("ticket.created", "T-U1", REPLY, "u1", **untracked)),
        (b"T-U2", event("ticket.created", "T-U2", REPLY, "u2", **untracked)),
        # an hour older than the partition clock: applied as of the clock, counted late
        (b"T-L", event("ticket.created", "T-L", "2026-03-02T08:00:00Z", "l1", **ticket)),
    ]
    pipeline.publish(records)
    worker = pipeline.start_worker()
    with pipeline.ticking(FINAL_CLOCK):
        pipeline.settle(FINAL_CLOCK)
        samples = scrape(port)
    assert worker.stop() == 0
    assert samples['slaclock_untracked_tickets_total{reason="no_contract"}'] == 2
    assert samples["slaclock_late_events_total"] == 1
    log = worker.log_path.read_text(errors="replace")
    assert log.count("gets no SLA") == 1  # the first per customer only
    assert "'walk-in'" in log and "no_contract" in log
