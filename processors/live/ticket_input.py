"""Stage 1's work per input record on Kafka: decode, apply, route what comes out.

`TicketProcessor` (processors.live.tickets) keeps what runs per batch or per assignment
(restores, flushes, watermarks, checkpoints); this module holds what runs for every
record, so that the shipped build compiles it with mypyc along with the engine (setup.py,
`COMPILED`): the loop over a batch's records, the decoding and the future-skew check, the
stage call, and the output records (CloudEvents headers, keys, the ledger's copy). The
Kafka client, the metrics and the processor itself are reached through plain attributes
and calls, never patched here; what happens seldom (an untracked ticket's log line) calls
back into the processor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Message

from slaclock.processors.engine.group_ledger import GROUP_HOLD
from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant, to_us
from slaclock.processors.engine.ledger import ledger_input
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import Output
from slaclock.processors.intake import decode_record
from slaclock.processors.live.records import (
    KIND_OUTCOME,
    CloudEventsHeaders,
    Headers,
    Tick,
    dead_letter_headers,
    encode_output,
    ledger_partition,
    output_key,
)
from slaclock.processors.live.store import TicketStore
from slaclock.schemas.fast_events import EngineEvent, TicketCreatedEvent
from slaclock.schemas.rejection import Rejected

OUTCOME_HEADER = ("kind", KIND_OUTCOME)


@dataclass
class TicketTask:
    partition: int
    stage: TicketStage
    store: TicketStore
    processed_offset: int = 0  # next offset of tickets.events to process
    position: int = 0  # consumer position at batch start (past skipped control records)
    last_in_batch: int = -1  # highest tickets.events offset of this task in the batch
    clock_sent: int | None = None  # last clock watermark sent to the ledger
    meta_dirty: bool = False
    # tickets with a group cycle still open -> that group, as of the last flush: written by
    # the stage thread and read by the HTTP thread (`GET /groups/{group}`), both under
    # `open_groups_lock` (a batch changes a few entries; a reader copies what it needs)
    open_groups: dict[str, str] = field(default_factory=dict)
    open_groups_lock: threading.Lock = field(default_factory=threading.Lock)


def processed_position(task: TicketTask) -> int:
    """The input offset before which every record of the task's partition is processed.

    Once the batch's records of the partition are all processed, that is the consumer
    position, which is past transaction markers no consumer sees.
    """
    if task.processed_offset > task.last_in_batch:
        return max(task.processed_offset, task.position)
    return task.processed_offset


class TicketInput:
    """The per-record path of one `TicketProcessor` (which owns `tasks` and the producer).

    `events_seen` and `outputs_seen` count a batch's events and outputs by type; the
    processor adds them to the Prometheus counters once per batch and clears them.
    """

    def __init__(
        self,
        loop: Any,  # the TicketProcessor: its `producer` may be replaced between batches
        tasks: dict[int, TicketTask],
        topics: Any,  # the Settings: topic names and the skew limit
        ledger_partitions: int,
        source: str,
        metrics: Any,
        wall_clock: Callable[[], float],
        on_untracked: Callable[[TicketTask, EngineEvent, str], None],
    ) -> None:
        self.loop = loop
        self.tasks = tasks
        self.topic_events: str = topics.topic_events
        self.topic_dlq: str = topics.topic_dlq
        self.topic_ledger_input: str = topics.topic_ledger_input
        self.output_topics: dict[str, str] = {
            "sla.warning": topics.topic_warnings,
            "sla.breach": topics.topic_breaches,
            "sla.completed": topics.topic_completions,
            "sla.cancelled": topics.topic_completions,
        }
        self.max_future_skew: float = topics.max_future_skew
        self.skew_us = int(topics.max_future_skew * US_PER_SECOND)
        self.ledger_partitions = ledger_partitions
        self.cloudevents_headers = CloudEventsHeaders(source)
        self.metrics = metrics
        self.wall_clock = wall_clock
        self.on_untracked = on_untracked
        self.events_seen: dict[str, int] = {}
        self.outputs_seen: dict[str, int] = {}
        self._outcome_headers: Headers = [OUTCOME_HEADER]

    # -- records ----------------------------------------------------------------------------

    def process_batch(self, messages: list[Message]) -> None:
        for message in messages:
            self.process(message)

    def process(self, message: Message) -> None:
        partition: int = message.partition()  # type: ignore[assignment]
        task = self.tasks.get(partition)
        if task is None:
            return  # not ours any more (revoked mid-batch)
        if message.topic() == self.topic_events:
            offset: int = message.offset()  # type: ignore[assignment]
            task.processed_offset = offset + 1
            self.on_event(task, message)
        else:
            self.on_tick(task, message)
        task.meta_dirty = True

    def on_event(self, task: TicketTask, message: Message) -> None:
        raw = message.value() or b""
        try:
            event = decode_record(raw, message.key())
            occurred = to_us(event.occurred_at)
            wall = int(self.wall_clock() * US_PER_SECOND)
            if occurred > wall + self.skew_us:
                raise Rejected(
                    "FutureEvent",
                    f"occurred_at {event.occurred_at.isoformat()} is more than "
                    f"{self.max_future_skew:g}s ahead of the worker's clock",
                )
            stage = task.stage
            counters = stage.counters
            duplicates, late = counters.duplicates, counters.late
            # only a creation can be untracked: no copy of the counts for other events
            creation = isinstance(event, TicketCreatedEvent)
            untracked = dict(counters.untracked) if creation else None
            outputs = stage.on_event(event, occurred)
            if counters.duplicates > duplicates:
                self.metrics.duplicate()
            else:
                kind = event.type
                seen = self.events_seen
                seen[kind] = seen.get(kind, 0) + 1
            if counters.late > late:
                self.metrics.late_event()
            if untracked is not None and counters.untracked != untracked:
                for reason, count in counters.untracked.items():
                    if count != untracked.get(reason):
                        self.on_untracked(task, event, reason)
                        break
        except Rejected as rejected:
            self.dead_letter(message, rejected)
            return
        if outputs:
            self.emit(outputs)

    def on_tick(self, task: TicketTask, message: Message) -> None:
        try:
            tick = Tick.decode(message.value() or b"")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.loop.unreadable_tick(task, message)
            return
        outputs = task.stage.on_tick(tick.now, tick.end_offset, processed_position(task))
        if outputs:
            self.emit(outputs)
        self.metrics.clock(task.partition, task.stage.clock, self.wall_clock())

    def emit(self, outputs: list[Output]) -> None:
        now = self.wall_clock()
        produce = self.loop.producer.produce
        outputs_seen = self.outputs_seen
        for output in outputs:
            kind: str = output["type"]
            value = encode_output(output)  # the same bytes for the output and the ledger
            if kind != GROUP_HOLD:  # a hold fact goes to the ledger only
                self.produce(
                    produce,
                    self.output_topics[kind],
                    value,
                    output_key(output),
                    self.cloudevents_headers(output),
                    -1,
                )
                outputs_seen[kind] = outputs_seen.get(kind, 0) + 1
            if kind == "sla.breach":
                at: str = output["at"]
                self.metrics.breach_delay(now - parse_instant(at) / US_PER_SECOND)
            if ledger_input(output):  # breaches and first met completions: compliance, credits
                # keyed by customer; a group's outcomes and hold facts by group, so one
                # ledger task owns each group's statements (docs/semantics.md: Groups)
                owner: str = output.get("group") or output["customer_id"]
                self.produce(
                    produce,
                    self.topic_ledger_input,
                    value,
                    owner.encode(),
                    self._outcome_headers,
                    ledger_partition(owner, self.ledger_partitions),
                )

    def produce(
        self,
        produce: Any,
        topic: str,
        value: bytes | None,
        key: bytes,
        headers: Headers | None,
        partition: int,
    ) -> None:
        """`TransactionalLoop.produce` with the producer's bound `produce` at hand (one
        attribute lookup per batch of outputs, not per record)."""
        while True:
            try:
                if partition < 0:
                    produce(topic, value, key, headers=headers)
                else:
                    produce(topic, value, key, partition=partition, headers=headers)
                return
            except BufferError:
                self.loop.producer.poll(0.05)

    def produce_changes(
        self, topic: str, partition: int, changes: list[tuple[str, bytes | None]]
    ) -> None:
        """A task's changelog records (ticket id, its state record, or None: deleted)."""
        produce = self.loop.producer.produce
        for ticket_id, value in changes:
            self.produce(produce, topic, value, ticket_id.encode(), None, partition)

    def dead_letter(self, message: Message, rejected: Rejected) -> None:
        self.metrics.rejected(rejected.error_class)
        topic: str = message.topic()  # type: ignore[assignment]
        partition: int = message.partition()  # type: ignore[assignment]
        offset: int = message.offset()  # type: ignore[assignment]
        self.loop.produce(
            self.topic_dlq,
            message.value(),
            key=message.key(),
            headers=dead_letter_headers(
                rejected.error_class, rejected.message, topic, partition, offset
            ),
        )
