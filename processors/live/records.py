"""Kafka record formats of the live pipeline: outputs, ticks, watermarks, dead letters.

Only encoding and decoding here; no client calls.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Message

from slaclock.processors.engine.ticket import Output

Headers = list[tuple[str, bytes]]

CE_SPECVERSION = b"1.0"
CONTENT_TYPE = b"application/json"

# ledger-input record kinds (header "kind")
KIND_OUTCOME = b"outcome"  # a breach or a first met completion (the output itself)
KIND_BREACH = KIND_OUTCOME  # the name records of earlier versions used
KIND_AVAILABILITY = b"availability"  # an sla.availability_report, to every ledger partition
KIND_WATERMARK = b"watermark"

META_KEY = b"\x00meta"  # changelog key of a partition's clock record


def cloudevents_headers(output: Output, source: str) -> Headers:
    """CloudEvents binary-mode headers (docs/semantics.md: Outputs) for an output event."""
    return [
        ("ce_specversion", CE_SPECVERSION),
        ("ce_id", output["event_id"].encode()),
        ("ce_type", output["type"].encode()),
        ("ce_source", source.encode()),
        ("ce_time", output["at"].encode()),
        ("content-type", CONTENT_TYPE),
    ]


class CloudEventsHeaders:
    """`cloudevents_headers` for one source, its constant headers built once: only the id
    and the time are encoded per output (the same headers, in the same order)."""

    def __init__(self, source: str) -> None:
        self._specversion = ("ce_specversion", CE_SPECVERSION)
        self._source = ("ce_source", source.encode())
        self._content_type = ("content-type", CONTENT_TYPE)
        self._types: dict[str, tuple[str, bytes]] = {}

    def __call__(self, output: Output) -> Headers:
        kind: str = output["type"]
        ce_type = self._types.get(kind)
        if ce_type is None:
            ce_type = self._types[kind] = ("ce_type", kind.encode())
        return [
            self._specversion,
            ("ce_id", output["event_id"].encode()),
            ce_type,
            self._source,
            ("ce_time", output["at"].encode()),
            self._content_type,
        ]


CUSTOMER_KEYED = frozenset({"sla.credit", "sla.credit_earned_back", "sla.statement"})


def output_key(output: Output) -> bytes:
    kind = output["type"]
    if kind in CUSTOMER_KEYED:
        return str(output["customer_id"]).encode()
    if kind == "sla.group_statement":
        return str(output["group"]).encode()
    if "service_id" in output and output.get("ticket_id") is None:
        return str(output["service_id"]).encode()
    return str(output["ticket_id"]).encode()


def ledger_partition(customer_id: str, partitions: int) -> int:
    """The ledger partition that owns a customer: CRC-32 of the id, modulo the count.

    Chosen by us rather than by a client's default partitioner, so every producer (stage 1,
    the services stage) and every ledger task agree on who owns a customer.
    """
    return zlib.crc32(customer_id.encode()) % partitions


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
    """Clock progress of one input partition, sent to every ledger partition.

    `source` names the input (`tickets` or `services`), so the ledger waits for every
    partition of both; `first` is the least instant that partition has applied (statements
    start with the month of the earliest input).
    """

    source_partition: int
    clock: int
    source: str = "tickets"
    first: int | None = None

    @property
    def source_id(self) -> str:
        return f"{self.source}/{self.source_partition}"

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "source": self.source,
                "source_partition": self.source_partition,
                "clock": self.clock,
                "first": self.first,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Watermark:
        data = orjson.loads(raw)
        first = data.get("first")
        return cls(
            int(data["source_partition"]),
            int(data["clock"]),
            str(data.get("source", "tickets")),
            None if first is None else int(first),
        )


def dead_letter_headers(
    error_class: str, message: str, topic: str, partition: int, offset: int
) -> Headers:
    """docs/semantics.md: Duplicates and invalid input: the error class, a readable message and where the record came from."""
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
