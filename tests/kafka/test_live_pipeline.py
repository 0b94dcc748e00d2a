"""The live pipeline against a real broker, compared with `replay` of the same input.

SPEC 7's invariant: for a log in time order, the live outputs equal the replay outputs
of the same events with `--until` = the final clock. Compared as multisets of whole
output events (ids and content), for everything decided before a cutoff a minute
before the final clock (later instants may not have reached every partition yet).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from processors.engine.instants import US_PER_SECOND, format_us
from slaclock.workload import WorkloadShape, ticket_events
from tests.kafka.pipeline import LivePipeline, comparable, difference, replay_outputs

pytestmark = [pytest.mark.kafka]

CUSTOMERS = ("acme", "globex", "initech", "muster-gmbh", "walk-in")
MINUTE_US = 60 * US_PER_SECOND
SHORT_POLICY = (
    "default_tier: fast\n"
    "calendars: {always: {timezone: UTC, hours: 24x7}}\n"
    "tiers:\n"
    "  fast:\n"
    "    calendar: always\n"
    "    targets: {first_response: {urgent: 8s}}\n"
)


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    live = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path)
    yield live
    live.close()


def workload(tickets: int, seed: int) -> list[bytes]:
    """A backfill from January plus a recent stretch, merged in time order."""
    old = WorkloadShape(
        tickets=tickets // 2,
        start=datetime(2026, 1, 5, 8, tzinfo=UTC),
        customers=CUSTOMERS,
        seed=seed,
    )
    recent = WorkloadShape(
        tickets=tickets - tickets // 2,
        start=datetime.now(UTC) - timedelta(days=10),
        spread_seconds=8 * 86_400,
        mean_gap_seconds=2 * 3600.0,
        customers=CUSTOMERS,
        seed=seed + 1,
    )
    events = ticket_events(old) + [
        {**e, "ticket_id": "R" + e["ticket_id"], "event_id": "R" + e["event_id"]}
        for e in ticket_events(recent)
    ]
    events.sort(key=lambda e: e["occurred_at"])
    return [orjson.dumps(e) for e in events]


def keyed(lines: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    records = []
    for line in lines:
        try:
            key = orjson.loads(line)["ticket_id"].encode()
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            key = None
        records.append((key, line))
    return records


def run_to_now(pipeline: LivePipeline) -> int:
    """Wait until every partition's clock has passed the test's start, return the clock."""
    started = int(time.time() * US_PER_SECOND)
    return pipeline.wait_for_clock(started - 5 * US_PER_SECOND, timeout=180)


def assert_live_equals_replay(pipeline: LivePipeline, lines: list[bytes], clock: int) -> None:
    cutoff = clock - MINUTE_US
    expected = comparable(replay_outputs(pipeline.policy_path, lines, clock), cutoff)
    live = comparable(pipeline.outputs(), cutoff)
    assert sum(expected.values()) > 100, "the workload should produce plenty of outputs"
    assert live == expected, difference(live, expected)


def test_live_outputs_equal_replay_of_the_same_events(pipeline: LivePipeline) -> None:
    lines = workload(1200, seed=11)
    pipeline.publish(keyed(lines))
    worker = pipeline.start_worker()
    clock = run_to_now(pipeline)
    assert worker.stop() == 0, worker.log_tail()
    assert_live_equals_replay(pipeline, lines, clock)


@pytest.mark.slow
def test_sigkilled_worker_loses_and_duplicates_nothing(pipeline: LivePipeline) -> None:
    lines = workload(2400, seed=23)
    pipeline.publish(keyed(lines))
    # Small transactions: more commit boundaries to be killed around, and a stream that
    # lasts long enough for the kills to land in it.
    pipeline.extra_env["SLACLOCK_MAX_BATCH"] = "20"
    worker, mid_stream = pipeline.kill_repeatedly(10, random.Random(5))
    clock = run_to_now(pipeline)
    assert worker.stop() == 0, worker.log_tail()
    assert mid_stream >= 5, f"only {mid_stream} of the kills hit unprocessed input"
    assert_live_equals_replay(pipeline, lines, clock)


@pytest.mark.slow
def test_breach_due_while_worker_is_down_is_emitted_after_restart(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    policy = tmp_path / "short.yaml"
    policy.write_text(SHORT_POLICY)
    pipeline = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy)
    try:
        worker = pipeline.start_worker()
        pipeline.wait_for_clock(int(time.time() * US_PER_SECOND) - 5 * US_PER_SECOND)
        created_at = int(time.time() * US_PER_SECOND)
        event = {
            "event_id": "e1",
            "type": "ticket.created",
            "ticket_id": "T-down",
            "occurred_at": format_us(created_at),
            "customer_id": "c1",
            "priority": "urgent",
        }
        pipeline.publish([(b"T-down", orjson.dumps(event))])
        time.sleep(2)
        worker.kill()  # down before the deadline (created + 8 s)
        time.sleep(10)
        assert [o for o in pipeline.outputs() if o["type"] == "sla.breach"] == []
        worker = pipeline.start_worker()
        pipeline.wait_for_clock(created_at + 9 * US_PER_SECOND)
        worker.stop()
        breaches = [o for o in pipeline.outputs() if o["type"] == "sla.breach"]
        assert [(b["ticket_id"], b["at"]) for b in breaches] == [
            ("T-down", format_us(created_at + 8 * US_PER_SECOND))
        ]
    finally:
        pipeline.close()


@pytest.mark.slow
def test_timers_follow_wall_time_after_input_from_a_transactional_publisher(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A transaction's commit marker takes an offset no consumer sees: still caught up."""
    policy = tmp_path / "short.yaml"
    policy.write_text(SHORT_POLICY)
    pipeline = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy)
    try:
        worker = pipeline.start_worker()
        pipeline.wait_for_clock(int(time.time() * US_PER_SECOND) - 5 * US_PER_SECOND)
        created_at = int(time.time() * US_PER_SECOND)
        event = {
            "event_id": "e1",
            "type": "ticket.created",
            "ticket_id": "T-tx",
            "occurred_at": format_us(created_at),
            "customer_id": "c1",
            "priority": "urgent",
        }
        producer = Producer(
            {"bootstrap.servers": kafka_bootstrap, "transactional.id": topic_prefix}
        )
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(pipeline.settings.topic_events, orjson.dumps(event), key=b"T-tx")
        producer.commit_transaction(30)
        pipeline.wait_for_clock(created_at + 9 * US_PER_SECOND, timeout=60)
        assert worker.stop() == 0, worker.log_tail()
        breaches = [o for o in pipeline.outputs() if o["type"] == "sla.breach"]
        assert [(b["ticket_id"], b["at"]) for b in breaches] == [
            ("T-tx", format_us(created_at + 8 * US_PER_SECOND))
        ]
    finally:
        pipeline.close()


@pytest.mark.slow
def test_poison_pills_go_to_dead_letter_once_and_good_records_are_unaffected(
    pipeline: LivePipeline,
) -> None:
    lines = workload(800, seed=31)
    rng = random.Random(3)
    poison = [
        b"{this is not json",
        b'{"event_id":"p2","type":"ticket.created","ticket_id":"PX","occurred_at":"2026-03-02T09:00:00Z"}',
        b'{"event_id":"p3","type":"ticket.agent_replied","ticket_id":"T0000001","occurred_at":"2026-03-02T09:00:00"}',
        b'{"event_id":"p4","type":"ticket.customer_replied","ticket_id":"NOPE","occurred_at":"2026-03-02T09:00:00Z"}',
    ]
    mixed: list[bytes] = []
    bad = 0
    for line in lines:
        mixed.append(line)
        if rng.random() < 0.01:
            mixed.append(poison[bad % len(poison)])
            bad += 1
    pipeline.publish(keyed(mixed))
    worker = pipeline.start_worker()
    clock = run_to_now(pipeline)
    assert worker.stop() == 0, worker.log_tail()
    dead = pipeline.dead_letters()
    assert len(dead) == bad and bad >= 4
    assert sorted(value for _, value, _ in dead) == sorted(line for line in mixed if line in poison)
    for _, _, headers in dead:
        assert {
            "error_class",
            "error_message",
            "source_topic",
            "source_partition",
            "source_offset",
        } <= set(headers)
    classes = {headers["error_class"] for _, _, headers in dead}
    assert classes == {b"InvalidJson", b"SchemaViolation", b"NaiveTimestamp", b"UnknownTicket"}
    assert_live_equals_replay(pipeline, lines, clock)


@pytest.mark.slow
def test_republished_events_change_nothing(pipeline: LivePipeline) -> None:
    lines = workload(800, seed=41)
    rng = random.Random(4)
    with_repeats: list[bytes] = []
    for line in lines:
        with_repeats.append(line)
        if rng.random() < 0.05:
            with_repeats.append(line)
    pipeline.publish(keyed(with_repeats))
    worker = pipeline.start_worker()
    clock = run_to_now(pipeline)
    assert worker.stop() == 0, worker.log_tail()
    assert len(with_repeats) > len(lines)
    assert_live_equals_replay(pipeline, lines, clock)


@pytest.mark.slow
def test_partitions_move_to_the_other_worker_without_loss_or_duplication(
    pipeline: LivePipeline,
) -> None:
    lines = workload(1600, seed=53)
    pipeline.publish(keyed(lines))
    first = pipeline.start_worker("w1")
    second = pipeline.start_worker("w2")
    time.sleep(6)
    assert first.stop() == 0, first.log_tail()  # its partitions move to w2
    clock = run_to_now(pipeline)
    assert second.stop() == 0, second.log_tail()
    assert "assigned tasks" in second.log_path.read_text()
    assert_live_equals_replay(pipeline, lines, clock)
