"""A consume-process-produce loop with Kafka transactions and a changelog-backed state.

Each batch of input records is processed and then, in ONE transaction: the outputs, the
changed state records (to a compacted changelog topic, partition = task partition) and
the consumer offsets (`send_offsets_to_transaction`, KIP-447 group-metadata fencing).
A worker killed at any instant therefore leaves either all or nothing of a batch.

On (re)assignment a task's state is rebuilt from its changelog partition (read_committed)
before any of its input is processed. If a transaction fails, it is aborted and every
assigned task is rewound: state rebuilt from the changelog, consumer seeked to the
committed offsets.

A broker outage is ridden out: every call that fails for want of a broker is retried
with backoff (`Backoff`) while `broker` (a `BrokerState`, shared by the worker's
components) reports the outage; librdkafka's transactional errors are handled as its
documentation asks (see `_process_batch`), and a producer made unusable by a fatal error
(fenced: the coordinator aborted our transaction after its timeout, bumping the epoch) is
replaced by a new one under the same transactional id. Whatever happened, the tasks are
then rewound to what was committed, so nothing is lost or applied twice.

Why not faust's `exactly_once`: see README "Exactly-once" (pre-KIP-447 producer per
partition, open upstream reports of duplicates after a kill); this loop is measured by
the SIGKILL tests instead of trusted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from slaclock.client.librdkafka_log import with_logging
from slaclock.processors.broker import Backoff, BrokerState, is_outage
from slaclock.processors.heap import release_free_heap
from slaclock.processors.live.testcrash import AFTER_COMMITS, BETWEEN_PRODUCE_AND_COMMIT, CrashPoint
from slaclock.processors.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

Headers = list[tuple[str, bytes]]

RESTORE_TIMEOUT_S = 120.0
RESTORE_READS = 1  # changelogs read ahead while a restore runs (`_changelogs`)
CALL_TIMEOUT_S = 10.0  # one attempt of a transactional call; retried while the broker is away
MAX_PRODUCER_RESETS = 5  # fatal producer errors in a row (no commit between) before giving up


CONSUMER_RESETS_WINDOW_S = 600.0  # more than MAX_CONSUMER_RESETS fences in this window: stop
MAX_CONSUMER_RESETS = 5
STUCK_AFTER_S = 3 * CALL_TIMEOUT_S  # a transactional call still running then is stuck
MAX_ABANDONED = 8  # producers left blocked in a call; one more and the worker exits
COMMITTED_TIMEOUT_S = 10.0  # one attempt to read the committed offsets in a rewind
COMMITTED_ATTEMPTS = 3  # then the consumer is replaced (a stale coordinator, see _rewind)


class ConsumerFailed(Exception):
    """The consumer hit a fatal error (fenced static member): it must be replaced."""


class CallStuck(Exception):
    """A transactional call did not return long after its own timeout: its producer is
    abandoned (see `TransactionalLoop._bounded`)."""


class TooManyAbandoned(RuntimeError):
    """More producers are blocked for good in librdkafka calls than `MAX_ABANDONED`: each
    holds its threads and buffers, so the worker exits for its supervisor to restart it."""


class Stopping(Exception):
    """A stop was asked while a call waited for the broker: leave without committing."""


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
        # shared with the worker's other components (the worker replaces it)
        self.broker = BrokerState(settings.bootstrap_servers)
        self.stop = threading.Event()  # the run's stop event, set by `run`
        self.producer_resets = 0  # fatal producer errors since the last commit
        self.stuck_calls = 0  # transactional calls abandoned (`_bounded`)
        self.abandoned: list[threading.Event] = []  # set when an abandoned call returns
        self.on_abandoned: Callable[[str], None] = lambda what: None  # a metric, by the worker
        self.outages_at_commit = 0  # the broker state's outage count at the last commit
        # This loop's clients lost their broker: the producer is replaced before its
        # next transaction (see `_replace_producer`).
        self.outage_seen = False
        self.fatal_error: KafkaError | None = None  # the producer's, from the error callback
        group = f"{settings.app_id}-{name}"
        member = f"{settings.instance_id}-{name}"
        base = {
            **with_logging(settings.kafka_config()),
            "error_cb": self._on_client_error,
        }
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
        self._consumer_config = consumer_config
        self.consumer_resets: list[float] = []  # when the consumer was replaced (monotonic)
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
        self._producer_config = producer_config
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

    def process_batch(self, messages: list[Message]) -> None:
        """Process a batch's records in order (`process` each, unless a subclass has a
        faster loop of its own)."""
        for message in messages:
            self.process(message)

    def produce_state_changes(self) -> None:
        """Produce the batch's changelog records (`flush_state`), in its order."""
        for partition, key, value in self.flush_state():
            self.produce(self.changelog_topic, value, key=key, partition=partition)

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

    # -- the broker --------------------------------------------------------------------------

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.outage_seen = True
        if error.fatal():
            self.fatal_error = error  # later calls only say _FATAL: this says why
        self.broker.error_callback(self.name)(error)

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, retried with backoff while it fails for want of a broker.

        Errors that are not an outage, and transactional errors that require an abort,
        are raised at once; so is `Stopping` when a stop is asked meanwhile.
        """
        backoff = Backoff()
        while True:
            try:
                result = call()
            except (KafkaException, TimeoutError) as error:
                kafka_error = _kafka_error(error)
                if kafka_error is not None and kafka_error.txn_requires_abort():
                    raise
                if not is_outage(error):
                    raise
                self.outage_seen = True
                self.broker.down(f"{self.name}: {what}", error)
            else:
                return result
            if self.stop.wait(backoff.step()):
                raise Stopping(what)

    # -- producing ----------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        extra: Any = headers  # the client's stubs want a list of optional values
        while True:
            try:
                if partition is None:
                    self.producer.produce(topic, value, key, headers=extra)
                else:
                    self.producer.produce(topic, value, key, partition=partition, headers=extra)
                return
            except BufferError:
                self.producer.poll(0.05)

    # -- assignment -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tasks = sorted({tp.partition for tp in partitions if tp.topic == self.task_topic})
        log.info("%s: assigned tasks %s", self.name, tasks)
        cold: list[int] = []
        for task in tasks:
            checkpoint = self.warm_offset(task)
            if (
                checkpoint is not None
                and self._retry("changelog end", partial(self._changelog_end, task)) == checkpoint
            ):
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
                cold.append(task)
        for task, records in self._changelogs(cold):
            self.restore_task(task, records)
        if cold:
            release_free_heap()  # the changelog records just decoded
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
        if tasks:
            release_free_heap()  # the tasks' state

    def _changelogs(self, tasks: list[int]) -> Iterator[tuple[int, list[tuple[bytes, bytes]]]]:
        """Each task's changelog records (`_read_changelog`), in the order of `tasks`.

        The next `RESTORE_READS` changelogs are read on a helper thread while the caller
        restores the task it was given: a read mostly waits for the broker's fetches
        (250,000 records: 2.5 s of wall time, 0.4 s of CPU), and the restore's Python
        overlaps them. At most that many tasks' records are held at once, besides the one
        being restored. (Four reads at once, alone, took half the time of four in a row;
        in a restarting worker, beside the restore, they were no faster and held 150 MiB
        more at the peak: BENCHMARKS.md section 5.)
        """
        if len(tasks) <= 1:
            for task in tasks:
                yield task, self._retry("restore", partial(self._read_changelog, task))
            return
        pool = ThreadPoolExecutor(
            max_workers=min(RESTORE_READS, len(tasks)), thread_name_prefix=f"{self.name}-changelog"
        )

        def read(task: int) -> Future[list[tuple[bytes, bytes]]]:
            return pool.submit(self._retry, "restore", partial(self._read_changelog, task))

        try:
            reads = [read(task) for task in tasks[:RESTORE_READS]]
            for i, task in enumerate(tasks):
                records = reads[i].result()
                reads[i] = Future()  # its records are the caller's now
                if i + RESTORE_READS < len(tasks):
                    reads.append(read(tasks[i + RESTORE_READS]))
                yield task, records
                del records
        finally:
            # a read still running ends by itself (its timeout, or the stop event)
            pool.shutdown(wait=False, cancel_futures=True)

    def _changelog_end(self, partition: int) -> int:
        """The end offset of a task's changelog partition, as the broker has it now."""
        _, high = self.consumer.get_watermark_offsets(
            TopicPartition(self.changelog_topic, partition), timeout=10, cached=False
        )
        return int(high)

    def _read_changelog(self, partition: int) -> list[tuple[bytes, bytes]]:
        latest: dict[bytes, bytes] = {}
        started = time.monotonic()
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
        log.info(
            "%s: read %d changelog records of task %d in %.2f s",
            self.name,
            len(latest),
            partition,
            time.monotonic() - started,
        )
        return list(latest.items())

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.stop = stop
        try:
            if self.exactly_once:
                # fences and aborts a predecessor's open transaction
                self._retry("init transactions", self._init_transactions)
            self.consumer.subscribe(
                self.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            max_batch = self.settings.max_batch
            while not stop.is_set():
                try:
                    messages = [m for m in self._next_batch(max_batch) if self._keep(m)]
                except ConsumerFailed as failed:
                    self._replace_consumer(failed.args[0])
                    continue
                if not messages:
                    self.idle()
                    continue
                self._process_batch(messages)
            self.clean_exit = True
        except Stopping as stopping:
            log.warning("%s: stopped while waiting for Kafka (%s)", self.name, stopping)
        finally:
            self.close()

    def _init_transactions(self) -> None:
        self.producer.init_transactions(CALL_TIMEOUT_S)

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
        if error.fatal() or error.code() == KafkaError._FATAL:
            raise ConsumerFailed(error)
        if is_outage(error):
            self.broker.down(f"{self.name}: consume", error)
        else:
            log.warning("%s: consumer error %s", self.name, error)
        return False

    def _process_batch(self, messages: list[Message]) -> None:
        """Process a batch and commit it with its offsets, in one transaction.

        librdkafka's transactional errors (see `rd_kafka_commit_transaction`): a retriable
        one (a timeout: the broker is away) means call again, the commit may complete in
        the background; one that requires an abort (messages failed delivery, a fenced
        consumer generation, the coordinator aborted the transaction) means abort, and
        this batch is done again from what was committed; a fatal one (this producer was
        fenced) means the producer is unusable: a new one takes over (`_replace_producer`).
        A zombie cannot commit through this: its consumer generation is stale, so its
        offsets are refused (KIP-447) and its transaction must abort.
        """
        if self.exactly_once and self.outage_seen:
            self._replace_producer("the broker was away")
        try:
            if self.exactly_once:
                self.producer.begin_transaction()
            # A batch holds each partition's records in offset order: the last one wins.
            # (Records without errors always have these set: no None checks per record.)
            last_offsets: dict[tuple[str, int], int] = {
                (m.topic(), m.partition()): m.offset()  # type: ignore[misc]
                for m in messages
            }
            self.before_batch(last_offsets)
            self.process_batch(messages)
            self.after_batch()
            self.produce_state_changes()
            offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last_offsets.items()]
            if self.exactly_once:
                metadata = self.consumer.consumer_group_metadata()
                producer = self.producer
                self._retry(
                    "send offsets",
                    lambda: self._bounded(
                        "send offsets",
                        lambda: producer.send_offsets_to_transaction(
                            offsets, metadata, CALL_TIMEOUT_S
                        ),
                    ),
                )
                if self.test_crash is not None:  # test-only
                    self.test_crash.reached(BETWEEN_PRODUCE_AND_COMMIT, self.producer)
                self._retry(
                    "commit",
                    lambda: self._bounded(
                        "commit", lambda: producer.commit_transaction(CALL_TIMEOUT_S)
                    ),
                )
            else:
                self._retry("flush", self._flush_all)
                self._retry(
                    "commit offsets",
                    lambda: self.consumer.commit(offsets=offsets, asynchronous=False),
                )
            if self.test_crash is not None:  # test-only
                self.test_crash.reached(AFTER_COMMITS, self.producer)
        except KafkaException as error:
            try:
                self._recover(error)
            except CallStuck as stuck:
                self._abandon_producer(stuck)
            return
        except CallStuck as stuck:
            self._abandon_producer(stuck)
            return
        self.producer_resets = 0
        self.broker.up()
        self.outages_at_commit = self.broker.outages

    def _flush_all(self) -> None:
        if self.producer.flush(CALL_TIMEOUT_S) > 0:
            raise TimeoutError("records not acknowledged yet")

    def _recover(self, error: KafkaException) -> None:
        """After a failed batch: end the transaction, then rewind to what was committed.

        A transaction that failed for want of a broker is not aborted by this producer
        but by its successor's `init_transactions` (`_replace_producer`).
        """
        kafka_error = _kafka_error(error)
        if kafka_error is not None and kafka_error.code() == KafkaError._FATAL:
            # A call on a producer already failed says "Fatal error" only: the error the
            # client reported when it failed (its error callback, served by a poll) says
            # which, e.g. fenced after the broker aborted a transaction during a pause.
            try:
                self.producer.poll(0)
                self.producer.flush(0)  # raises the producer's fatal error, if it has one
            except KafkaException as flushed:
                cause = _kafka_error(flushed)
                if cause is not None and cause.fatal():
                    self.fatal_error = cause
            except RuntimeError:
                pass
            if self.fatal_error is not None:
                kafka_error = self.fatal_error
        if not self.exactly_once:
            if not is_outage(error):
                raise error
            self.broker.down(f"{self.name}: batch", error)
        elif kafka_error is not None and kafka_error.fatal():
            if (
                kafka_error.code() == KafkaError._FENCED
                and not self.outage_seen
                and self.broker.outages == self.outages_at_commit
            ):
                # Fenced with the broker there all along: a newer instance with our
                # transactional id took over (we are the zombie). Stop; never fence it back.
                paused = self.broker.pauses.pause_behind()
                if paused is None:
                    log.error(
                        "%s: fenced by a newer instance with transactional id %s; stopping",
                        self.name,
                        self._producer_config.get("transactional.id"),
                    )
                else:
                    # Or, after a pause longer than the transaction timeout, the broker
                    # aborted the open transaction: the same error. Stopping is right in
                    # both cases (a supervisor restarts a lone worker; a zombie must end).
                    log.error(
                        "%s: fenced after this process was paused for %.0f s: a newer "
                        "instance with transactional id %s took over, or the broker aborted "
                        "the transaction left open past its timeout; stopping",
                        self.name,
                        paused,
                        self._producer_config.get("transactional.id"),
                    )
                raise error
            self.producer_resets += 1
            if self.producer_resets > MAX_PRODUCER_RESETS:
                raise error
            self._replace_producer(f"fatal: {kafka_error.str()}")
        elif is_outage(error) or self.outage_seen:
            self._replace_producer(f"transaction abandoned: {error}")
        elif kafka_error is not None and kafka_error.txn_requires_abort():
            log.warning("%s: transaction aborted (%s); rewinding", self.name, kafka_error)
            try:
                producer = self.producer
                self._retry(
                    "abort",
                    lambda: self._bounded(
                        "abort", lambda: producer.abort_transaction(CALL_TIMEOUT_S)
                    ),
                )
            except KafkaException as abort_error:
                failed = _kafka_error(abort_error)
                if failed is None or not (failed.fatal() or is_outage(abort_error)):
                    raise
                self._replace_producer(f"abort failed: {failed.str()}")
        else:
            raise error
        self._retry("rewind", self._rewind)

    def _bounded(self, what: str, call: Callable[[], T]) -> T:
        """`call()` on a helper thread; `CallStuck` if it has not returned after
        `STUCK_AFTER_S`.

        librdkafka's transactional calls take a timeout, but `send_offsets_to_transaction`
        can block past it for good when the group coordinator it cached is gone after a
        broker restart (confluentinc/librdkafka#5456, #5511), and an abort or commit can
        block during a broker roll (#3779). The loop must not block with it: the caller
        abandons the producer (`_abandon_producer`), and a new one under the same
        transactional id fences it and aborts its transaction. The stuck call keeps its
        producer alive (it is never destroyed under a running call).
        """
        outcome: list[T] = []
        failure: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append(call())
            except BaseException as error:  # handed to the loop's thread
                failure.append(error)
            finally:
                done.set()

        threading.Thread(target=run, name=f"{self.name}: {what}", daemon=True).start()
        if not done.wait(STUCK_AFTER_S):
            self.stuck_calls += 1
            self.abandoned.append(done)
            raise CallStuck(what)
        if failure:
            raise failure[0]
        return outcome[0]

    def _abandon_producer(self, stuck: CallStuck) -> None:
        """After a stuck call: a new producer takes over, then rewind to what was committed.

        The abandoned producers whose call never returns are kept (a producer is never
        destroyed under a running call): past `MAX_ABANDONED` of them the worker exits.
        """
        self.on_abandoned(str(stuck))
        self.abandoned = [done for done in self.abandoned if not done.is_set()]
        if len(self.abandoned) > MAX_ABANDONED:
            log.error(
                "%s: %d abandoned producers are still blocked in Kafka client calls (at most "
                "%d are kept); exiting so that the supervisor restarts the worker with fresh "
                "clients",
                self.name,
                len(self.abandoned),
                MAX_ABANDONED,
            )
            raise TooManyAbandoned(f"{len(self.abandoned)} abandoned producers still blocked")
        self.broker.down(f"{self.name}: {stuck}", TimeoutError(f"{stuck} did not return"))
        self._replace_producer(
            f"{stuck} did not return within {STUCK_AFTER_S:.0f} s", purge_old=False
        )
        self._retry("rewind", self._rewind)

    def _replace_producer(self, reason: str, purge_old: bool = True) -> None:
        """A new transactional producer under the same transactional id.

        Its `init_transactions` fences the old one and aborts whatever transaction it left
        open. Used after a fatal producer error (fenced: e.g. the coordinator aborted our
        transaction when its timeout passed during an outage, bumping the epoch) and after
        every outage this loop saw: librdkafka can keep a decommissioned broker cached as
        the group coordinator after a restart, and `send_offsets_to_transaction` then
        blocks, its timeout ignored (confluentinc/librdkafka#5456, #5511). A fresh
        producer looks the coordinators up afresh. Fatal errors many times in a row
        without a commit (`MAX_PRODUCER_RESETS`) stop the worker (`_recover`).
        """
        log.warning(
            "%s: a new producer takes over transactional id %s (%s)",
            self.name,
            self._producer_config.get("transactional.id"),
            reason,
        )
        self.outage_seen = False
        self.fatal_error = None
        old, self.producer = self.producer, Producer(self._producer_config)
        if purge_old:  # not under a call that is still running on it
            with contextlib.suppress(KafkaException, RuntimeError):
                old.purge(in_queue=True, in_flight=True)
        del old
        self._retry("init transactions", self._init_transactions)

    def _replace_consumer(self, error: KafkaError) -> None:
        """Rejoin the group with a new consumer after a fatal consumer error.

        With static membership the broker fences a member when another join claims its
        `group.instance.id`. After a coordinator stall (a broker restart) that join can be
        this very consumer's own earlier, abandoned attempt (KAFKA-20985): a lone worker
        would stop for nothing. So a new consumer joins under the same instance id; its
        tasks are restored from their changelogs on assignment. Another live worker with
        the same `SLACLOCK_INSTANCE_ID` fences us again and again: after
        `MAX_CONSUMER_RESETS` in `CONSUMER_RESETS_WINDOW_S` the error is raised.
        """
        now = time.monotonic()
        self.consumer_resets = [
            t for t in self.consumer_resets if now - t < CONSUMER_RESETS_WINDOW_S
        ] + [now]
        if len(self.consumer_resets) > MAX_CONSUMER_RESETS:
            raise KafkaException(error)
        self._replace_consumer_for(
            f"consumer failed ({error.str()}); if this repeats, another worker may use "
            f"SLACLOCK_INSTANCE_ID={self.settings.instance_id}"
        )

    def _replace_consumer_for(self, reason: str) -> None:
        """Close the consumer, drop every task, and join the group with a new consumer;
        the tasks come back, restored from their changelogs, with its assignment."""
        log.warning("%s: rejoining the group with a new consumer (%s)", self.name, reason)
        old = self.consumer
        with contextlib.suppress(KafkaException, RuntimeError):
            old.close()
        with self.assigned_lock:
            tasks = sorted(self.assigned)
            self.assigned.clear()
        for task in tasks:
            self.drop_task(task)
        release_free_heap()  # the tasks' state
        self.consumer = Consumer(self._consumer_config)
        self.consumer.subscribe(
            self.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    def _rewind(self) -> None:
        """After an abort: rebuild every task from its changelog and seek to committed.

        The committed offsets come from the group coordinator. After a broker restart
        librdkafka can keep asking a coordinator that is gone (confluentinc/librdkafka#5456,
        #5511): `committed()` then times out however often it is retried. So after
        `COMMITTED_ATTEMPTS` timeouts the consumer is replaced instead: the new one looks
        the coordinator up afresh, and its assignment restores the tasks and starts from
        the committed offsets by itself. (A long outage leads there too; the new consumer
        is assigned once the broker is back, which restores the same way.)
        """
        assignment = self.consumer.assignment()
        committed: list[TopicPartition] | None = None
        for _ in range(COMMITTED_ATTEMPTS):
            try:
                committed = self.consumer.committed(assignment, timeout=COMMITTED_TIMEOUT_S)
                break
            except KafkaException as error:
                if not is_outage(error):
                    raise
                self.outage_seen = True
                self.broker.down(f"{self.name}: committed offsets", error)
                if self.stop.wait(1.0):
                    raise Stopping("committed offsets") from None
        if committed is None:
            self._replace_consumer_for(
                f"no committed offsets from the group coordinator in {COMMITTED_ATTEMPTS} tries"
            )
            return
        with self.assigned_lock:
            tasks = sorted(self.assigned)
        for task, records in self._changelogs(tasks):
            self.drop_task(task)
            self.restore_task(task, records)
        release_free_heap()  # the old state and the changelog records
        for tp in committed:
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            self.consumer.seek(tp)

    def close(self) -> None:
        try:
            self.consumer.close()
        except KafkaException as error:
            log.warning("%s: closing the consumer: %s", self.name, error)
        finally:
            try:
                self.producer.flush(10)
            except KafkaException as error:  # a fatal error: nothing left to deliver
                log.warning("%s: closing the producer: %s", self.name, error)


def _kafka_error(error: BaseException) -> KafkaError | None:
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return None
