"""The worker process: stage 1, stage 2, the clock ticker and the contracts feed.

This is the one place where the live adapters are wired to the pure core.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError

from processors.engine.instants import US_PER_SECOND
from processors.engine.policy import CompiledPolicy, compile_policy
from processors.live.http import StatusServer
from processors.live.ledger import LedgerProcessor
from processors.live.metrics import Metrics
from processors.live.records import Tick
from processors.live.schedule import TickSchedule
from processors.live.tickets import TicketProcessor
from schemas.policy import load_policy, parse_contract
from slaclock.settings import Settings

log = logging.getLogger(__name__)


class Ticker:
    """Every `tick_interval`, one tick {now, end_offset} per owned input partition (SPEC 7).

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
    ) -> None:
        self.settings = settings
        self.owned = owned
        self.wall_clock = wall_clock
        self.earliest_due = earliest_due if settings.timer_ticks else None
        base = settings.kafka_config()
        self.producer = Producer({**base, "enable.idempotence": True, "linger.ms": 0})
        self.offsets = Consumer({**base, "group.id": f"{settings.app_id}-ticker"})

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
            self.producer.flush(5)
            self.offsets.close()

    def tick_once(self) -> None:
        for partition in self.owned():
            now = int(self.wall_clock() * US_PER_SECOND)  # before the end offset, see SPEC 7
            _, high = self.offsets.get_watermark_offsets(
                TopicPartition(self.settings.topic_events, partition), timeout=5, cached=False
            )
            tick = Tick(now, high)
            self.producer.produce(self.settings.topic_clock, tick.encode(), partition=partition)
        self.producer.poll(0)


class ContractsFeed:
    """Follows the compacted `sla.contracts` topic into the policy's contract table."""

    def __init__(self, settings: Settings, policy: CompiledPolicy) -> None:
        self.settings = settings
        self.policy = policy
        self.seed = dict(policy.contracts)
        self.consumer = Consumer(
            {
                **settings.kafka_config(),
                "group.id": f"{settings.app_id}-contracts",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )

    def run(self, stop: threading.Event) -> None:
        metadata = self.consumer.list_topics(self.settings.topic_contracts, timeout=10)
        topic = metadata.topics.get(self.settings.topic_contracts)
        if topic is None or topic.error is not None:
            log.warning(
                "contracts topic %s unavailable; using the policy file's contracts only",
                self.settings.topic_contracts,
            )
            return
        self.consumer.assign(
            [
                TopicPartition(self.settings.topic_contracts, p, OFFSET_BEGINNING)
                for p in topic.partitions
            ]
        )
        try:
            while not stop.is_set():
                message = self.consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("contracts: %s", error)
                    continue
                self.apply(message.key(), message.value())
        finally:
            self.consumer.close()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        customer = key.decode()
        if value is None:
            self.policy.contracts.pop(customer, None)
            if customer in self.seed:
                self.policy.contracts[customer] = self.seed[customer]
            return
        try:
            contract = parse_contract(value)
        except ValidationError as error:
            log.warning("contracts: invalid contract for %s ignored: %s", customer, error)
            return
        if contract.tier not in self.policy.tiers:
            log.warning("contracts: contract for %s names unknown tier %s", customer, contract.tier)
            return
        self.policy.with_contract(customer, contract)


def partition_count(settings: Settings, topic: str) -> int:
    admin = AdminClient(settings.kafka_config())
    metadata = admin.list_topics(topic, timeout=15)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise RuntimeError(f"topic {topic!r} does not exist; run `slaclock topics create` first")
    return len(found.partitions)


class Worker:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.policy = compile_policy(load_policy(settings.policy_path))
        events_partitions = partition_count(settings, settings.topic_events)
        ledger_partitions = partition_count(settings, settings.topic_ledger_input)
        self.tickets = TicketProcessor(
            settings, self.policy, ledger_partitions, self.metrics, wall_clock
        )
        self.ledger = LedgerProcessor(settings, self.policy, events_partitions, self.metrics)
        self.ticker = Ticker(
            settings, self.tickets.owned_partitions, wall_clock, self.tickets.earliest_due
        )
        self.contracts = ContractsFeed(settings, self.policy)
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
            self._guard("contracts", self.contracts.run),
            self._guard("tickets", self.tickets.run),
            self._guard("ledger", self.ledger.run),
            self._guard("ticker", self.ticker.run),
        ]
        self.threads = threads  # read by the HTTP server's /health
        # Bound before any thread starts: a taken port fails the worker at once.
        http = StatusServer(self) if self.settings.http_port else None
        for thread in threads:
            thread.start()
        if http is not None:
            http.start()
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            for thread in threads:
                thread.join(30)
        finally:
            if http is not None:
                http.stop()
        return 1 if self.failure is not None else 0

    def install_signal_handlers(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
