"""Publish ticket lifecycle events to `tickets.events` (docs/semantics.md: Inputs), validated before sending.

`TicketEventPublisher` wraps an idempotent confluent-kafka producer (`acks=all`,
`enable.idempotence=true`): librdkafka's retries never duplicate or reorder records of a
partition. Every event is validated with the engine's own `decode_event` (`slaclock.schemas.rejection`), so what the
publisher accepts is exactly what the worker accepts (apart from the checks that need
state, such as an event for a ticket never created, or the worker's clock). An invalid
event raises `Rejected` and nothing is sent. Records are keyed by `ticket_id`, so all
events of a ticket land in one partition, in publish order; the value is the original
bytes (a dict is encoded with orjson).

Sending is asynchronous: `publish` queues the record; delivery reports arrive while
publishing and on `flush`/`close`, and are counted in `delivered` and `errors`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson
from confluent_kafka import KafkaError, Message, Producer

from slaclock.client.librdkafka_log import with_logging
from slaclock.client.settings import ClientSettings
from slaclock.schemas.rejection import Rejected, decode_event

__all__ = [
    "DEFAULT_TOPIC",
    "DeliveryError",
    "PublishReport",
    "Rejected",
    "RejectedLine",
    "TicketEventPublisher",
]

DEFAULT_TOPIC = "tickets.events"

PRODUCER_GUARANTEES: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    # The Java client's default: a ticket's events land on one partition whichever
    # client (Java, this one, the worker) publishes them.
    "partitioner": "murmur2_random",
}
"""Always applied, over any configuration given: the point of this class."""


@dataclass(frozen=True)
class DeliveryError:
    """A record the broker did not acknowledge (after librdkafka's own retries)."""

    key: bytes | None
    error: str


@dataclass(frozen=True)
class RejectedLine:
    """An input line that did not validate; `line_no` counts from 1."""

    line_no: int
    error_class: str
    message: str


@dataclass
class PublishReport:
    """What `publish_file` did: lines sent, lines rejected, records not acknowledged.

    `undelivered` counts the records of this file that failed delivery or were still
    unacknowledged when the final flush timed out.
    """

    sent: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    undelivered: int = 0

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.undelivered


class TicketEventPublisher:
    """Validating, idempotent producer of ticket events; a context manager.

    `source` is either slaclock's settings (`load_settings()`: connection settings, topic
    `topic_events`; see `ClientSettings`) or a librdkafka configuration dict (topic
    `tickets.events` unless `topic` is given).
    """

    def __init__(
        self,
        source: ClientSettings | Mapping[str, Any],
        topic: str | None = None,
    ) -> None:
        if isinstance(source, Mapping):
            config = dict(source)
            self.topic = topic or DEFAULT_TOPIC
        else:
            config = source.kafka_config()
            config.setdefault("client.id", f"{source.app_id}-publisher")
            self.topic = topic or source.topic_events
        config.update(PRODUCER_GUARANTEES)
        self._producer = Producer(with_logging(config))  # librdkafka's log: Python logging
        self.delivered = 0
        self.errors: list[DeliveryError] = []
        self._closed = False

    # -- sending ---------------------------------------------------------------------------

    def publish(self, event: Mapping[str, Any] | bytes | str) -> None:
        """Validate one event and queue it, keyed by its `ticket_id`.

        Raises `Rejected` (with the engine's error class and message) for an invalid
        event; nothing is queued then.
        """
        value = _encode(event)
        ticket = decode_event(value)
        self._produce(ticket.ticket_id.encode(), value)

    def publish_raw(self, key: bytes | None, value: bytes) -> None:
        """Queue a record as is, without validation: for injecting malformed input."""
        self._produce(key, value)

    def publish_lines(self, lines: Iterable[bytes]) -> PublishReport:
        """Publish JSON lines, reporting invalid ones by line number and going on.

        Blank lines are skipped (as replay does) but still counted in the numbering.
        Does not flush; `publish_file` does.
        """
        report = PublishReport()
        for line_no, raw in enumerate(lines, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                self.publish(line)
            except Rejected as rejected:
                report.rejected.append(
                    RejectedLine(line_no, rejected.error_class, rejected.message)
                )
            else:
                report.sent += 1
        return report

    def publish_file(self, path: Path | str, flush_timeout: float = 30.0) -> PublishReport:
        """Publish a JSONL file (`-` for stdin), then flush; see `publish_lines`."""
        errors_before = len(self.errors)
        if str(path) == "-":
            report = self.publish_lines(sys.stdin.buffer)
        else:
            with Path(path).open("rb") as source:
                report = self.publish_lines(source)
        pending = self.flush(flush_timeout)
        report.undelivered = len(self.errors) - errors_before + pending
        return report

    def _produce(self, key: bytes | None, value: bytes) -> None:
        if self._closed:
            raise RuntimeError("publisher is closed")
        while True:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=self._on_delivery)
                break
            except BufferError:
                # Local queue full: wait for deliveries to make room, then retry.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.errors.append(DeliveryError(message.key(), error.str()))

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still unacknowledged."""
        return int(self._producer.flush(timeout))

    @property
    def pending(self) -> int:
        """Records queued or in flight."""
        return len(self._producer)

    def close(self, timeout: float = 30.0) -> int:
        """Flush and stop accepting events; returns the records left unacknowledged."""
        if self._closed:
            return self.pending
        remaining = self.flush(timeout)
        self._closed = True
        return remaining

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _encode(event: Mapping[str, Any] | bytes | str) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode()
    try:
        return orjson.dumps(event)
    except orjson.JSONEncodeError as error:
        raise Rejected("InvalidJson", f"event cannot be encoded as JSON: {error}") from None
