"""Kafka record formats of the live pipeline: outputs, ticks, watermarks, dead letters.

Only encoding and decoding here; no client calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Message

from processors.engine.ticket import Output

Headers = list[tuple[str, bytes]]

CE_SPECVERSION = b"1.0"
CONTENT_TYPE = b"application/json"

# ledger-input record kinds (header "kind")
KIND_BREACH = b"breach"
KIND_WATERMARK = b"watermark"

META_KEY = b"\x00meta"  # changelog key of a partition's clock record


def cloudevents_headers(output: Output, source: str) -> Headers:
    """CloudEvents binary-mode headers (SPEC 6) for an output event."""
    return [
        ("ce_specversion", CE_SPECVERSION),
        ("ce_id", output["event_id"].encode()),
        ("ce_type", output["type"].encode()),
        ("ce_source", source.encode()),
        ("ce_time", output["at"].encode()),
        ("content-type", CONTENT_TYPE),
    ]


def output_key(output: Output) -> bytes:
    key = output["customer_id"] if output["type"] == "sla.credit" else output["ticket_id"]
    return str(key).encode()


def encode_output(output: Output) -> bytes:
    return orjson.dumps(output)


@dataclass(frozen=True, slots=True)
class Tick:
    """A clock tick for one partition: wall time and that partition's input end offset."""

    now: int  # microseconds since the epoch
    end_offset: int

    def encode(self) -> bytes:
        return orjson.dumps({"now": self.now, "end_offset": self.end_offset})

    @classmethod
    def decode(cls, raw: bytes) -> Tick:
        data = orjson.loads(raw)
        return cls(int(data["now"]), int(data["end_offset"]))


@dataclass(frozen=True, slots=True)
class Watermark:
    """Stage-1 clock progress of one source partition, sent to every ledger partition."""

    source_partition: int
    clock: int

    def encode(self) -> bytes:
        return orjson.dumps({"source_partition": self.source_partition, "clock": self.clock})

    @classmethod
    def decode(cls, raw: bytes) -> Watermark:
        data = orjson.loads(raw)
        return cls(int(data["source_partition"]), int(data["clock"]))


def dead_letter_headers(
    error_class: str, message: str, topic: str, partition: int, offset: int
) -> Headers:
    """SPEC 8: the error class, a readable message and where the record came from."""
    return [
        ("error_class", error_class.encode()),
        ("error_message", message.encode()),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]


def header_value(headers: Any, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def coordinates(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed record (always set on one without error)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset
