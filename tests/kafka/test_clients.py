"""Kafka clients against the session broker: topic creation, the validating publisher, the
read_committed subscriber, and the `topics create` / `publish` / `tail` commands.

Every test names its topics and app id after its own `topic_prefix`, so tests never see
each other's records.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource
from typer.testing import CliRunner

from slaclock.cli_live import live_app_commands
from slaclock.client.publisher import TicketEventPublisher
from slaclock.client.subscriber import OutputSubscriber, SubscriberError, collect
from slaclock.processors.live.http import partition_for
from slaclock.processors.settings import Settings, load_settings
from slaclock.processors.topics import TopicError, ensure_topics, topic_specs
from slaclock.schemas.outputs import SlaBreach, SlaCompleted, SlaCredit, SlaWarning
from slaclock.schemas.rejection import Rejected

pytestmark = pytest.mark.kafka

TIMEOUT = 20.0
PARTITIONS = 2

Record = tuple[str, int, bytes | None, bytes]  # topic, partition, key, value
CreateTopics = Callable[..., list[str]]  # the `create_topics` fixture of tests/conftest.py


def make_settings(bootstrap: str, prefix: str, partitions: int = PARTITIONS) -> Settings:
    """Settings whose every topic, internal ones included, starts with `prefix`."""
    defaults = Settings.model_fields
    topics = {
        name: prefix + str(field.default)
        for name, field in defaults.items()
        if name.startswith("topic_")
    }
    return load_settings(
        _env_file=None,  # not the developer's .env
        bootstrap_servers=bootstrap,
        app_id=prefix + "app",
        partitions=partitions,
        **topics,
    )


def env_of(settings: Settings) -> dict[str, str]:
    """The SLACLOCK_* environment that yields `settings` (for the CLI)."""
    fields = ["bootstrap_servers", "app_id", "partitions"]
    fields += [name for name in Settings.model_fields if name.startswith("topic_")]
    return {f"SLACLOCK_{name.upper()}": str(getattr(settings, name)) for name in fields}


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return make_settings(kafka_bootstrap, topic_prefix)


@pytest.fixture
def drop_topics(admin: AdminClient, settings: Settings) -> Iterator[None]:
    """Delete every topic of `settings` when the test ends (best effort)."""
    yield
    names = [spec.name for spec in topic_specs(settings)]
    for future in admin.delete_topics(names, operation_timeout=10).values():
        with contextlib.suppress(KafkaException):
            future.result(15)


@pytest.fixture
def topics(settings: Settings, admin: AdminClient, drop_topics: None) -> Settings:
    """`settings` with all of its topics created."""
    ensure_topics(settings, admin)
    return settings


def event(ticket: str, n: int, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"{ticket}-ev-{n}",
        "ticket_id": ticket,
        "occurred_at": f"2026-03-02T09:{n:02d}:00Z",
    }
    if n == 0:
        base |= {"type": "ticket.created", "customer_id": "acme", "priority": "high"}
    else:
        base |= {"type": "ticket.agent_replied"}
    return base | fields


def read_all(
    bootstrap: str, topics: list[str], count: int, isolation: str = "read_committed"
) -> list[Record]:
    """Read `topics` from the beginning until `count` records arrived (or TIMEOUT)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=TIMEOUT)
        consumer.assign(
            [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for topic in topics
                for partition in metadata.topics[topic].partitions
            ]
        )
        records: list[Record] = []
        deadline = time.monotonic() + TIMEOUT
        while len(records) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                records.append(
                    (message.topic(), message.partition(), message.key(), message.value())  # type: ignore[arg-type]
                )
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        partitions = consumer.list_topics(topic, timeout=TIMEOUT).topics[topic].partitions
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)[1]
            for p in sorted(partitions)
        ]
    finally:
        consumer.close()


def cli() -> typer.Typer:
    app = typer.Typer()
    live_app_commands(app)
    return app


# -- topics ----------------------------------------------------------------------------------


def test_ensure_topics_creates_every_topic_with_its_partitions_and_cleanup_policy(
    kafka_bootstrap: str, topic_prefix: str, admin: AdminClient, drop_topics: None
) -> None:
    settings = make_settings(kafka_bootstrap, topic_prefix, partitions=3)
    created = ensure_topics(settings, admin)
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert sorted(created) == sorted(specs)
    assert {
        settings.topic_events,
        settings.topic_clock,
        settings.topic_ticket_changelog,
        settings.topic_ledger_input,
        settings.topic_ledger_changelog,
        settings.topic_contracts,
        settings.topic_warnings,
        settings.topic_breaches,
        settings.topic_completions,
        settings.topic_credits,
        settings.topic_statements,
        settings.topic_dlq,
        settings.topic_services,
        settings.topic_services_clock,
        settings.topic_services_changelog,
        settings.topic_availability,
        settings.topic_policies,
    } == set(specs)

    metadata = admin.list_topics(timeout=TIMEOUT)
    # policy versions are one totally ordered history: one partition, whatever the setting
    assert {name: len(metadata.topics[name].partitions) for name in specs} == {
        **dict.fromkeys(specs, 3),
        settings.topic_policies: 1,
    }
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in specs]
    policies = {}
    for resource, future in admin.describe_configs(resources).items():
        config = future.result(TIMEOUT)
        policies[resource.name] = config["cleanup.policy"].value
        if resource.name == settings.topic_clock:
            assert config["retention.ms"].value == str(24 * 3600 * 1000)
    compacted = {
        settings.topic_ticket_changelog,
        settings.topic_ledger_changelog,
        settings.topic_services_changelog,
        settings.topic_contracts,
        settings.topic_policies,
    }
    assert {name for name, policy in policies.items() if policy == "compact"} == compacted

    assert ensure_topics(settings, admin) == []  # idempotent


def test_ensure_topics_refuses_an_input_topic_with_another_partition_count_and_creates_nothing(
    settings: Settings, admin: AdminClient, create_topics: CreateTopics
) -> None:
    create_topics(settings.topic_events, partitions=PARTITIONS + 1)
    with pytest.raises(TopicError, match=r"has 3 partitions, 2 required") as caught:
        ensure_topics(settings, admin)
    assert settings.topic_events in str(caught.value)
    assert settings.topic_clock not in admin.list_topics(timeout=TIMEOUT).topics


def test_ensure_topics_leaves_existing_topics_alone(
    settings: Settings, admin: AdminClient, create_topics: CreateTopics, drop_topics: None
) -> None:
    # An output topic is not co-partitioned with anything: another count is fine.
    create_topics([settings.topic_events], partitions=PARTITIONS)
    create_topics([settings.topic_warnings], partitions=1)
    created = ensure_topics(settings, admin)
    assert settings.topic_events not in created and settings.topic_warnings not in created
    assert len(created) == len(topic_specs(settings)) - 2
    assert len(admin.list_topics(timeout=TIMEOUT).topics[settings.topic_warnings].partitions) == 1


def test_topics_create_command_prints_created_then_existing(topics: Settings) -> None:
    result = CliRunner().invoke(cli(), ["topics", "create"], env=env_of(topics))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(topic_specs(topics))
    assert all(line.startswith("existing ") for line in lines)
    assert any("cleanup.policy=compact" in line for line in lines)


# -- publisher -------------------------------------------------------------------------------


INVALID: list[tuple[dict[str, Any] | bytes, str]] = [
    (b"{not json", "InvalidJson"),
    ({"type": "ticket.created", "ticket_id": "T-1"}, "SchemaViolation"),
    (event("T-1", 0, occurred_at="2026-03-02T09:00:00"), "NaiveTimestamp"),
    (event("T-1", 0, priority="whenever"), "SchemaViolation"),
    ({"bad": {1, 2}}, "InvalidJson"),  # a dict JSON cannot encode
]


def test_invalid_event_raises_before_anything_is_sent(
    settings: Settings, create_topics: CreateTopics
) -> None:
    create_topics(settings.topic_events, partitions=PARTITIONS)
    with TicketEventPublisher(settings) as publisher:
        for bad, error_class in INVALID:
            with pytest.raises(Rejected) as caught:
                publisher.publish(bad)
            assert (caught.value.error_class, publisher.pending) == (error_class, 0), bad
            assert caught.value.message
        publisher.publish(event("T-2", 0))
        assert publisher.flush(TIMEOUT) == 0
    assert sum(end_offsets(settings.bootstrap_servers, settings.topic_events)) == 1
    assert publisher.delivered == 1 and publisher.errors == []


def test_published_events_are_keyed_by_ticket_id_and_read_back_committed(
    settings: Settings, create_topics: CreateTopics
) -> None:
    create_topics(settings.topic_events, partitions=PARTITIONS)
    as_bytes = b'{"event_id":"b-1", "type":"ticket.created","ticket_id":"T-B","extra":1,'
    as_bytes += b'"occurred_at":"2026-03-02T10:00:00+01:00","customer_id":"acme","priority":"low"}'
    sent: list[dict[str, Any] | bytes | str] = [
        event("T-A", 0),
        as_bytes,
        orjson.dumps(event("T-A", 1)).decode(),
        event("T-B", 2),
    ]
    with TicketEventPublisher(settings) as publisher:
        for item in sent:
            publisher.publish(item)
    assert publisher.delivered == 4

    records = read_all(settings.bootstrap_servers, [settings.topic_events], 4)
    assert len(records) == 4
    by_key: dict[bytes | None, list[Record]] = {}
    for record in records:
        by_key.setdefault(record[2], []).append(record)
    assert set(by_key) == {b"T-A", b"T-B"}
    for key, group in by_key.items():
        assert len({partition for _, partition, _, _ in group}) == 1  # one ticket, one partition
        assert all(orjson.loads(value)["ticket_id"].encode() == key for *_, value in group)
    # Order of a ticket is kept; bytes are sent as given, not re-encoded.
    assert [v for *_, v in by_key[b"T-A"]] == [orjson.dumps(sent[0]), str(sent[2]).encode()]
    assert by_key[b"T-B"][0][3] == as_bytes


def test_publisher_partitions_tickets_like_the_java_client(
    settings: Settings, create_topics: CreateTopics
) -> None:
    partitions = 7
    create_topics(settings.topic_events, partitions=partitions)
    tickets = [f"T-{n:03d}" for n in range(60)]
    with TicketEventPublisher(settings) as publisher:
        for n, ticket in enumerate(tickets):
            publisher.publish(event(ticket, n))
    records = read_all(settings.bootstrap_servers, [settings.topic_events], len(tickets))
    assert len(records) == len(tickets)
    placed = {key.decode(): partition for _, partition, key, _ in records if key is not None}
    assert placed == {ticket: partition_for(ticket, partitions) for ticket in tickets}
    assert len(set(placed.values())) > 1


def test_publish_file_reports_bad_lines_with_their_numbers_and_sends_the_rest(
    settings: Settings, create_topics: CreateTopics, tmp_path: Path
) -> None:
    create_topics(settings.topic_events, partitions=PARTITIONS)
    path = tmp_path / "events.jsonl"
    lines = [
        orjson.dumps(event("T-1", 0)),
        b'{"event_id": "x", "type": ',
        b"",
        orjson.dumps(event("T-1", 1, occurred_at="2026-03-02T09:01:00")),
        orjson.dumps(event("T-1", 2)),
        orjson.dumps({**event("T-1", 3), "type": "ticket.exploded"}),
    ]
    path.write_bytes(b"\r\n".join(lines) + b"\n")
    with TicketEventPublisher(settings) as publisher:
        report = publisher.publish_file(path)
    assert report.sent == 2 and report.undelivered == 0 and not report.ok
    assert [(r.line_no, r.error_class) for r in report.rejected] == [
        (2, "InvalidJson"),
        (4, "NaiveTimestamp"),
        (6, "SchemaViolation"),
    ]
    assert all(r.message for r in report.rejected)
    values = [v for *_, v in read_all(settings.bootstrap_servers, [settings.topic_events], 2)]
    assert sorted(values) == sorted([lines[0], lines[4]])


def test_publish_raw_sends_malformed_records_unvalidated(
    settings: Settings, create_topics: CreateTopics
) -> None:
    create_topics(settings.topic_events, partitions=1)
    with TicketEventPublisher(settings.kafka_config(), topic=settings.topic_events) as publisher:
        publisher.publish_raw(None, b"\xff not json")
        publisher.publish_raw(b"T-9", b"{}")
    records = read_all(settings.bootstrap_servers, [settings.topic_events], 2)
    assert [(key, value) for *_, key, value in records] == [
        (None, b"\xff not json"),
        (b"T-9", b"{}"),
    ]


def test_publish_command_prints_each_bad_line_and_exits_1(
    settings: Settings, create_topics: CreateTopics, tmp_path: Path
) -> None:
    create_topics(settings.topic_events, partitions=PARTITIONS)
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(event("T-1", 0)) + b"\nnope\n" + orjson.dumps(event("T-1", 1)))
    env = env_of(settings) | {"SLACLOCK_BOOTSTRAP_SERVERS": "unused:1"}
    result = CliRunner().invoke(
        cli(), ["publish", str(path), "--bootstrap", settings.bootstrap_servers], env=env
    )
    assert result.exit_code == 1, result.output
    assert f"{path}:2: InvalidJson: not valid JSON" in result.stderr
    assert f"published 2 events to {settings.topic_events}; 1 rejected" in result.stderr
    assert result.stdout == ""

    path.write_bytes(orjson.dumps(event("T-2", 0)) + b"\n")
    result = CliRunner().invoke(cli(), ["publish", str(path)], env=env_of(settings))
    assert result.exit_code == 0, result.output
    assert sum(end_offsets(settings.bootstrap_servers, settings.topic_events)) == 3


# -- subscriber ------------------------------------------------------------------------------

COMMON = {
    "ticket_id": "T-1",
    "customer_id": "acme",
    "tier": "enterprise",
    "metric": "resolution",
    "at": "2026-03-02T10:00:00Z",
}
TICKET = {**COMMON, "priority": "urgent", "cycle": 1}
WARNING = {
    **TICKET,
    "event_id": "w-1",
    "type": "sla.warning",
    "threshold": 0.75,
    "deadline": "2026-03-02T11:00:00Z",
    "target_seconds": 14_400,
}
BREACH = {
    **TICKET,
    "event_id": "b-1",
    "type": "sla.breach",
    "deadline": "2026-03-02T10:00:00Z",
    "decided_at": "2026-03-02T10:00:00Z",
    "target_seconds": 14_400,
}
COMPLETED = {
    **TICKET,
    "event_id": "c-1",
    "type": "sla.completed",
    "outcome": "breached",
    "elapsed_seconds": 20_000,
    "target_seconds": 14_400,
}
CREDIT = {
    **COMMON,
    "event_id": "cr-1",
    "type": "sla.credit",
    "period": "2026-03",
    "amount": "300.00",
    "currency": "EUR",
    "percent": "2.5",
    "capped": False,
    "period_total": "300.00",
    "breach_event_id": "b-1",
    "decided_at": "2026-03-02T10:00:00Z",
    "service_id": None,
}


def produce_outputs(settings: Settings, committed: bool, outputs: list[dict[str, Any]]) -> None:
    """Write outputs as the worker does: one transaction, CloudEvents headers, keyed."""
    topic_of = {
        "sla.warning": settings.topic_warnings,
        "sla.breach": settings.topic_breaches,
        "sla.completed": settings.topic_completions,
        "sla.credit": settings.topic_credits,
    }
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "transactional.id": f"{settings.app_id}-test-{committed}",
        }
    )
    producer.init_transactions(TIMEOUT)
    producer.begin_transaction()
    for output in outputs:
        key = output["customer_id"] if output["type"] == "sla.credit" else output["ticket_id"]
        headers = [("ce_id", output["event_id"].encode()), ("ce_type", output["type"].encode())]
        value = orjson.dumps(output)
        producer.produce(topic_of[output["type"]], value, key.encode(), headers=headers)
    if committed:
        producer.commit_transaction(TIMEOUT)
    else:
        producer.flush(TIMEOUT)
        producer.abort_transaction(TIMEOUT)


def test_subscriber_yields_typed_events_of_committed_transactions_only(topics: Settings) -> None:
    produce_outputs(topics, True, [WARNING, CREDIT])
    produce_outputs(topics, False, [BREACH, {**WARNING, "event_id": "w-aborted"}])
    # Committed after the aborted records on the same partitions (one key, T-1): reading
    # these proves the subscriber went past the aborted ones.
    after = [COMPLETED, {**BREACH, "event_id": "b-2"}, {**WARNING, "event_id": "w-2"}]
    produce_outputs(topics, True, after)
    committed = {"w-1", "cr-1", "c-1", "b-2", "w-2"}

    events: list[Any] = []
    with OutputSubscriber(topics, group_id=topics.app_id + "-sub") as subscriber:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and {e.event_id for e in events} != committed:
            if (output := subscriber.poll(0.5)) is not None:
                events.append(output)
    assert sorted(e.event_id for e in events) == sorted(committed)  # once each, none aborted
    by_id = {e.event_id: e for e in events}
    assert isinstance(by_id["w-1"], SlaWarning) and by_id["w-1"].threshold == 0.75
    assert isinstance(by_id["cr-1"], SlaCredit) and str(by_id["cr-1"].amount) == "300.00"
    assert isinstance(by_id["c-1"], SlaCompleted) and by_id["c-1"].outcome == "breached"
    assert isinstance(by_id["b-2"], SlaBreach)

    # The aborted records really are in the log: a read_uncommitted reader sees them.
    uncommitted = read_all(
        topics.bootstrap_servers,
        [topics.topic_breaches, topics.topic_warnings],
        5,
        isolation="read_uncommitted",
    )
    assert sorted(orjson.loads(v)["event_id"] for *_, v in uncommitted) == sorted(
        ["b-1", "w-aborted", "w-1", "b-2", "w-2"]
    )


def test_subscriber_skips_records_that_are_not_output_events_and_lists_them(
    topics: Settings,
) -> None:
    with TicketEventPublisher(topics, topic=topics.topic_warnings) as raw:
        raw.publish_raw(b"T-1", b"garbage")
        raw.publish_raw(b"T-1", orjson.dumps({**WARNING, "threshold": 7}))
        raw.publish_raw(b"T-1", orjson.dumps(WARNING))
    with OutputSubscriber(topics, [topics.topic_warnings]) as subscriber:
        output = subscriber.poll(TIMEOUT)
        assert isinstance(output, SlaWarning) and output.event_id == "w-1"
        assert [(r.topic, r.offset) for r in subscriber.invalid] == [
            (topics.topic_warnings, 0),
            (topics.topic_warnings, 1),
        ]
        assert "threshold" in subscriber.invalid[1].error


def test_subscriber_group_resumes_after_the_last_event_it_handed_out(topics: Settings) -> None:
    warnings = [{**WARNING, "event_id": f"w-{n}"} for n in range(3)]
    produce_outputs(topics, True, warnings)  # one ticket: one partition, in order
    group = topics.app_id + "-resume"
    with OutputSubscriber(topics, [topics.topic_warnings], group_id=group) as first:
        seen = [first.poll(TIMEOUT), first.poll(TIMEOUT)]
        first.commit()  # synchronous; `close` would commit too
    assert [e.event_id for e in seen if e is not None] == ["w-0", "w-1"]
    with OutputSubscriber(topics, [topics.topic_warnings], group_id=group) as second:
        again = second.poll(TIMEOUT)
        assert again is not None and again.event_id == "w-2"


def test_subscriber_reports_an_unknown_topic(settings: Settings) -> None:
    with (
        OutputSubscriber(settings, [settings.topic_warnings]) as subscriber,
        pytest.raises(SubscriberError, match="does not exist"),
    ):
        subscriber.poll(TIMEOUT)


def test_collect_returns_committed_values_with_their_headers(topics: Settings) -> None:
    produce_outputs(topics, True, [WARNING, CREDIT])
    produce_outputs(topics, False, [BREACH])
    records = collect(topics, until_idle_seconds=1.0)
    assert sorted(r["value"]["event_id"] for r in records) == ["cr-1", "w-1"]
    credit = next(r for r in records if r["topic"] == topics.topic_credits)
    assert credit["value"] == CREDIT
    assert credit["key"] == "acme"
    assert credit["headers"] == {"ce_id": "cr-1", "ce_type": "sla.credit"}
    assert credit["raw_value"] == orjson.dumps(CREDIT)


def test_tail_command_prints_one_json_object_per_line(topics: Settings) -> None:
    produce_outputs(topics, True, [WARNING, CREDIT])
    produce_outputs(topics, False, [BREACH])
    result = CliRunner().invoke(
        cli(), ["tail", "--from-beginning", "--max", "2", "--idle", "10"], env=env_of(topics)
    )
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(lines, key=lambda o: o["event_id"]) == [CREDIT, WARNING]

    result = CliRunner().invoke(
        cli(),
        ["tail", topics.topic_credits, "--from-beginning", "--meta", "--idle", "1"],
        env=env_of(topics),
    )
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert orjson.loads(line) | {"offset": None} == {
        "topic": topics.topic_credits,
        "partition": orjson.loads(line)["partition"],
        "offset": None,
        "key": "acme",
        "headers": {"ce_id": "cr-1", "ce_type": "sla.credit"},
        "value": CREDIT,
    }
