"""faust's aiokafka driver, reading committed records only.

faust-streaming 0.15 opens its worker consumer with `isolation_level="read_committed"` only
when the app runs in a transaction (`processing_guarantee="exactly_once"`, checked in
`AIOKafkaConsumerThread._create_worker_consumer` through `consumer.in_transaction`), and
`read_uncommitted` otherwise. The notifier runs at-least-once (faust's exactly-once is not
trustworthy, and delivery to HTTP cannot be transactional anyway), so stock faust would
read records of transactions that are still open or were aborted, and notify about outputs
that never happened.

The fix sits at the one place the consumer is built: a consumer thread whose
`_create_worker_consumer` takes faust's consumer and sets aiokafka's isolation level to
`read_committed` before it starts (aiokafka hands the level to its fetcher in `start()`),
and shortens faust's fixed 1500 ms fetch wait (see below),
wired in through a Transport whose `Consumer` uses that thread, and an App whose
`_new_transport` returns that Transport. `isolation_level(app)` reads the level back from
the running fetcher, so the status page shows what the broker is really asked for.

The same consumer fixes how faust positions and commits, which lost records across restarts:

- Positioning. faust seeks only the partitions that have a committed offset (and not even
  those at 0) once a rebalance's table recovery is done, and the fetcher runs during that
  recovery (upstream faust-streaming #216, #596): records it fetched and dropped in the
  meantime were skipped for good when the group had committed nothing yet. Here every
  output partition is positioned explicitly after each assignment: at its committed
  offset, else at the configured start (`consumer_auto_offset_reset`); a fetch for an empty
  set of partitions (which aiokafka answers with every partition's records) returns nothing.
- Committing. The offset committed for a partition comes from `OffsetLedger` (see
  `offsets.py`), fed by the agent: the lowest offset still being delivered, never past it.
- Dropping. faust drops records below the last offset it handed over, even after a seek
  back (`_NoReadOffsets`): nothing is dropped here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, TransportT

from slaclock.processors.notify.offsets import OffsetLedger

READ_COMMITTED = "read_committed"
FETCH_MAX_WAIT_MS = 100


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Not started yet: the fetcher (created in start()) takes this level.
        consumer._isolation_level = READ_COMMITTED
        # faust fixes the broker-side wait of a fetch at 1500 ms; with it, committed outputs
        # often waited up to that long (benchmarks/notify_bench.py at 200 outputs/s: p99
        # 1.6-1.8 s, against 0.12-0.23 s with 100 ms). A fetch that waits on the broker
        # seems not to be answered when a transaction's commit makes records readable.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        # faust passes its live set of active partitions, which a rebalance or the end of a
        # recovery can empty while aiokafka waits for data; aiokafka reads an empty set as
        # "every partition" and would hand over (and move past) records of paused ones.
        snapshot = set(active_partitions)
        if not snapshot:
            return {}
        return await super()._fetch_records(
            consumer, snapshot, timeout=timeout, max_records=max_records
        )

    async def position_streams(self) -> dict[TP, tuple[int | None, int | None]]:
        """Position every assigned output partition; (position, committed) per partition,
        (None, None) for the table's changelog partitions, which recovery positions."""
        return cast(
            dict[TP, tuple[int | None, int | None]],
            await self.call_thread(self._position_streams),
        )

    async def _position_streams(self) -> dict[TP, tuple[int | None, int | None]]:
        consumer = self._ensure_consumer()
        changelogs = self.app.tables.changelog_topics
        result: dict[TP, tuple[int | None, int | None]] = {}
        unstarted: list[Any] = []
        committed: dict[Any, int] = {}
        for tp in consumer.assignment():
            if tp.topic in changelogs:
                result[TP(tp.topic, tp.partition)] = (None, None)
                continue
            offset = await consumer.committed(tp)
            if offset is not None and offset >= 0:
                committed[tp] = offset
            else:
                unstarted.append(tp)
        starts: Mapping[Any, int] = {}
        if unstarted:
            latest = self.app.conf.consumer_auto_offset_reset == "latest"
            starts = await (
                consumer.end_offsets(unstarted) if latest else consumer.beginning_offsets(unstarted)
            )
        for tp, offset in [*committed.items(), *starts.items()]:
            consumer.seek(tp, offset)
            result[TP(tp.topic, tp.partition)] = (offset, committed.get(tp))
        return result


class _NoReadOffsets(dict[TP, int | None]):
    """faust's "read offsets", which remember nothing.

    faust drops a fetched record whose offset is below the last one it handed over on that
    partition ("DROPPED MESSAGE ROFF"), even after a seek back: a batch fetched before the
    seek that ends a rebalance and handed over after it (its records skipped by the stream
    while the flow was stopped) made the records read again from the committed offset look
    old; they were never delivered, and a later commit went past them. Here every record
    fetched is handed over: one read twice is delivered twice (same Idempotency-Key, or
    recognised in the delivered table), never dropped.
    """

    def __getitem__(self, tp: TP) -> int | None:
        return None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        pass


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _NoReadOffsets()

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def offsets(self) -> OffsetLedger:
        return cast(ReadCommittedApp, self.app).offsets

    async def perform_seek(self) -> None:
        """Position every output partition (see the module docstring) and start its ledger."""
        thread = cast(ReadCommittedConsumerThread, self._thread)
        for tp, (position, committed) in (await thread.position_streams()).items():
            if committed is not None:
                self._committed_offset[tp] = committed
            if position is not None:
                self.offsets.positioned(tp, position)

    def _new_offset(self, tp: TP) -> int | None:
        # faust's acknowledgement lists are not used (see offsets.py); emptied to stay small.
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        self._gap.pop(tp, None)
        return self.offsets.committable(tp)


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer


class ReadCommittedApp(faust.App):
    """A faust App whose consumer reads committed records only (see the module docstring)."""

    offsets: OffsetLedger

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offsets = OffsetLedger()

    def _new_transport(self) -> TransportT:
        return ReadCommittedTransport(self.conf.broker_consumer, self)


def isolation_level(app: faust.App) -> str | None:
    """The isolation level of the running consumer's fetcher; None before it started."""
    thread = getattr(app.consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    fetcher = getattr(client, "_fetcher", None)
    if fetcher is None:
        return None
    level = fetcher._isolation_level
    return READ_COMMITTED if level in (1, READ_COMMITTED) else "read_uncommitted"
