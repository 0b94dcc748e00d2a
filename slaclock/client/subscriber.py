"""Read the output topics (docs/semantics.md: Outputs) as typed events, seeing committed transactions only.

The worker writes outputs inside Kafka transactions; a consumer with
`isolation.level=read_committed` (always set here) never sees the records of an aborted
transaction, and sees a committed one only once it is committed.

Offsets (`OutputSubscriber` with a `group_id`): at least once. An event counts as handled
when the caller asks for the next one (`poll`, the next loop of `for event in subscriber`)
or closes the subscriber; only then is its offset stored, and stored offsets are committed
by librdkafka's auto-commit in the background and on `close()`
(`enable.auto.commit=true` with `enable.auto.offset.store=false`). A subscriber that
crashes while handling an event gets that event again after a restart; one that handled
it does not. Without a `group_id` the subscriber uses a fresh group and commits nothing:
a viewer such as `slaclock tail`.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from pydantic import ValidationError

from slaclock.client.librdkafka_log import with_logging
from slaclock.client.settings import ClientSettings
from slaclock.schemas.outputs import OutputEvent, parse_output_event

__all__ = [
    "InvalidRecord",
    "OutputSubscriber",
    "ReceivedRecord",
    "SubscriberError",
    "collect",
    "output_topics",
]


class SubscriberError(Exception):
    """The subscription cannot go on (an unknown topic, a fatal client error)."""


def output_topics(settings: ClientSettings) -> list[str]:
    """The four output topics: warnings, breaches, completions, credits."""
    return [
        settings.topic_warnings,
        settings.topic_breaches,
        settings.topic_completions,
        settings.topic_credits,
    ]


@dataclass(frozen=True)
class ReceivedRecord:
    """One Kafka record as read: where it came from, key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int | None

    @classmethod
    def from_message(cls, message: Message) -> ReceivedRecord:
        kind, timestamp = message.timestamp()
        return cls(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=message.key(),
            value=message.value() or b"",
            headers=_headers(message),
            timestamp_ms=timestamp if kind != 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; `value` is the decoded JSON (None if the value is not JSON)."""
        try:
            value: Any = orjson.loads(self.value)
        except orjson.JSONDecodeError:
            value = None
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": None if self.key is None else self.key.decode(errors="replace"),
            "headers": {n: v.decode(errors="replace") for n, v in self.headers.items()},
            "value": value,
            "raw_value": self.value,
        }


@dataclass(frozen=True)
class InvalidRecord:
    """A record of an output topic that is not a valid output event: skipped, kept here."""

    topic: str
    partition: int
    offset: int
    error: str


class OutputSubscriber:
    """Typed output events from `topics` (default: the four output topics).

    `from_beginning` applies when the group has no committed offset (always, without a
    `group_id`): start at the oldest record instead of only new ones. Records that are not
    valid output events are skipped and listed in `invalid`.
    """

    def __init__(
        self,
        settings: ClientSettings,
        topics: Sequence[str] | None = None,
        group_id: str | None = None,
        from_beginning: bool = True,
    ) -> None:
        self.topics = list(topics) if topics else output_topics(settings)
        self._commits = group_id is not None
        self.group_id = group_id or f"{settings.app_id}-subscriber-{uuid.uuid4().hex[:12]}"
        config = with_logging(settings.kafka_config())  # librdkafka log: Python logging
        config.update(
            {
                "group.id": self.group_id,
                "client.id": f"{settings.app_id}-subscriber",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.auto.commit": self._commits,
                "enable.auto.offset.store": False,
            }
        )
        self._consumer = Consumer(config)
        self._consumer.subscribe(self.topics)
        self._handled: Message | None = None  # returned to the caller, offset not stored yet
        self._closed = False
        self.invalid: list[InvalidRecord] = []

    @property
    def assigned(self) -> bool:
        """True once the group gave this subscriber partitions (a group join takes a while)."""
        return bool(self._consumer.assignment())

    def poll_record(self, timeout: float = 1.0) -> ReceivedRecord | None:
        """The next record of any kind, or None after `timeout` seconds without one."""
        self._store_handled()
        deadline = time.monotonic() + timeout
        while True:
            message = self._consumer.poll(max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            error = message.error()
            if error is None:
                self._handled = message
                return ReceivedRecord.from_message(message)
            _raise_if_fatal(error, message.topic())
            if time.monotonic() >= deadline:
                return None

    def poll(self, timeout: float = 1.0) -> OutputEvent | None:
        """The next valid output event, or None after `timeout` seconds without one."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.poll_record(max(0.0, deadline - time.monotonic()))
            if record is None:
                return None
            try:
                return parse_output_event(record.value)
            except ValidationError as error:
                self.invalid.append(
                    InvalidRecord(record.topic, record.partition, record.offset, str(error))
                )

    def __iter__(self) -> Iterator[OutputEvent]:
        """Events as they arrive, forever (stop with `break` or `close()`)."""
        while not self._closed:
            event = self.poll(1.0)
            if event is not None:
                yield event

    def commit(self) -> None:
        """Commit the handled events' offsets now (synchronously) instead of in the background."""
        self._store_handled()
        if self._commits:
            try:
                self._consumer.commit(asynchronous=False)
            except KafkaException as exc:  # nothing stored yet: librdkafka reports _NO_OFFSET
                if not _no_offset(exc):
                    raise

    def close(self) -> None:
        """Store the last event's offset, commit (with a `group_id`) and leave the group."""
        if self._closed:
            return
        self._store_handled()
        self._closed = True
        self._consumer.close()

    def _store_handled(self) -> None:
        if self._handled is not None and self._commits:
            # Fails only when a rebalance took the partition away meanwhile: its new owner
            # then gets the event again, which at-least-once allows.
            with contextlib.suppress(KafkaException):
                self._consumer.store_offsets(message=self._handled)
        self._handled = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def collect(
    settings: ClientSettings,
    topics: Sequence[str] | None = None,
    until_idle_seconds: float = 2.0,
    group_id: str | None = None,
    timeout: float = 120.0,
) -> list[dict[str, Any]]:
    """Every committed record of `topics` from the beginning, until none came for a while.

    Returns `ReceivedRecord.to_dict()` dicts (topic, partition, offset, key, headers,
    value = the decoded JSON, raw_value), in arrival order (ordered within a partition).
    Stops after `until_idle_seconds` without a record, or at `timeout`. Partitions are
    assigned directly (no group join, nothing committed), so reading starts at once;
    `group_id` only names the client to the broker.
    """
    topics = list(topics) if topics else output_topics(settings)
    config = with_logging(settings.kafka_config())
    config.update(
        {
            "group.id": group_id or f"{settings.app_id}-collect-{uuid.uuid4().hex[:12]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer = Consumer(config)
    records: list[dict[str, Any]] = []
    try:
        metadata = consumer.list_topics(timeout=30)
        assignment = []
        for name in topics:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                raise SubscriberError(f"topic {name} does not exist")
            assignment += [TopicPartition(name, p, OFFSET_BEGINNING) for p in topic.partitions]
        consumer.assign(assignment)
        start = time.monotonic()
        last = start
        while True:
            now = time.monotonic()
            if now - last >= until_idle_seconds or now - start >= timeout:
                return records
            message = consumer.poll(min(0.2, until_idle_seconds))
            if message is None:
                continue
            error = message.error()
            if error is not None:
                _raise_if_fatal(error, message.topic())
                continue
            records.append(ReceivedRecord.from_message(message).to_dict())
            last = time.monotonic()
    finally:
        consumer.close()


def _headers(message: Message) -> dict[str, bytes]:
    """Headers as a dict; a repeated header keeps its last value (CloudEvents has one)."""
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {
        name: value.encode() if isinstance(value, str) else (value or b"") for name, value in pairs
    }


def _raise_if_fatal(error: KafkaError, topic: str | None) -> None:
    """Unknown topics and fatal errors end the subscription; transient ones are retried."""
    if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        raise SubscriberError(
            f"topic {topic or '?'} does not exist (create it with `slaclock topics create`)"
        )
    if error.fatal():
        raise SubscriberError(f"consumer failed: {error.str()}")


def _no_offset(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError._NO_OFFSET
