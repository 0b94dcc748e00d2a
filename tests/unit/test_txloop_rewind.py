"""The transactional loop's rewind when the group coordinator does not answer.

After a broker restart librdkafka can keep asking a coordinator that is gone, and
`committed()` then times out every time. The rewind must not retry that forever: after a
few timeouts it joins the group with a new consumer, whose assignment restores the tasks
and starts from the committed offsets. No broker is needed: the consumer that stands in
for the stuck one answers as librdkafka does then, and the loop's own clients never
connect (their bootstrap address is a port nobody listens on).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from slaclock.local_kafka import free_port
from slaclock.processors.live import txloop
from slaclock.processors.live.txloop import TransactionalLoop
from slaclock.processors.settings import load_settings


class RecordingLoop(TransactionalLoop):
    """Tasks are partition numbers; restoring and dropping is recorded."""

    def __init__(self) -> None:
        settings = load_settings(bootstrap_servers=f"127.0.0.1:{free_port()}", app_id="rewind")
        super().__init__(settings, "tickets", ["in"], "in", "changelog")
        self.stop = threading.Event()
        self.events: list[str] = []

    def restore_task(
        self, partition: int, records: list[tuple[bytes, bytes]], warm: bool = False
    ) -> None:
        self.events.append(f"restore {partition}")

    def warm_offset(self, partition: int) -> int | None:
        return None

    def drop_task(self, partition: int) -> None:
        self.events.append(f"drop {partition}")

    def process(self, message: Message) -> None:
        raise AssertionError("no records in this test")

    def flush_state(self) -> Iterable[tuple[int, bytes, bytes | None]]:
        return []

    def _read_changelog(self, partition: int) -> list[tuple[bytes, bytes]]:
        return []


class CoordinatorGone:
    """A consumer whose `committed()` times out `failures` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.committed_calls = 0
        self.seeks: list[tuple[str, int, int]] = []
        self.closed = False

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("in", 0), TopicPartition("in", 1)]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.committed_calls += 1
        if self.committed_calls <= self.failures:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out"))
        return [TopicPartition("in", 0, 42), TopicPartition("in", 1, -1001)]

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.topic, partition.partition, partition.offset))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> RecordingLoop:
    monkeypatch.setattr(txloop, "COMMITTED_TIMEOUT_S", 0.01)
    made = RecordingLoop()
    made.assigned = {0, 1}
    return made


def test_rewind_seeks_to_committed_offsets_once_the_coordinator_answers(
    loop: RecordingLoop,
) -> None:
    stuck = CoordinatorGone(failures=txloop.COMMITTED_ATTEMPTS - 1)
    loop.consumer = stuck  # type: ignore[assignment]
    loop._rewind()
    assert loop.consumer is stuck and not stuck.closed
    assert loop.events == ["drop 0", "restore 0", "drop 1", "restore 1"]
    # no committed offset yet: from the beginning (OFFSET_BEGINNING is -2)
    assert stuck.seeks == [("in", 0, 42), ("in", 1, -2)]


def test_rewind_rejoins_with_a_new_consumer_when_the_coordinator_never_answers(
    loop: RecordingLoop,
) -> None:
    stuck = CoordinatorGone(failures=10**6)
    loop.consumer = stuck  # type: ignore[assignment]
    loop._rewind()
    assert stuck.committed_calls == txloop.COMMITTED_ATTEMPTS
    assert stuck.closed and stuck.seeks == []
    assert isinstance(loop.consumer, Consumer)
    # the tasks were dropped, not restored: the new consumer's assignment restores them
    assert loop.events == ["drop 0", "drop 1"] and loop.assigned == set()
    assert loop.outage_seen  # the producer is replaced before the next transaction
    loop.consumer.close()


class SendOffsetsNeverReturns:
    """A transactional producer whose `send_offsets_to_transaction` blocks past its timeout
    for good, as librdkafka's does with a stale group coordinator (#5456, #5511)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.committed = False

    def begin_transaction(self) -> None:
        pass

    def produce(self, *args: object, **kwargs: object) -> None:
        pass

    def send_offsets_to_transaction(self, *args: object) -> None:
        self.release.wait()

    def commit_transaction(self, timeout: float) -> None:
        self.committed = True


class FakeMessage:
    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


def test_a_transactional_call_stuck_past_its_timeout_abandons_the_producer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(txloop, "STUCK_AFTER_S", 0.2)
    loop = RecordingLoop()
    assert loop.exactly_once
    loop.process = lambda message: None  # type: ignore[method-assign]
    initialised: list[object] = []
    loop._init_transactions = lambda: initialised.append(loop.producer)  # type: ignore[method-assign]
    rewinds: list[object] = []
    loop._rewind = lambda: rewinds.append(loop.producer)  # type: ignore[method-assign]
    abandoned: list[str] = []
    loop.on_abandoned = abandoned.append
    stuck = SendOffsetsNeverReturns()
    loop.producer = stuck  # type: ignore[assignment]
    try:
        loop._process_batch([FakeMessage()])  # type: ignore[list-item]
        # a new producer under the same transactional id took over (fencing the stuck
        # one), nothing was committed, and the tasks were rewound to what was committed
        assert loop.producer is not stuck and initialised == [loop.producer]
        assert not stuck.committed
        assert rewinds == [loop.producer]
        assert loop.stuck_calls == 1 and abandoned == ["send offsets"]
        assert not loop.broker.is_up
    finally:
        stuck.release.set()
        loop.consumer.close()


@pytest.mark.parametrize("reads", [1, 2])
def test_changelogs_read_at_once_come_back_in_task_order_each_with_its_own_records(
    loop: RecordingLoop, monkeypatch: pytest.MonkeyPatch, reads: int
) -> None:
    """A restore reads several changelogs at once (`RESTORE_READS`), slow ones and fast
    ones; each task still gets its own records, in the order asked, and never more
    reads run at once than allowed."""
    monkeypatch.setattr(txloop, "RESTORE_READS", reads)
    running: list[int] = []
    most = 0
    lock = threading.Lock()

    def read(partition: int) -> list[tuple[bytes, bytes]]:
        nonlocal most
        with lock:
            running.append(partition)
            most = max(most, len(running))
        threading.Event().wait(0.05 if partition % 2 else 0.01)
        with lock:
            running.remove(partition)
        return [(b"key", str(partition).encode())]

    loop._read_changelog = read  # type: ignore[method-assign]
    tasks = [3, 1, 2, 0, 5, 4]
    got = [(task, records) for task, records in loop._changelogs(tasks)]
    assert got == [(task, [(b"key", str(task).encode())]) for task in tasks]
    assert most == reads
