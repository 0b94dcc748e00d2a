"""`slaclock services ingest-statuspage --publish` puts the events on the services topic."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from typer.testing import CliRunner

from slaclock.cli import app
from tests.conftest import CreateTopics
from tests.unit.test_statuspage import COMPONENT_UPDATE, SCHEDULED_MAINTENANCE

pytestmark = pytest.mark.kafka


def test_published_events_are_keyed_by_service_on_the_services_topic(
    kafka_bootstrap: str,
    topic_prefix: str,
    create_topics: CreateTopics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = f"{topic_prefix}services.events"
    create_topics(topic, partitions=1)
    monkeypatch.setenv("SLACLOCK_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("SLACLOCK_TOPIC_SERVICES", topic)
    payloads = tmp_path / "webhooks.jsonl"
    payloads.write_bytes(
        orjson.dumps(SCHEDULED_MAINTENANCE) + b"\n" + orjson.dumps(COMPONENT_UPDATE)
    )
    result = CliRunner().invoke(
        app,
        ["services", "ingest-statuspage", str(payloads), "-c", "sqm6pl84wzjc=portal", "--publish"],
    )
    assert result.exit_code == 0, result.output
    assert f"published 2 events to {topic}" in result.output

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{topic_prefix}reader",
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        records = []
        while True:
            message = consumer.poll(10)
            assert message is not None, "timed out reading the services topic"
            error = message.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                break
            records.append((message.key(), orjson.loads(message.value())))
    finally:
        consumer.close()
    assert [(key, event["type"]) for key, event in records] == [
        (b"portal", "maintenance.scheduled"),
        (b"portal", "service.status_changed"),
    ]
