"""Kafka pipeline throughput: one slaclock worker vs a plain consume->produce loop.

    .venv/bin/python benchmarks/pipeline_bench.py --tickets 12000 [--bootstrap HOST:PORT]

Pre-loads the events into `tickets.events` (4 partitions), then measures, in the same run
and on the same broker: (1) a slaclock worker (exactly-once) from start until its consumer
group has committed every input record; (2) a plain confluent-kafka loop that copies the
same records to an output topic with no logic, with and without transactions (same batch
size and commit cadence as the worker's loop). Without --bootstrap a local broker is
started on free ports and stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slaclock.local_kafka import LocalKafka  # noqa: E402
from slaclock.workload import WorkloadShape, ticket_events  # noqa: E402
from tests.kafka.pipeline import LivePipeline  # noqa: E402

CUSTOMERS = ("acme", "globex", "initech", "muster-gmbh", "walk-in")


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalKafka.on_free_ports(Path(tmp), die_with_parent=True)
        try:
            yield local.up(timeout=180)
        finally:
            local.down()


def wait_caught_up(pipeline: LivePipeline, total: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipeline.unprocessed_input() == 0:
            return time.monotonic()
        time.sleep(0.25)
    raise TimeoutError(f"worker did not catch up on {total} events in {timeout}s")


def plain_loop(
    bootstrap: str, source: str, partitions: int, total: int, transactional: bool
) -> float:
    """Copy `total` records from `source` to a fresh topic; events/s."""
    sink = f"{source}.copy-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(sink, partitions, 1)]).values():
        future.result(30)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"plain-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "enable.idempotence": True,
    }
    if transactional:
        config["transactional.id"] = f"plain-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    if transactional:
        producer.init_transactions(30)
    consumer.subscribe([source])
    copied = 0
    started: float | None = None
    while copied < total:
        messages = [m for m in consumer.consume(1000, timeout=0.1) if m.error() is None]
        if not messages:
            continue
        if started is None:
            started = time.monotonic()
        if transactional:
            producer.begin_transaction()
        for m in messages:
            while True:
                try:
                    producer.produce(sink, m.value(), key=m.key())
                    break
                except BufferError:
                    producer.poll(0.05)
        offsets: dict[int, int] = {}
        for m in messages:
            offsets[m.partition()] = max(offsets.get(m.partition(), -1), m.offset())
        tps = [TopicPartition(source, p, o + 1) for p, o in offsets.items()]
        if transactional:
            producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            consumer.commit(offsets=tps, asynchronous=False)
        copied += len(messages)
    elapsed = time.monotonic() - (started or time.monotonic())
    consumer.close()
    return copied / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=12_000)
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    events = ticket_events(WorkloadShape(tickets=args.tickets, customers=CUSTOMERS, seed=3))
    records = [(e["ticket_id"].encode(), orjson.dumps(e)) for e in events]
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        pipeline = LivePipeline(bootstrap, f"b{uuid.uuid4().hex[:6]}.", Path(tmp))
        try:
            t = time.monotonic()
            pipeline.publish(records)
            print(f"pre-loaded {len(records)} events in {time.monotonic() - t:.1f}s")
            start = time.monotonic()
            worker = pipeline.start_worker()
            done = wait_caught_up(pipeline, len(records), timeout=1800)
            worker.stop()
            worker_eps = len(records) / (done - start)
            print(
                f"slaclock worker (exactly-once, incl. ~2 s start-up): {worker_eps:,.0f} events/s"
            )
            source = pipeline.settings.topic_events
            for transactional in (True, False):
                eps = plain_loop(
                    bootstrap, source, pipeline.partitions, len(records), transactional
                )
                label = "transactional" if transactional else "at-least-once"
                print(
                    f"plain consume->produce loop ({label}): {eps:,.0f} events/s; "
                    f"worker / plain = {worker_eps / eps:.0%}"
                )
        finally:
            pipeline.close()


if __name__ == "__main__":
    main()
