"""Kafka from the host side of the compose stack: publish input, read committed outputs."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from slaclock.client.librdkafka_log import LIBRDKAFKA_LOG
from slaclock.processors.settings import Settings
from tests.kafka.pipeline import NOT_OUTPUT_TOPICS, TOPIC_SETTINGS, DeadLetter

EVENTS_TOPIC = str(Settings.model_fields["topic_events"].default)
DLQ_TOPIC = str(Settings.model_fields["topic_dlq"].default)
OUTPUT_TOPICS = [
    str(Settings.model_fields[name].default)
    for name in TOPIC_SETTINGS
    if name not in NOT_OUTPUT_TOPICS
    and not str(Settings.model_fields[name].default).endswith(".events")
]
"""The output topics under their default names (docker-compose.yml sets no topic names)."""


def keyed(lines: Iterable[bytes]) -> list[tuple[bytes | None, bytes]]:
    """Each line keyed by its ticket_id, as a publisher does; unparsable lines unkeyed."""
    records: list[tuple[bytes | None, bytes]] = []
    for line in lines:
        try:
            key: bytes | None = orjson.loads(line)["ticket_id"].encode()
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            key = None
        records.append((key, line))
    return records


def publish(bootstrap: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = Producer(
        {
            "logger": LIBRDKAFKA_LOG,
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",  # the Java client's partitioner, as slaclock's
        }
    )
    count = 0
    for key, value in records:
        producer.produce(EVENTS_TOPIC, value, key=key)
        count += 1
    assert producer.flush(60) == 0, "not every record was acknowledged"
    return count


def read_committed(bootstrap: str, topics: Iterable[str], timeout: float = 60) -> list[Any]:
    """Every committed record of `topics` up to their last stable offsets now."""
    consumer = Consumer(
        {
            "logger": LIBRDKAFKA_LOG,
            "bootstrap.servers": bootstrap,
            "group.id": f"containers-reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    messages: list[Any] = []
    try:
        assignment = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        consumer.assign(assignment)
        pending = {(tp.topic, tp.partition) for tp in assignment}
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"partitions not read to the end: {pending}"
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard((message.topic(), message.partition()))
                continue
            messages.append(message)
    finally:
        consumer.close()
    return messages


def committed_outputs(bootstrap: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.value()) for m in read_committed(bootstrap, OUTPUT_TOPICS)]


def committed_dead_letters(bootstrap: str) -> list[DeadLetter]:
    return [DeadLetter.of(m, EVENTS_TOPIC) for m in read_committed(bootstrap, [DLQ_TOPIC])]


def topic_partitions(bootstrap: str) -> dict[str, int]:
    consumer = Consumer({"logger": LIBRDKAFKA_LOG, "bootstrap.servers": bootstrap, "group.id": "x"})
    try:
        topics = consumer.list_topics(timeout=10).topics
        return {name: len(t.partitions) for name, t in topics.items() if not name.startswith("__")}
    finally:
        consumer.close()
