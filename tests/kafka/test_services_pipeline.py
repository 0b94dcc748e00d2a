"""Tickets and services together on the real broker, across a month end, with SIGKILLs.

The example availability month (moved to October 2026 so no event is ahead of the wall
clock) and a ticket workload for the same customers are published together; the test drives
both clocks (tickets and services) to FINAL itself while a worker is killed and restarted.
Then the whole committed content of every output topic — ticket outputs, availability
outputs, credits under the shared monthly cap, statements — must equal the replay of the
same events, merged into one time-ordered file, up to FINAL.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer, TopicPartition

from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant
from slaclock.processors.live.records import KIND_WATERMARK, Tick, Watermark, header_value
from slaclock.workload import WorkloadShape, ticket_events
from tests.kafka.pipeline import GRACE_S, LivePipeline, difference, replay_outputs

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "services-policy.yaml"
SHIFT_US = 30 * 86_400 * US_PER_SECOND  # the November example, 30 days earlier
FINAL = parse_instant("2026-11-02T00:00:00Z")  # past October's end everywhere


def service_lines() -> list[bytes]:
    lines = []
    for raw in (ROOT / "examples" / "services-events.jsonl").read_bytes().splitlines():
        event = orjson.loads(raw)
        for name in ("occurred_at", "starts_at", "ends_at"):
            if name in event:
                event[name] = format_us(parse_instant(event[name]) - SHIFT_US)
        lines.append(orjson.dumps(event))
    return lines


def ticket_lines() -> list[bytes]:
    shape = WorkloadShape(
        tickets=120,
        spread_seconds=10 * 86_400,
        mean_gap_seconds=3 * 3600.0,
        customers=("acme", "globex", "walk-in"),
        seed=41,
    )
    events = ticket_events(shape, start=datetime(2026, 10, 21, 6, tzinfo=UTC))
    limit = FINAL - 2 * GRACE_S * US_PER_SECOND
    return [orjson.dumps(e) for e in events if parse_instant(e["occurred_at"]) < limit]


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    live = LivePipeline(
        kafka_bootstrap, topic_prefix, tmp_path, policy_path=POLICY, partitions=2, manual_clock=True
    )
    yield live
    live.close()


@contextlib.contextmanager
def services_ticking(pipeline: LivePipeline, clock: int, every: float = 0.5) -> Iterator[None]:
    """What `pipeline.ticking` does for tickets, for the services clock topic."""
    stop = threading.Event()
    settings = pipeline.settings

    def run() -> None:
        producer = Producer({"bootstrap.servers": pipeline.bootstrap, "linger.ms": 0})
        probe = pipeline._reader()
        try:
            while not stop.is_set():
                for partition in range(pipeline.partitions):
                    tp = TopicPartition(settings.topic_services, partition)
                    _, high = probe.get_watermark_offsets(tp, timeout=10, cached=False)
                    tick = Tick(clock + GRACE_S * US_PER_SECOND, high)
                    producer.produce(
                        settings.topic_services_clock, tick.encode(), partition=partition
                    )
                producer.flush(10)
                stop.wait(every)
        finally:
            probe.close()

    thread = threading.Thread(target=run, name="services-ticker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def all_clocks_at(pipeline: LivePipeline, clock: int) -> bool:
    """Every ticket and every services partition told the ledger it reached `clock`."""
    reached = set()
    for message in pipeline.topic_records([pipeline.settings.topic_ledger_input]):
        if header_value(message.headers(), "kind") == KIND_WATERMARK:
            mark = Watermark.decode(message.value())
            if mark.clock >= clock:
                reached.add(mark.source_id)
    wanted = {f"{source}/{p}" for source in ("tickets", "services") for p in range(2)}
    return wanted <= reached


def outputs(pipeline: LivePipeline) -> list[dict[str, Any]]:
    topics = [t for t in pipeline.output_topics() if t != pipeline.settings.topic_services]
    return [orjson.loads(m.value()) for m in pipeline.topic_records(topics)]


def canonical(records: list[dict[str, Any]]) -> Counter[bytes]:
    return Counter(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


@pytest.mark.slow
def test_tickets_and_services_across_a_month_end_with_sigkills_equal_replay(
    pipeline: LivePipeline,
) -> None:
    services, tickets = service_lines(), ticket_lines()
    merged = sorted([*services, *tickets], key=lambda line: orjson.loads(line)["occurred_at"])
    pipeline.publish((orjson.loads(t)["ticket_id"].encode(), t) for t in tickets)
    producer = Producer({"bootstrap.servers": pipeline.bootstrap, "partitioner": "murmur2_random"})
    for line in services:
        key = orjson.loads(line)["service_id"].encode()
        producer.produce(pipeline.settings.topic_services, line, key=key)
    producer.flush(10)

    pipeline.extra_env["SLACLOCK_MAX_BATCH"] = "20"  # more commits to be killed around
    # October 2026 is never "ahead of the worker's clock", whatever day the test runs
    pipeline.extra_env["SLACLOCK_MAX_FUTURE_SKEW"] = str(20 * 365 * 86_400)
    with pipeline.ticking(FINAL), services_ticking(pipeline, FINAL):
        worker, _ = pipeline.kill_repeatedly(4, random.Random(13), pause=(1.0, 3.0))
        rounds = 360
        while not all_clocks_at(pipeline, FINAL) and rounds:
            rounds -= 1
            threading.Event().wait(0.5)
        assert rounds, f"the clocks did not reach FINAL\n{worker.log_tail()}"
        pipeline.settle(FINAL)  # and the ledger took in every record sent to it
    assert worker.stop() == 0, worker.log_tail()

    live = canonical(outputs(pipeline))
    expected = canonical(replay_outputs(POLICY, merged, FINAL))
    assert live == expected, difference(live, expected)
    kinds = Counter(orjson.loads(r)["type"] for r in expected.elements())
    assert kinds["sla.availability_report"] == 2 and kinds["sla.statement"] >= 2, kinds
    credits = [orjson.loads(r) for r in expected.elements() if b'"availability"' in r]
    assert credits and {c["customer_id"] for c in credits} == {"acme", "globex"}
