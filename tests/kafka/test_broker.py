"""The session broker does what the rest of the project relies on, with both clients:
topics with the partitions asked for, keyed produce/consume, and transactions whose
aborted records a `read_committed` consumer never sees.

Each transactional test ends with a committed sentinel after the aborted transaction, so
"the consumer read up to the sentinel" proves it read past the aborted records; a
`read_uncommitted` consumer then shows those records really are in the log.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.kafka

TIMEOUT = 30.0
COMMITTED = [b"committed-0", b"committed-1", b"committed-2"]
ABORTED = [b"aborted-0", b"aborted-1"]
SENTINEL = b"sentinel"

Record = tuple[bytes | None, bytes]
CreateTopics = Callable[..., list[str]]  # the `create_topics` fixture of tests/conftest.py
Done = Callable[[list[Record]], bool]


def ends_with(last: bytes) -> Done:
    """For one partition: everything before `last` has been read once `last` is."""
    return lambda records: records[-1][1] == last


def count_reaches(count: int) -> Done:
    return lambda records: len(records) >= count


def consume(bootstrap: str, topic: str, group: str, isolation: str, done: Done) -> list[Record]:
    """Read `topic` from the start with confluent-kafka until `done(records)`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    records: list[Record] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value = message.value()
            assert value is not None
            records.append((message.key(), value))
            if done(records):
                return records
    finally:
        consumer.close()
    pytest.fail(f"{topic} not read to the end within {TIMEOUT} s; read {records}")


async def aio_consume(
    bootstrap: str, topic: str, group: str, isolation: str, done: Done
) -> list[Record]:
    """Read `topic` from the start with aiokafka until `done(records)`."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    records: list[Record] = []
    await consumer.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                for message in batch:
                    assert message.value is not None
                    records.append((message.key, message.value))
                    if done(records):
                        return records
    finally:
        await consumer.stop()
    pytest.fail(f"{topic} not read to the end within {TIMEOUT} s; read {records}")


def values(records: list[Record]) -> list[bytes]:
    return [value for _, value in records]


def by_key(records: list[Record]) -> dict[bytes | None, list[bytes]]:
    grouped: dict[bytes | None, list[bytes]] = defaultdict(list)
    for key, value in records:
        grouped[key].append(value)
    return dict(grouped)


def keyed_events(count: int = 20) -> list[Record]:
    return [(f"ticket-{i % 4}".encode(), f"event-{i}".encode()) for i in range(count)]


def test_create_topics_gives_the_requested_partition_count(
    admin: AdminClient, create_topics: CreateTopics, topic_prefix: str
) -> None:
    one, three = create_topics([f"{topic_prefix}one"], partitions=1) + create_topics(
        [f"{topic_prefix}three"], partitions=3
    )

    topics = admin.list_topics(timeout=TIMEOUT).topics

    assert len(topics[one].partitions) == 1
    assert len(topics[three].partitions) == 3


def test_confluent_records_arrive_with_per_key_order_kept(
    kafka_bootstrap: str, create_topics: CreateTopics, topic_prefix: str, group_id: str
) -> None:
    (topic,) = create_topics(f"{topic_prefix}events", partitions=3)
    sent = keyed_events()
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(TIMEOUT) == 0

    received = consume(kafka_bootstrap, topic, group_id, "read_committed", count_reaches(len(sent)))

    # Partitions interleave; each key's records keep their order.
    assert by_key(received) == by_key(sent)


def test_aiokafka_records_arrive_with_per_key_order_kept(
    kafka_bootstrap: str, create_topics: CreateTopics, topic_prefix: str, group_id: str
) -> None:
    (topic,) = create_topics(f"{topic_prefix}events", partitions=3)
    sent = keyed_events()

    async def scenario() -> list[Record]:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for key, value in sent:
                await producer.send_and_wait(topic, value=value, key=key)
        finally:
            await producer.stop()
        return await aio_consume(
            kafka_bootstrap, topic, group_id, "read_committed", count_reaches(len(sent))
        )

    received = asyncio.run(scenario())

    assert by_key(received) == by_key(sent)


def test_confluent_transactions_show_committed_records_and_hide_aborted_ones(
    kafka_bootstrap: str, create_topics: CreateTopics, topic_prefix: str, group_id: str
) -> None:
    (topic,) = create_topics(f"{topic_prefix}outputs", partitions=1)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic_prefix}tx"}
    )
    producer.init_transactions(TIMEOUT)

    producer.begin_transaction()
    for value in COMMITTED:
        producer.produce(topic, key=b"k", value=value)
    producer.commit_transaction(TIMEOUT)

    producer.begin_transaction()
    for value in ABORTED:
        producer.produce(topic, key=b"k", value=value)
    assert producer.flush(TIMEOUT) == 0  # on the broker, not just queued, before the abort
    producer.abort_transaction(TIMEOUT)

    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=SENTINEL)
    producer.commit_transaction(TIMEOUT)

    committed = consume(
        kafka_bootstrap, topic, f"{group_id}-rc", "read_committed", ends_with(SENTINEL)
    )
    everything = consume(
        kafka_bootstrap, topic, f"{group_id}-ru", "read_uncommitted", ends_with(SENTINEL)
    )

    assert values(committed) == [*COMMITTED, SENTINEL]
    assert values(everything) == [*COMMITTED, *ABORTED, SENTINEL]


def test_aiokafka_transactions_show_committed_records_and_hide_aborted_ones(
    kafka_bootstrap: str, create_topics: CreateTopics, topic_prefix: str, group_id: str
) -> None:
    (topic,) = create_topics(f"{topic_prefix}outputs", partitions=1)

    async def scenario() -> tuple[list[Record], list[Record]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"{topic_prefix}tx"
        )
        await producer.start()
        try:
            async with producer.transaction():
                for value in COMMITTED:
                    await producer.send(topic, value=value, key=b"k")

            await producer.begin_transaction()
            for value in ABORTED:
                # send_and_wait: on the broker, not just batched, before the abort
                await producer.send_and_wait(topic, value=value, key=b"k")
            await producer.abort_transaction()

            async with producer.transaction():
                await producer.send(topic, value=SENTINEL, key=b"k")
        finally:
            await producer.stop()
        committed = await aio_consume(
            kafka_bootstrap, topic, f"{group_id}-rc", "read_committed", ends_with(SENTINEL)
        )
        everything = await aio_consume(
            kafka_bootstrap, topic, f"{group_id}-ru", "read_uncommitted", ends_with(SENTINEL)
        )
        return committed, everything

    committed, everything = asyncio.run(scenario())

    assert values(committed) == [*COMMITTED, SENTINEL]
    assert values(everything) == [*COMMITTED, *ABORTED, SENTINEL]
