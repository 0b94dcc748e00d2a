"""Stage 2 on Kafka: breaches (keyed by customer) + stage-1 watermarks in, credits out.

A ledger task holds each customer's `CustomerLedger` and the latest clock of every
stage-1 partition. A breach is held until the minimum of those clocks has passed its
`decided_at`, then credited in key order (SPEC 5), so live and replay agree.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Message

from processors.engine.ledger import CreditLedger, CustomerLedger
from processors.engine.policy import CompiledPolicy
from processors.live.metrics import Metrics
from processors.live.records import (
    KIND_BREACH,
    KIND_WATERMARK,
    META_KEY,
    Watermark,
    cloudevents_headers,
    coordinates,
    encode_output,
    header_value,
)
from processors.live.txloop import TransactionalLoop
from slaclock.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LedgerTask:
    partition: int
    customers: dict[str, CustomerLedger] = field(default_factory=dict)
    watermarks: dict[int, int] = field(default_factory=dict)
    holding: set[str] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)
    meta_dirty: bool = False


class LedgerProcessor(TransactionalLoop):
    def __init__(
        self,
        settings: Settings,
        policy: CompiledPolicy,
        source_partitions: int,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(
            settings,
            "ledger",
            [settings.topic_ledger_input],
            settings.topic_ledger_input,
            settings.topic_ledger_changelog,
        )
        self.credit_ledger = CreditLedger(policy)
        self.source_partitions = source_partitions
        self.metrics = metrics or Metrics()
        self.tasks: dict[int, LedgerTask] = {}
        self.source = f"slaclock/{settings.app_id}"

    def restore_task(
        self, partition: int, records: list[tuple[bytes, bytes]], warm: bool = False
    ) -> None:
        task = LedgerTask(partition)  # in memory only: never warm
        for key, value in records:
            if key == META_KEY:
                meta = orjson.loads(value)
                task.watermarks = {int(p): int(c) for p, c in meta["watermarks"].items()}
            else:
                ledger = CustomerLedger.from_record(orjson.loads(value))
                task.customers[ledger.customer_id] = ledger
                if ledger.held:
                    task.holding.add(ledger.customer_id)
        self.tasks[partition] = task

    def drop_task(self, partition: int) -> None:
        self.tasks.pop(partition, None)

    def flush_state(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        for task in self.tasks.values():
            for customer in task.dirty:
                record = task.customers[customer].to_record()
                yield task.partition, customer.encode(), orjson.dumps(record)
            task.dirty.clear()
            if task.meta_dirty:
                meta = {"watermarks": {str(p): c for p, c in sorted(task.watermarks.items())}}
                yield task.partition, META_KEY, orjson.dumps(meta)
                task.meta_dirty = False

    def process(self, message: Message) -> None:
        task = self.tasks.get(coordinates(message)[1])
        if task is None:
            return
        kind = header_value(message.headers(), "kind")
        value = message.value() or b""
        if kind == KIND_BREACH:
            breach = orjson.loads(value)
            customer = breach["customer_id"]
            ledger = task.customers.get(customer)
            if ledger is None:
                ledger = task.customers[customer] = CustomerLedger(customer)
            self.credit_ledger.offer(ledger, breach)
            task.dirty.add(customer)
            if ledger.held:
                task.holding.add(customer)
        elif kind == KIND_WATERMARK:
            mark = Watermark.decode(value)
            if mark.clock > task.watermarks.get(mark.source_partition, -(2**62)):
                task.watermarks[mark.source_partition] = mark.clock
                task.meta_dirty = True

    def watermark(self, task: LedgerTask) -> int | None:
        """The minimum stage-1 clock, once every source partition has reported one."""
        if len(task.watermarks) < self.source_partitions:
            return None
        return min(task.watermarks.values())

    def after_batch(self) -> None:
        for task in self.tasks.values():
            watermark = self.watermark(task)
            if watermark is None or not task.holding:
                continue
            for customer in sorted(task.holding):
                ledger = task.customers[customer]
                for credit in self.credit_ledger.release(ledger, watermark):
                    self.produce(
                        self.settings.topic_credits,
                        encode_output(credit),
                        key=customer.encode(),
                        headers=cloudevents_headers(credit, self.source),
                    )
                    self.metrics.output("sla.credit")
                    task.dirty.add(customer)
                if not ledger.held:
                    task.holding.discard(customer)
