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
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

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


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer


class ReadCommittedApp(faust.App):
    """A faust App whose consumer reads committed records only (see the module docstring)."""

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
