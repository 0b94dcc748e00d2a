"""A consume-process-produce loop with Kafka transactions and a changelog-backed state.

Each batch of input records is processed and then, in ONE transaction: the outputs, the
changed state records (to a compacted changelog topic, partition = task partition) and
the consumer offsets (`send_offsets_to_transaction`, KIP-447 group-metadata fencing).
A worker killed at any instant therefore leaves either all or nothing of a batch.

On (re)assignment a task's state is rebuilt from its changelog partition (read_committed)
before any of its input is processed. If a transaction fails, it is aborted and every
assigned task is rewound: state rebuilt from the changelog, consumer seeked to the
committed offsets.

Why not faust's `exactly_once`: see README "Exactly-once" (pre-KIP-447 producer per
partition, open upstream reports of duplicates after a kill); this loop is measured by
the SIGKILL tests instead of trusted.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from processors.live.testcrash import AFTER_COMMITS, BETWEEN_PRODUCE_AND_COMMIT, CrashPoint
from slaclock.settings import Settings

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]

RESTORE_TIMEOUT_S = 120.0


class TransactionalLoop(ABC):
    """Subclasses hold per-task state and implement the hooks below."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        input_topics: list[str],
        task_topic: str,
        changelog_topic: str,
    ) -> None:
        self.settings = settings
        self.name = name
        self.input_topics = input_topics
        self.task_topic = task_topic  # the topic whose partitions define the tasks
        self.changelog_topic = changelog_topic
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self.assigned: set[int] = set()
        self.assigned_lock = threading.Lock()
        self.ready = threading.Event()  # set once the first assignment is restored
        group = f"{settings.app_id}-{name}"
        member = f"{settings.instance_id}-{name}"
        base = settings.kafka_config()
        consumer_config: dict[str, Any] = {
            **base,
            "group.id": group,
            "group.instance.id": member,  # static membership: a restart keeps the slot
            "session.timeout.ms": 10_000,
            "partition.assignment.strategy": "range",  # co-partitions equal-sized topics
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
        }
        if settings.http_url is not None:
            # Peers find the owner of a partition (and its URL) in the group description:
            # GET /tickets/{id} on a worker that does not own the ticket redirects there.
            consumer_config["client.id"] = settings.http_url
        self.consumer = Consumer(consumer_config)
        producer_config: dict[str, Any] = {
            **base,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",  # same key -> partition as Java clients
        }
        if self.exactly_once:
            producer_config["transactional.id"] = f"{settings.app_id}-{member}"
            producer_config["transaction.timeout.ms"] = 30_000
        self.producer = Producer(producer_config)
        self._restore_config = {
            **base,
            "group.id": f"{group}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
        self.clean_exit = False  # the loop stopped after a committed batch (not by an error)
        # TEST-ONLY kill switch (SLACLOCK_TEST_CRASH, see testcrash.py); None unless set
        self.test_crash = CrashPoint.from_env(name)

    # -- hooks --------------------------------------------------------------------------

    @abstractmethod
    def restore_task(
        self, partition: int, records: list[tuple[bytes, bytes]], warm: bool = False
    ) -> None:
        """Rebuild a task's state from its changelog records (latest value per key).

        `warm`: the task's local store is reused as it is, because its checkpoint is the
        changelog's end offset (see `warm_offset`); `records` is then empty.
        """

    def warm_offset(self, partition: int) -> int | None:
        """The changelog offset a task's warm local store reflects, None if it has none."""
        return None

    @abstractmethod
    def drop_task(self, partition: int) -> None:
        """Forget a task's in-memory state (revoked)."""

    @abstractmethod
    def process(self, message: Message) -> None:
        """Process one input record; produce outputs with `self.produce`."""

    @abstractmethod
    def flush_state(self) -> Iterable[tuple[int, bytes, bytes | None]]:
        """Changed state since the last call: (task partition, key, value or None)."""

    def before_batch(  # noqa: B027 - an optional hook
        self, last_offsets: dict[tuple[str, int], int]
    ) -> None:
        """Called with each batch before its records are processed, with the offset of
        the batch's last record of each (topic, partition)."""

    def after_batch(self) -> None:  # noqa: B027 - an optional hook
        """Called after each batch's records, before the commit (e.g. to emit watermarks)."""

    # -- producing ----------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

    # -- assignment -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tasks = sorted({tp.partition for tp in partitions if tp.topic == self.task_topic})
        log.info("%s: assigned tasks %s", self.name, tasks)
        for task in tasks:
            checkpoint = self.warm_offset(task)
            if checkpoint is not None and self._changelog_end(task) == checkpoint:
                log.info(
                    "%s: task %d reuses its local store (changelog at %d)",
                    self.name,
                    task,
                    checkpoint,
                )
                self.restore_task(task, [], warm=True)
            else:
                if checkpoint is not None:
                    log.info("%s: task %d: local store is stale; full restore", self.name, task)
                self.restore_task(task, self._read_changelog(task))
        with self.assigned_lock:
            self.assigned.update(tasks)
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tasks = sorted({tp.partition for tp in partitions if tp.topic == self.task_topic})
        log.info("%s: revoked tasks %s", self.name, tasks)
        with self.assigned_lock:
            self.assigned.difference_update(tasks)
        for task in tasks:
            self.drop_task(task)

    def _changelog_end(self, partition: int) -> int:
        """The end offset of a task's changelog partition, as the broker has it now."""
        _, high = self.consumer.get_watermark_offsets(
            TopicPartition(self.changelog_topic, partition), timeout=10, cached=False
        )
        return int(high)

    def _read_changelog(self, partition: int) -> list[tuple[bytes, bytes]]:
        latest: dict[bytes, bytes] = {}
        restore = Consumer(self._restore_config)
        try:
            low, high = restore.get_watermark_offsets(
                TopicPartition(self.changelog_topic, partition), timeout=10
            )
            if high <= low:
                return []
            restore.assign([TopicPartition(self.changelog_topic, partition, OFFSET_BEGINNING)])
            deadline = time.monotonic() + RESTORE_TIMEOUT_S
            while True:
                # consume() waits its whole timeout unless it fills the batch: keep it
                # short, the position check below ends the loop at the end offset
                for message in restore.consume(num_messages=5000, timeout=0.05):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(error)
                    key = message.key()
                    if key is None:
                        continue
                    value = message.value()
                    if value is None:
                        latest.pop(key, None)
                    else:
                        latest[key] = value
                position = restore.position([TopicPartition(self.changelog_topic, partition)])
                if position[0].offset >= high:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"restoring {self.changelog_topic}[{partition}] did not reach offset {high}"
                    )
        finally:
            restore.close()
        return list(latest.items())

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if self.exactly_once:
            self.producer.init_transactions(30)  # fences and aborts a predecessor's open txn
        self.consumer.subscribe(
            self.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        max_batch = self.settings.max_batch
        try:
            while not stop.is_set():
                messages = [m for m in self._next_batch(max_batch) if self._keep(m)]
                if not messages:
                    self.idle()
                    continue
                self._process_batch(messages)
            self.clean_exit = True
        finally:
            self.close()

    def _next_batch(self, max_batch: int) -> list[Message]:
        """Wait up to `commit_interval` for one record, then take what else is queued.

        `consume(n, timeout)` alone would wait its whole timeout for a batch that does not
        fill: every record (a tick that fires a breach, too) would sit up to
        `commit_interval` before its processing starts. Under load the queue is full and
        the batches are as large as before.
        """
        first = self.consumer.poll(self.settings.commit_interval)
        if first is None:
            return []
        if max_batch == 1:
            return [first]
        return [first, *self.consumer.consume(num_messages=max_batch - 1, timeout=0)]

    def idle(self) -> None:  # noqa: B027 - an optional hook
        """Called when a poll returned nothing."""

    def _keep(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() == KafkaError._PARTITION_EOF:
            return False
        if error.fatal():
            raise KafkaException(error)
        log.warning("%s: consumer error %s", self.name, error)
        return False

    def _process_batch(self, messages: list[Message]) -> None:
        if self.exactly_once:
            self.producer.begin_transaction()
        try:
            # A batch holds each partition's records in offset order: the last one wins.
            # (Records without errors always have these set: no None checks per record.)
            last_offsets: dict[tuple[str, int], int] = {
                (m.topic(), m.partition()): m.offset()  # type: ignore[misc]
                for m in messages
            }
            self.before_batch(last_offsets)
            for message in messages:
                self.process(message)
            self.after_batch()
            for partition, key, value in self.flush_state():
                self.produce(self.changelog_topic, value, key=key, partition=partition)
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last_offsets.items()]
            if self.exactly_once:
                self.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), 30
                )
                if self.test_crash is not None:  # test-only
                    self.test_crash.reached(BETWEEN_PRODUCE_AND_COMMIT, self.producer)
                self.producer.commit_transaction(30)
            else:
                self.producer.flush(30)
                self.consumer.commit(offsets=offsets, asynchronous=False)
            if self.test_crash is not None:  # test-only
                self.test_crash.reached(AFTER_COMMITS, self.producer)
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            if self.exactly_once and getattr(kafka_error, "txn_requires_abort", lambda: False)():
                log.warning("%s: transaction aborted (%s); rewinding", self.name, kafka_error)
                self.producer.abort_transaction(30)
                self._rewind()
                return
            raise

    def _rewind(self) -> None:
        """After an abort: rebuild every task from its changelog and seek to committed."""
        assignment = self.consumer.assignment()
        with self.assigned_lock:
            tasks = sorted(self.assigned)
        for task in tasks:
            self.drop_task(task)
            self.restore_task(task, self._read_changelog(task))
        committed = self.consumer.committed(assignment, timeout=30)
        for tp in committed:
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            self.consumer.seek(tp)

    def close(self) -> None:
        try:
            self.consumer.close()
        finally:
            self.producer.flush(10)
