"""Contract changes from the `sla.contracts` topic into a processing loop's `ContractBook`.

Each processing loop (stage 1, the ledger) owns one follower and calls `catch_up()` on its
own thread before it processes a batch: it reads every partition of the topic up to the
end offsets of that moment. A contract published (acknowledged) before an event is
therefore in the book before that event is processed (one acknowledged within the last
second or so: as soon as the consumer has fetched it, usually milliseconds). Each
record takes effect at its `effective_at`, never before the record's own timestamp (the
book's rule), so a record read late changes no decision made for an earlier instant and a
restarted worker, reading the same log, builds the same book.

Invalid records are logged and skipped (the topic is compacted and owned by whoever
manages contracts; a dead-letter copy would be overwritten by compaction anyway).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from pydantic import ValidationError

from slaclock.client.librdkafka_log import with_logging
from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.settings import Settings
from slaclock.schemas.policy import parse_contract
from slaclock.schemas.rejection import Rejected

log = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S = 10.0
FRESH_EVERY_S = 1.0


class ContractsFollower:
    """Reads a compacted topic of versions to its end on the loop's thread (`catch_up`).

    Subclasses read another topic the same way by passing `topic` and `kind` and
    overriding `_apply` (policy versions: `processors.live.policies`).
    """

    def __init__(
        self,
        settings: Settings,
        book: ContractBook,
        name: str,
        topic: str | None = None,
        kind: str = "contracts",
    ) -> None:
        self.settings = settings
        self.book = book
        self.name = name
        self.kind = kind
        self.topic = settings.topic_contracts if topic is None else topic
        self.consumer = Consumer(
            {
                **with_logging(settings.kafka_config()),  # librdkafka log: Python logging
                "group.id": f"{settings.app_id}-{kind}-{name}",  # never commits
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
            }
        )
        # End offsets are asked on a consumer of their own: on the reading one, the request
        # queues behind its long-poll fetch (fetch.wait.max.ms, 500 ms a partition)
        self.offsets = Consumer(
            {
                **with_logging(settings.kafka_config()),
                "group.id": f"{settings.app_id}-{kind}-{name}-offsets",  # never joins
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.positions: dict[int, int] = {}
        self.checked_at = -FRESH_EVERY_S  # monotonic time of the last end-offset query
        self.applied = 0
        self.refused = 0

    def _partitions(self) -> list[int]:
        metadata = self.consumer.list_topics(self.topic, timeout=10)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return []
        return sorted(topic.partitions)

    def catch_up(self) -> int:
        """Apply the contract records published so far; returns how many were applied.

        The end offsets are asked of the broker at the first call and then at most every
        `FRESH_EVERY_S` (a round trip per partition: too dear before every batch); in
        between, what the consumer has already fetched is applied (it long-polls the topic,
        so a new record is usually here within milliseconds).
        """
        if not self.positions:
            partitions = self._partitions()
            if not partitions:
                return 0
            self.positions = {p: 0 for p in partitions}
            self.consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions]
            )
        now = time.monotonic()
        if now - self.checked_at < FRESH_EVERY_S:
            return self._drain()
        self.checked_at = now
        targets: dict[int, int] = {}
        for partition in self.positions:
            _, high = self.offsets.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10, cached=False
            )
            if high > self.positions[partition]:
                targets[partition] = high
        applied = 0
        while targets:
            message = self.consumer.poll(CATCH_UP_TIMEOUT_S)
            if message is None:
                log.warning(
                    "%s[%s]: no record within %.0fs", self.kind, self.name, CATCH_UP_TIMEOUT_S
                )
                break
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("%s[%s]: %s", self.kind, self.name, error)
                continue
            partition_or_none, offset_or_none = message.partition(), message.offset()
            assert partition_or_none is not None and offset_or_none is not None
            partition, offset = partition_or_none, offset_or_none
            self.positions[partition] = offset + 1
            if partition in targets and offset + 1 >= targets[partition]:
                del targets[partition]
            if self._apply(message.key(), message.value(), message.timestamp()[1]):
                applied += 1
            # records in a transaction's commit marker offset are never delivered: stop at
            # the position the consumer reports
            for tp in self.consumer.position(
                [TopicPartition(self.topic, p) for p in list(targets)]
            ):
                if tp.offset >= targets.get(tp.partition, 2**62):
                    del targets[tp.partition]
        self.applied += applied
        return applied

    def _drain(self) -> int:
        """Apply what the consumer has fetched already, without waiting."""
        applied = 0
        while True:
            message = self.consumer.poll(0)
            if message is None:
                break
            if message.error() is not None:
                continue
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                self.positions[partition] = offset + 1
            if self._apply(message.key(), message.value(), message.timestamp()[1]):
                applied += 1
        self.applied += applied
        return applied

    def _apply(self, key: bytes | None, value: bytes | None, timestamp_ms: int) -> bool:
        if key is None:
            return False
        customer = key.decode("utf-8", "replace")
        published = timestamp_ms * 1000 if timestamp_ms > 0 else 0
        try:
            contract = None if value is None else parse_contract(value)
            self.book.change(customer, contract, published)
        except ValidationError as error:
            self.refused += 1
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            log.warning("contracts: record for %r refused: %s", customer, problems)
            return False
        except Rejected as rejected:
            self.refused += 1
            log.warning("contracts: %s: %s", rejected.error_class, rejected.message)
            return False
        return True

    def close(self) -> None:
        try:
            self.consumer.close()
        finally:
            self.offsets.close()
