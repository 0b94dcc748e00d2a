"""The live pipeline against a real broker, compared with `replay` of the same input.

The invariant of docs/semantics.md: Time: for a log in time order, the live outputs equal the replay outputs
of the same events with `--until` = the final clock. The test drives the clock itself
(`manual_clock`): every tick says FINAL_CLOCK, so once a partition has processed its
input its clock stops exactly there, after everything the workload decides. Then the
WHOLE committed content of every output topic and of the dead-letter topic is compared
with `slaclock replay --until FINAL_CLOCK`, as multisets of whole records: nothing
missing, nothing duplicated, nothing else.

The workload is a function of its seed and fixed start instants, never of the day the
test runs. (`run_to_now` and `assert_live_equals_replay` are the older, wall-clock method
with a cutoff a minute before the final clock, kept for tests of the workers' own ticks.)
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant
from slaclock.workload import WorkloadShape, ticket_events
from tests.kafka.pipeline import (
    LivePipeline,
    assert_whole_output_equals_replay,
    comparable,
    difference,
    output_counts,
    replay_outputs,
)

pytestmark = [pytest.mark.kafka]

CUSTOMERS = ("acme", "globex", "initech", "muster-gmbh", "walk-in")
MINUTE_US = 60 * US_PER_SECOND
BACKFILL_START = datetime(2026, 1, 5, 8, tzinfo=UTC)  # a Monday
RECENT_START = datetime(2026, 6, 1, 8, tzinfo=UTC)  # a Monday
FINAL_CLOCK = parse_instant("2026-07-01T12:00:00Z")
"""Past every instant the workloads decide (their last events are in mid-June)."""
POISON = (
    b"{this is not json",
    b'{"event_id":"p2","type":"ticket.created","ticket_id":"PX","occurred_at":"2026-03-02T09:00:00Z"}',
    b'{"event_id":"p3","type":"ticket.agent_replied","ticket_id":"T0000001","occurred_at":"2026-03-02T09:00:00"}',
    b'{"event_id":"p4","type":"ticket.customer_replied","ticket_id":"NOPE","occurred_at":"2026-03-02T09:00:00Z"}',
)
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
    live = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, manual_clock=True)
    yield live
    live.close()


def workload(
    tickets: int,
    seed: int,
    backfill_start: datetime = BACKFILL_START,
    recent_start: datetime = RECENT_START,
) -> list[bytes]:
    """A backfill from `backfill_start` plus a later, denser stretch, in time order.

    A function of the seed and the two fixed starts only (not of today's date).
    """
    old = WorkloadShape(tickets=tickets // 2, customers=CUSTOMERS, seed=seed)
    recent = WorkloadShape(
        tickets=tickets - tickets // 2,
        spread_seconds=8 * 86_400,
        mean_gap_seconds=2 * 3600.0,
        customers=CUSTOMERS,
        seed=seed + 1,
    )
    events = ticket_events(old, start=backfill_start) + ticket_events(
        recent, start=recent_start, id_prefix="R"
    )
    events.sort(key=lambda e: e["occurred_at"])
    return [orjson.dumps(e) for e in events]


def with_poison(lines: list[bytes], rng: random.Random, share: float = 0.01) -> list[bytes]:
    """`lines` with a share of bad records among them (each class of POISON in turn)."""
    mixed: list[bytes] = []
    bad = 0
    for line in lines:
        mixed.append(line)
        if rng.random() < share:
            mixed.append(POISON[bad % len(POISON)])
            bad += 1
    return mixed


def keyed(lines: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    records = []
    for line in lines:
        try:
            key = orjson.loads(line)["ticket_id"].encode()
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            key = None
        records.append((key, line))
    return records


def run_to_final_clock(pipeline: LivePipeline, *instances: str) -> None:
    """Start workers, tick to FINAL_CLOCK until it settles, stop them cleanly."""
    with pipeline.ticking(FINAL_CLOCK):
        workers = [pipeline.start_worker(i) for i in instances or ("w1",)]
        pipeline.settle(FINAL_CLOCK)
    for worker in workers:
        assert worker.stop() == 0, worker.log_tail()


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


def test_live_outputs_and_dead_letters_equal_replay_of_the_same_input(
    pipeline: LivePipeline,
) -> None:
    lines = with_poison(workload(1200, seed=11), random.Random(2), share=0.005)
    pipeline.publish(keyed(lines))
    run_to_final_clock(pipeline)
    outputs, dead = assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
    assert outputs.expected > 1000 and dead.expected >= 4
    counts = output_counts(pipeline.committed_outputs())
    assert {"sla.warning", "sla.breach", "sla.completed", "sla.credit"} <= set(counts), counts


@pytest.mark.slow
def test_sigkilled_worker_loses_and_duplicates_nothing(pipeline: LivePipeline) -> None:
    lines = with_poison(workload(2400, seed=23), random.Random(6), share=0.005)
    pipeline.publish(keyed(lines))
    # Small transactions in the workers to be killed: more commit boundaries to be killed
    # around, and a stream that lasts long enough for the kills to land in it.
    with pipeline.ticking(FINAL_CLOCK):
        worker, mid_stream = pipeline.kill_repeatedly(
            10, random.Random(5), pause=(1.5, 4.0), crash_env={"SLACLOCK_MAX_BATCH": "20"}
        )
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()
    assert mid_stream >= 6, f"only {mid_stream} of the kills came mid-stream"
    outputs, dead = assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
    print(f"random kills: 10, mid-stream {mid_stream}; outputs {outputs.live}, dead {dead.live}")


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
    mixed = with_poison(lines, random.Random(3))
    pipeline.publish(keyed(mixed))
    run_to_final_clock(pipeline)
    dead = pipeline.committed_dead_letters()
    bad = len(mixed) - len(lines)
    assert len(dead) == bad and bad >= 4
    assert sorted(d.value or b"" for d in dead) == sorted(m for m in mixed if m in POISON)
    classes = {d.error_class for d in dead}
    assert classes == {"InvalidJson", "SchemaViolation", "NaiveTimestamp", "UnknownTicket"}
    assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
    # the good records alone give the same outputs
    assert output_counts(pipeline.committed_outputs()) == output_counts(
        replay_outputs(pipeline.policy_path, lines, FINAL_CLOCK)
    )


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
    run_to_final_clock(pipeline)
    assert len(with_repeats) > len(lines)
    _, dead = assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
    assert dead.expected == 0
    assert sorted(orjson.dumps(o) for o in pipeline.committed_outputs()) == sorted(
        orjson.dumps(o) for o in replay_outputs(pipeline.policy_path, lines, FINAL_CLOCK)
    )


def tickets_assignment(admin: AdminClient, pipeline: LivePipeline) -> dict[str, set[int]]:
    """Stage 1's consumer group as the broker has it: member -> its input partitions."""
    group = f"{pipeline.names['app_id']}-tickets"
    description = admin.describe_consumer_groups([group])[group].result(10)
    topic = pipeline.settings.topic_events
    return {
        str(member.group_instance_id): {
            tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic
        }
        for member in description.members
    }


def wait_for_assignment(admin: AdminClient, pipeline: LivePipeline) -> dict[str, set[int]]:
    """Until the group has two members, each with some of the input partitions."""
    deadline = time.monotonic() + 90
    found: dict[str, set[int]] = {}
    while time.monotonic() < deadline:
        found = tickets_assignment(admin, pipeline)
        everything = set().union(*found.values()) == set(range(pipeline.partitions))
        if len(found) == 2 and all(found.values()) and everything:
            return found
        time.sleep(0.2)
    raise AssertionError(f"assignment {found}, waiting for two members")


def input_lag(pipeline: LivePipeline, partitions: set[int]) -> int:
    """Unprocessed input records of some partitions (stage 1's committed offsets)."""
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.bootstrap,
            "group.id": f"{pipeline.names['app_id']}-tickets",
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        topic = pipeline.settings.topic_events
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


@pytest.mark.slow
def test_partitions_move_to_the_other_worker_without_loss_or_duplication(
    pipeline: LivePipeline,
) -> None:
    """w1 and w2 share the first half of the input; w1 stops; the second half comes while
    w1's partitions have no live owner; the group then shows them move to w2 with that
    input still pending, and w2 carries on from w1's committed state."""
    lines = workload(1600, seed=53)
    half = len(lines) // 2
    pipeline.publish(keyed(lines[:half]))
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    everything = set(range(pipeline.partitions))
    first = pipeline.start_worker("w1")
    second = pipeline.start_worker("w2")
    moving = wait_for_assignment(admin, pipeline)["w1-tickets"]
    deadline = time.monotonic() + 120
    while input_lag(pipeline, everything) > 0:  # the first half done, by both workers
        assert time.monotonic() < deadline, first.log_tail() + second.log_tail()
        time.sleep(0.5)
    assert first.stop() == 0, first.log_tail()  # its partitions will move to w2
    pipeline.publish(keyed(lines[half:]))
    deadline = time.monotonic() + 90
    while True:
        lag = input_lag(pipeline, moving)  # measured before the move is seen
        if tickets_assignment(admin, pipeline) == {"w2-tickets": everything}:
            break
        assert time.monotonic() < deadline, "w1's partitions never moved to w2"
        time.sleep(0.2)
    assert lag > 0, "the moved partitions had no input left for w2"
    print(f"partitions {sorted(moving)} moved from w1 to w2 with {lag} records unprocessed")
    with pipeline.ticking(FINAL_CLOCK):  # only now: no input may come after the clock
        pipeline.settle(FINAL_CLOCK)
    assert second.stop() == 0, second.log_tail()
    assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
