"""The worker process: stage 1, the ledger and the clock ticker.

Contract changes are read by each processing loop on its own thread (no side thread
decides anything): see processors.live.contracts.

This is the one place where the live adapters are wired to the pure core.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from prometheus_client import Counter

from slaclock.client.librdkafka_log import with_logging
from slaclock.processors.broker import BrokerState, is_outage
from slaclock.processors.engine.availability import compile_services, ledger_availability_percent
from slaclock.processors.engine.instants import US_PER_SECOND
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.gc_tuning import tune_gc
from slaclock.processors.heap import release_free_heap
from slaclock.processors.live.http import StatusServer
from slaclock.processors.live.ledger import LedgerProcessor, ticket_sources
from slaclock.processors.live.metrics import Metrics
from slaclock.processors.live.policies import startup_policy
from slaclock.processors.live.records import Tick
from slaclock.processors.live.schedule import TickSchedule
from slaclock.processors.live.services import ServiceProcessor, service_ticker
from slaclock.processors.live.tickets import TicketProcessor
from slaclock.processors.live.txloop import TransactionalLoop
from slaclock.processors.settings import Settings
from slaclock.processors.topics import TopicError, services_partition_count, worker_partition_counts
from slaclock.schemas.policy import load_policy

log = logging.getLogger(__name__)


class Ticker:
    """Every `tick_interval`, one tick {now, end_offset} per owned input partition (docs/semantics.md: Time).

    With `timer_ticks`, it also ticks when the earliest pending timer of its partitions
    falls due (at its instant + grace), at most once per `TIMER_TICK_MIN_GAP`: a breach then
    waits only for processing, not for the next regular tick. Ticks stay data in the clock
    topic, so the extra ones change when outputs are emitted, never what they are.
    """

    RECHECK_S = 0.05  # how often the earliest due timer is looked at between ticks
    TIMER_TICK_MIN_GAP = 0.1  # extra ticks never come closer together than this
    DUE_MARGIN_S = 0.001  # tick a little after the instant, so `now - grace` has passed it

    def __init__(
        self,
        settings: Settings,
        owned: Callable[[], list[int]],
        wall_clock: Callable[[], float] = time.time,
        earliest_due: Callable[[], int | None] | None = None,
        broker: BrokerState | None = None,
    ) -> None:
        self.settings = settings
        self.owned = owned
        self.wall_clock = wall_clock
        self.earliest_due = earliest_due if settings.timer_ticks else None
        self.broker = broker or BrokerState(settings.bootstrap_servers)
        base = {
            **with_logging(settings.kafka_config()),
            "error_cb": self.broker.error_callback("ticker"),
        }
        self._producer_config = {**base, "enable.idempotence": True, "linger.ms": 0}
        self.producer = Producer(self._producer_config)
        self.offsets = Consumer({**base, "group.id": f"{settings.app_id}-ticker"})
        # after a broker outage, no tick until `grace` has passed since its end (`held`)
        self._outages_seen = self.broker.outages
        self._hold_until = 0.0

    def run(self, stop: threading.Event) -> None:
        try:
            scheduler = TickSchedule(
                self.settings.tick_interval,
                self.settings.grace,
                self.wall_clock(),
                self.TIMER_TICK_MIN_GAP,
                self.DUE_MARGIN_S,
            )
            while True:
                due = self.earliest_due() if self.earliest_due is not None else None
                wait = scheduler.wait(self.wall_clock(), due)
                if self.earliest_due is not None:
                    wait = min(wait, self.RECHECK_S)
                if stop.wait(wait):
                    break
                if scheduler.should_tick(self.wall_clock()):
                    self.tick_once()
        finally:
            try:
                self.producer.flush(5)
                self.offsets.close()
            except KafkaException as error:
                log.warning("ticker: closing: %s", error)

    def tick_once(self) -> None:
        """One tick per owned partition; while the broker is away, none (and no crash).

        Ticks are only ever produced after the broker answered for the end offset, so
        no pile of stale ticks waits in the producer for the broker's return.
        """
        try:
            self._tick()
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            if isinstance(kafka_error, KafkaError) and kafka_error.fatal():
                # the idempotent producer cannot go on (e.g. its records timed out in a
                # long outage): ticks are idempotent data, a new producer simply goes on
                log.warning("ticker: producer failed (%s); using a new one", kafka_error.str())
                self.producer = Producer(self._producer_config)
            elif is_outage(error):
                self.broker.down("ticker", error)
            else:
                raise
        except BufferError as error:  # the local queue is full: the broker is not taking it
            self.broker.down("ticker", error)

    def _tick(self) -> None:
        owned = self.owned()
        if not owned and not self.broker.is_up:
            # nothing to tick, but someone must notice the broker's return (/ready)
            self.offsets.list_topics(self.settings.topic_events, timeout=2)
            self.broker.up()
        for partition in owned:
            now = int(
                self.wall_clock() * US_PER_SECOND
            )  # before the end offset, see docs/semantics.md: Time
            _, high = self.offsets.get_watermark_offsets(
                TopicPartition(self.settings.topic_events, partition), timeout=5, cached=False
            )
            self.broker.up()
            if self.held():
                return
            tick = Tick(now, high)
            self.producer.produce(self.settings.topic_clock, tick.encode(), partition=partition)
        self.producer.poll(0)

    def held(self) -> bool:
        """Whether ticks wait because the broker has just come back.

        During an outage publishers keep their events in their own buffers; they land in
        the input only after the broker's return. A tick right after the return would move
        the clock to `now - grace` past events still on their way, which would then be
        late (applied at the clock, docs/semantics.md: Late events) and differ from the
        replay. So after any outage this worker saw, the clock waits `grace` seconds from
        the broker's return: what publishers buffered has then the same `grace` to land
        as an event published in normal operation.
        """
        now = self.wall_clock()
        if self.broker.outages != self._outages_seen:
            self._outages_seen = self.broker.outages
            self._hold_until = now + self.settings.grace
            log.info(
                "ticker: the broker is back; the clock waits %.1f s (grace) for the events "
                "publishers held during the outage",
                self.settings.grace,
            )
        return now < self._hold_until


class StartupError(RuntimeError):
    """The worker cannot start as configured; the message is one line saying what to fix."""


def partition_counts(settings: Settings) -> tuple[int, int]:
    """(input partitions, ledger partitions), once the topics are checked (see
    `worker_partition_counts`); `StartupError` if they are missing or disagree."""
    try:
        return worker_partition_counts(settings)
    except TopicError as error:
        raise StartupError(str(error)) from None


class Worker:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        events_partitions, ledger_partitions = partition_counts(settings)
        # the rules run only as the log holds them: the first version comes from
        # sla.policies, the file must be a recorded version (PolicyLogError otherwise)
        first = startup_policy(settings, load_policy(settings.policy_path))
        self.policy = compile_policy(first)
        self.tickets = TicketProcessor(
            settings, self.policy, ledger_partitions, self.metrics, wall_clock
        )
        self.ledger = LedgerProcessor(
            settings,
            self.policy,
            events_partitions,
            self.metrics,
            ledger_partitions=ledger_partitions,
        )
        # one view of the broker for every component: /ready and slaclock_broker_up
        self.broker = BrokerState(settings.bootstrap_servers)
        self.tickets.broker = self.broker
        self.ledger.broker = self.broker
        self.metrics.broker_up.set_function(lambda: 1.0 if self.broker.is_up else 0.0)
        self._count_abandoned_calls(self.tickets, self.ledger)
        self.ticker = Ticker(
            settings,
            self.tickets.owned_partitions,
            wall_clock,
            self.tickets.earliest_due,
            broker=self.broker,
        )
        # service availability: its own stage and ticker, when the policy has services
        self.services: ServiceProcessor | None = None
        self.service_ticker: Ticker | None = None
        services = compile_services(first)
        if services:
            try:
                service_partitions = services_partition_count(settings)
            except TopicError as error:
                raise StartupError(str(error)) from None
            service_sources = [f"services/{p}" for p in range(service_partitions)]
            self.services = ServiceProcessor(
                settings,
                services,
                ledger_partitions,
                self.metrics,
                wall_clock,
                # every input settles the earliest input instant (quiet services)
                sources=[*ticket_sources(events_partitions), *service_sources],
                partitions=service_partitions,
                policy=self.policy,
            )
            self.tickets.services_clock_partitions = service_partitions
            # the ledger waits for the services' clocks too, and credits their reports
            self.ledger.sources.extend(service_sources)
            self.ledger.availability_percent = ledger_availability_percent(services)
            self.services.broker = self.broker
            self._count_abandoned_calls(self.services)
            self.service_ticker = service_ticker(
                settings,
                self.services.owned_partitions,
                wall_clock,
                self.services.earliest_due,
                self.broker,
            )
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.threads: list[threading.Thread] = []

    def _guard(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
        def run() -> None:
            try:
                target(self.stop)
            except BaseException as error:  # a dead component must stop the whole worker
                log.exception("%s crashed", name)
                self.failure = error
                self.stop.set()

        return threading.Thread(target=run, name=name, daemon=True)

    def run(self) -> int:
        threads = [
            self._guard("tickets", self.tickets.run),
            self._guard("ledger", self.ledger.run),
            self._guard("ticker", self.ticker.run),
        ]
        if self.services is not None and self.service_ticker is not None:
            threads += [
                self._guard("services", self.services.run),
                self._guard("services-ticker", self.service_ticker.run),
            ]
        self.threads = threads  # read by the HTTP server's /health
        # Bound before any thread starts: a taken port fails the worker at once.
        http = StatusServer(self) if self.settings.http_port else None
        tune_gc()  # start-up done: freeze it, and collect cycles less often (gc_tuning)
        for thread in threads:
            thread.start()
        if http is not None:
            http.start()
        trim_every = self.settings.heap_trim_interval
        next_trim = time.monotonic() + trim_every
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(0.2)
                if trim_every > 0 and time.monotonic() >= next_trim:
                    release_free_heap()  # what the stage threads' arenas freed (heap.py)
                    next_trim = time.monotonic() + trim_every
        except KeyboardInterrupt:
            self.stop.set()
            for thread in threads:
                thread.join(30)
        finally:
            if http is not None:
                http.stop()
        return 1 if self.failure is not None else 0

    def _count_abandoned_calls(self, *loops: TransactionalLoop) -> None:
        for loop in loops:
            counter = self.metrics.abandoned_calls.labels(loop.name)

            def count(what: str, counter: Counter = counter) -> None:
                counter.inc()

            loop.on_abandoned = count

    @property
    def broker_up(self) -> bool:
        """Whether the broker answers, as the worker's components last saw it."""
        return self.broker.is_up

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
