"""The services stage on the real broker: live equals the replay of the same events.

The processor runs in this process (its Kafka loop, transactions and changelog are the real
ones); the test publishes the events and the clock ticks itself, so the final clock is known
and the replay of the same events up to that clock is the expected output. Half way the
processor is stopped and a new one restores its state from the changelog.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.services_stage import ServiceStage
from slaclock.processors.live.records import KIND_AVAILABILITY, KIND_WATERMARK, Tick, Watermark
from slaclock.processors.live.services import ServiceProcessor
from slaclock.processors.services_intake import decode_service_event
from slaclock.processors.settings import Settings
from slaclock.processors.topics import ensure_topics, topic_specs
from tests.core.service_builders import SERVICES_YAML, make_services, scheduled, status_changed

pytestmark = pytest.mark.kafka

GRACE_S = 1
PARTITIONS = 2
FINAL = parse_instant("2026-06-01T00:00:00Z")
# the test policy plus `webshop`, which never has an event and lands alone in partition 1
# (portal, office-app and the quiet `seasonal` land in partition 0): both quiet services
# are reported every month, the second by a partition that never sees an event
LIVE_YAML = SERVICES_YAML.replace(
    "services:\n",
    'services:\n  webshop:\n    timezone: Asia/Tokyo\n    target: "99.9"\n',
    1,
)
QUIET = ("seasonal", "webshop")


def history() -> list[dict[str, Any]]:
    """Two months of two services: outages, a weight-0.3 partial outage, an excused and an
    unannounced maintenance, an outage across the month end, a duplicate."""
    events = [
        scheduled("2026-04-01T00:00:00Z", "m1", "2026-04-15T02:00:00Z", "2026-04-15T04:00:00Z"),
        status_changed("2026-04-02T10:00:00Z", "major_outage", "office-app"),
        status_changed("2026-04-02T13:00:00Z", "operational", "office-app"),
        status_changed("2026-04-10T08:00:00Z", "partial_outage"),
        status_changed("2026-04-10T20:00:00Z", "operational"),
        status_changed("2026-04-15T02:00:00Z", "under_maintenance"),
        status_changed("2026-04-15T04:00:00Z", "operational"),
        status_changed("2026-04-20T01:00:00Z", "under_maintenance", event_id="dup"),
        status_changed("2026-04-20T01:00:00Z", "under_maintenance", event_id="dup"),
        status_changed("2026-04-20T03:00:00Z", "operational"),
        status_changed("2026-04-30T22:00:00Z", "major_outage"),
        status_changed("2026-05-01T03:00:00Z", "operational"),
        status_changed("2026-05-04T09:00:00Z", "degraded_performance", "office-app"),
        status_changed("2026-05-05T09:00:00Z", "major_outage", "office-app"),
        status_changed("2026-05-06T09:00:00Z", "operational", "office-app"),
    ]
    return events


def replay(raw: list[bytes]) -> list[dict[str, Any]]:
    return replay_until(raw, FINAL)


def replay_until(raw: list[bytes], until: int) -> list[dict[str, Any]]:
    """The replay of these service events (grace 0) up to `until` inclusive."""
    stage = ServiceStage(make_services(LIVE_YAML), {}, 0)
    outputs: list[dict[str, Any]] = []
    for line in raw:
        try:
            event = decode_service_event(line)
        except Exception:
            continue
        with contextlib.suppress(Exception):
            outputs += stage.on_event(event, parse_instant(event.occurred_at.isoformat()))
    outputs += stage.advance_to(until)
    return outputs


class Running:
    """A ServiceProcessor on its own thread."""

    def __init__(self, settings: Settings) -> None:
        # a wall clock just past the events: none of them is "ahead of the worker's clock"
        # whatever day the test runs
        self.processor = ServiceProcessor(
            settings,
            make_services(LIVE_YAML),
            PARTITIONS,
            wall_clock=lambda: FINAL / 1_000_000 + 60,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.processor.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def wait_for_clock(self, settings: Settings, at_least: int, timeout: float = 90.0) -> None:
        """Tick (again and again: a tick read before the events it covers only moves a
        partition to its stream time) until every partition's clock reached `at_least`."""
        deadline = time.monotonic() + timeout
        clocks: list[int | None] = []
        while time.monotonic() < deadline:
            tick(settings, at_least)
            clocks = [task.stage.clock for task in list(self.processor.tasks.values())]
            if len(clocks) == PARTITIONS and all(c is not None and c >= at_least for c in clocks):
                return
            time.sleep(0.5)
        raise AssertionError(f"the services clocks {clocks} did not reach {at_least}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert self.processor.clean_exit


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str, admin: AdminClient) -> Iterator[Settings]:
    p = topic_prefix
    made = Settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"{p}app",
        instance_id="services-test",
        partitions=PARTITIONS,
        grace=GRACE_S,
        http_port=0,
        store="memory",
        topic_events=f"{p}tickets.events",
        topic_contracts=f"{p}sla.contracts",
        topic_policies=f"{p}sla.policies",
        topic_warnings=f"{p}sla.warnings",
        topic_breaches=f"{p}sla.breaches",
        topic_completions=f"{p}sla.completions",
        topic_credits=f"{p}sla.credits",
        topic_dlq=f"{p}dlq",
        topic_services=f"{p}services.events",
        topic_availability=f"{p}sla.availability",
    )
    ensure_topics(made, admin)
    yield made
    names = [spec.name for spec in topic_specs(made)]
    for future in admin.delete_topics(names, operation_timeout=10).values():
        with contextlib.suppress(Exception):
            future.result(15)


def publish(settings: Settings, events: list[bytes]) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    for raw in events:
        key = orjson.loads(raw).get("service_id", "?").encode() if raw.startswith(b"{") else None
        producer.produce(settings.topic_services, raw, key=key)
    producer.flush(10)


def tick(settings: Settings, clock: int) -> None:
    """One tick per partition that moves a caught-up partition's clock to `clock`."""
    probe = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "probe"})
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    try:
        for partition in range(PARTITIONS):
            tp = TopicPartition(settings.topic_services, partition)
            _, high = probe.get_watermark_offsets(tp, timeout=10, cached=False)
            record = Tick(clock + GRACE_S * US_PER_SECOND, high).encode()
            producer.produce(settings.topic_services_clock, record, partition=partition)
        producer.flush(10)
    finally:
        probe.close()


def read_committed(settings: Settings, topic: str) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"reader-{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages, at_eof = [], set()
        deadline = time.monotonic() + 30
        while len(at_eof) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_eof.add(message.partition())
                continue
            messages.append(message)
        return messages
    finally:
        consumer.close()


def test_live_services_stage_equals_replay_across_a_restart(settings: Settings) -> None:
    raw = [orjson.dumps(e) for e in history()]
    bad = orjson.dumps(status_changed("2026-04-11T00:00:00Z", "major_outage", "ghost"))
    first, second = raw[:8], raw[8:]
    half_clock = parse_instant("2026-04-20T00:00:00Z")

    running = Running(settings)
    # before any input: GET /services/webshop answers for the quiet service all the same
    deadline = time.monotonic() + 60
    while len(running.processor.tasks) < PARTITIONS and time.monotonic() < deadline:
        time.sleep(0.1)
    quiet = running.processor.service_status("webshop")
    assert quiet is not None
    assert (quiet["partition"], quiet["status"], quiet["downtime_seconds"]) == (1, "operational", 0)
    assert quiet["budget_left_seconds"] == quiet["budget_seconds"] > 0
    publish(settings, [*first, bad])
    running.wait_for_clock(settings, half_clock)
    running.close()

    restarted = Running(settings)  # restores from the changelog
    publish(settings, second)
    restarted.wait_for_clock(settings, FINAL)
    # what GET /services/portal shows, once the batch that moved the clock is published
    deadline = time.monotonic() + 30
    view = restarted.processor.service_status("portal")
    while (view is None or view["period"] != "2026-06") and time.monotonic() < deadline:
        time.sleep(0.1)
        view = restarted.processor.service_status("portal")
    assert view is not None
    assert (view["period"], view["status"], view["downtime_seconds"]) == (
        "2026-06",
        "operational",
        0,
    )
    restarted.close()

    live = [orjson.loads(m.value()) for m in read_committed(settings, settings.topic_availability)]
    expected = replay([*first, bad, *second])
    assert {o["type"] for o in expected} >= {
        "sla.availability_warning",
        "sla.availability_breach",
        "sla.availability_report",
    }
    assert Counter(orjson.dumps(o) for o in live) == Counter(orjson.dumps(o) for o in expected)
    for service in ("portal", "office-app", *QUIET):
        assert [o for o in live if o["service_id"] == service] == [
            o for o in expected if o["service_id"] == service
        ]
    for service in QUIET:  # every month since the first event (April 1), quiet ones too
        quiet = [o for o in live if o["service_id"] == service]
        assert [(o["period"], o["uptime_percent"], o["met"]) for o in quiet] == [
            ("2026-04", "100.0000", True),
            ("2026-05", "100.0000", True),
        ]

    dead = read_committed(settings, settings.topic_dlq)
    assert [dict(m.headers())["error_class"] for m in dead] == [b"UnknownService"]
    assert dead[0].value() == bad

    ledger = read_committed(settings, settings.topic_ledger_input)
    reports = [m for m in ledger if dict(m.headers())["kind"] == KIND_AVAILABILITY]
    expected_reports = [o for o in expected if o["type"] == "sla.availability_report"]
    assert len(reports) == PARTITIONS * len(expected_reports)  # every ledger partition
    marks = [
        Watermark.decode(m.value()) for m in ledger if dict(m.headers())["kind"] == KIND_WATERMARK
    ]
    assert {mark.source for mark in marks} == {"services"}
    assert {mark.source_partition for mark in marks if mark.clock == FINAL} == {0, 1}
