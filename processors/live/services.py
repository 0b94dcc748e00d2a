"""The services stage on Kafka: service events + clock ticks in, availability outputs out.

One task per partition of `services.events`; its partition of the services clock topic is
co-assigned. Every availability rule is in `ServiceStage` (the tick rule too); this adapter
decodes records, routes what comes out and keeps the changelog:
- outputs to `sla.availability` (key service_id) with CloudEvents headers;
- each `sla.availability_report` also to EVERY ledger partition (header kind
  `availability`): the ledger credits each customer whose contract lists the service;
- the task clocks as watermarks (source `services`) to every ledger partition, and to every
  other partition of the services clock topic;
- watermarks read from the services clock topic (header kind `watermark`: every ticket
  and services partition sends them) settle the earliest input instant, so the owner of a
  service's partition reports it even when the partition never saw an event
  (`ServiceStage.on_watermark`; docs/availability.md: Quiet services);
- rejected records to the dead-letter topic, as for tickets;
- changed service states and the task's meta record to the services changelog,
  all in the batch's transaction (exactly-once like stage 1).

The state is small (one record per service), so it is kept in memory and restored from
the changelog on assignment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import Message, TopicPartition

from slaclock.processors.engine.availability import REPORT, Output, ServicePolicy, ServiceState
from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import US_PER_SECOND, to_us
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.services_stage import ServiceStage
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.live.http import partition_for
from slaclock.processors.live.metrics import Metrics
from slaclock.processors.live.policies import PoliciesFollower
from slaclock.processors.live.records import (
    KIND_AVAILABILITY,
    KIND_WATERMARK,
    META_KEY,
    Tick,
    Watermark,
    cloudevents_headers,
    coordinates,
    dead_letter_headers,
    encode_output,
    header_value,
)
from slaclock.processors.live.txloop import TransactionalLoop
from slaclock.processors.services_intake import decode_service_event
from slaclock.processors.settings import Settings
from slaclock.schemas.rejection import Rejected

if TYPE_CHECKING:
    from slaclock.processors.broker import BrokerState
    from slaclock.processors.live.worker import Ticker

log = logging.getLogger(__name__)

SOURCE = "services"  # the ledger's name for these watermarks


class ServiceStore(dict[str, ServiceState]):
    """A dict that remembers which services were written since the last flush."""

    def __init__(self) -> None:
        super().__init__()
        self.dirty: set[str] = set()

    def __setitem__(self, key: str, value: ServiceState) -> None:
        super().__setitem__(key, value)
        self.dirty.add(key)


@dataclass
class ServiceTask:
    partition: int
    stage: ServiceStage
    store: ServiceStore = field(default_factory=ServiceStore)
    processed_offset: int = 0  # next offset of services.events to process
    position: int = 0  # consumer position at batch start
    last_in_batch: int = -1  # highest services.events offset of this task in the batch
    clock_sent: int | None = None
    meta_dirty: bool = False
    # for readers on other threads (HTTP): each service's record as of the last committed
    # batch, and the task's clock then; replaced whole, never mutated
    published: dict[str, bytes] = field(default_factory=dict)
    published_clock: int | None = None


class ServiceProcessor(TransactionalLoop):
    def __init__(
        self,
        settings: Settings,
        services: Mapping[str, ServicePolicy],
        ledger_partitions: int,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], float] = time.time,
        sources: Iterable[str] | None = None,
        partitions: int | None = None,
        policy: CompiledPolicy | None = None,
    ) -> None:
        """`partitions`: of `services.events` (default `settings.partitions`); `sources`:
        every input partition whose progress settles the earliest input instant (default:
        the services partitions only; the worker adds its ticket partitions)."""
        super().__init__(
            settings,
            "services",
            [settings.topic_services, settings.topic_services_clock],
            settings.topic_services,
            settings.topic_services_changelog,
        )
        self.services = services
        # policy versions (new service terms from each service's next period), read on
        # this thread before each batch (processors.live.policies)
        self.versions = None if policy is None else PolicyBook(policy)
        self.policy = policy
        self.policies_feed: PoliciesFollower | None = None
        self.ledger_partitions = ledger_partitions
        self.metrics = metrics or Metrics()
        self.wall_clock = wall_clock
        self.tasks: dict[int, ServiceTask] = {}
        self.grace_us = int(settings.grace * US_PER_SECOND)
        self.skew_us = int(settings.max_future_skew * US_PER_SECOND)
        self.source = f"slaclock/{settings.app_id}"
        self.partitions = settings.partitions if partitions is None else partitions
        self.sources = (
            [f"{SOURCE}/{p}" for p in range(self.partitions)] if sources is None else list(sources)
        )

    def new_stage(self, partition: int, store: ServiceStore) -> ServiceStage:
        """The stage of one partition: it reports the services whose key lands there."""
        own = f"{SOURCE}/{partition}"
        count = self.partitions

        def owns(service_id: str) -> bool:
            return partition_for(service_id, count) == partition

        return ServiceStage(
            self.services,
            store,
            self.grace_us,
            sources=[s for s in self.sources if s != own],
            owns=owns,
            versions=self.versions,
        )

    # -- state ---------------------------------------------------------------------------------

    def restore_task(
        self, partition: int, records: list[tuple[bytes, bytes]], warm: bool = False
    ) -> None:
        store = ServiceStore()
        task = ServiceTask(partition, self.new_stage(partition, store), store)
        for key, value in records:
            if key == META_KEY:
                meta = orjson.loads(value)
                task.stage.restore_meta(meta)
                task.processed_offset = int(meta.get("processed_offset", 0))
                task.clock_sent = task.stage.fired_through
            else:
                state = ServiceState.from_record(orjson.loads(value))
                dict.__setitem__(store, state.service_id, state)
                task.published[state.service_id] = value
        task.published_clock = task.stage.clock
        task.stage.rebuild_timers()
        self.tasks[partition] = task
        log.info(
            "services[%d]: restored %d services, clock %s", partition, len(store), task.stage.clock
        )

    def drop_task(self, partition: int) -> None:
        self.tasks.pop(partition, None)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.policies_feed is not None:
                self.policies_feed.close()

    def flush_state(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        for task in self.tasks.values():
            published = dict(task.published)
            for service_id in sorted(task.store.dirty):
                state = task.store.get(service_id)
                value = None if state is None else orjson.dumps(state.to_record())
                yield task.partition, service_id.encode(), value
                if value is not None:
                    published[service_id] = value
            task.store.dirty.clear()
            task.published = published  # one assignment: readers see the old or the new
            task.published_clock = task.stage.clock
            if task.meta_dirty:
                meta: dict[str, Any] = {
                    **task.stage.meta(),
                    "processed_offset": task.processed_offset,
                }
                yield task.partition, META_KEY, orjson.dumps(meta)
                task.meta_dirty = False

    # -- processing ------------------------------------------------------------------------------

    def before_batch(self, last_offsets: dict[tuple[str, int], int]) -> None:
        """Note each task's consumer position and the batch's last input offset (the
        caught-up judgement of the tick rule, as in stage 1)."""
        if self.versions is not None and self.policy is not None:
            if self.policies_feed is None:
                contracts = ContractBook.from_policy(self.policy, self.versions)
                self.policies_feed = PoliciesFollower(
                    self.settings, contracts, self.versions, "services"
                )
            self.policies_feed.catch_up()
        topic = self.settings.topic_services
        for task in self.tasks.values():
            task.last_in_batch = last_offsets.get((topic, task.partition), -1)
        partitions = [TopicPartition(topic, p) for p in self.tasks]
        if partitions:
            for tp in self.consumer.position(partitions):
                owner = self.tasks.get(tp.partition)
                if owner is not None:
                    owner.position = tp.offset

    def _caught_up(self, task: ServiceTask, end_offset: int) -> bool:
        if task.processed_offset >= end_offset:
            return True
        batch_done = task.processed_offset > task.last_in_batch
        return batch_done and task.position >= end_offset

    def process(self, message: Message) -> None:
        topic, partition, offset = coordinates(message)
        task = self.tasks.get(partition)
        if task is None:
            return  # not ours any more (revoked mid-batch)
        if topic == self.settings.topic_services:
            task.processed_offset = offset + 1
            self._on_event(task, message)
        elif header_value(message.headers(), "kind") == KIND_WATERMARK:
            self._on_watermark(task, message)
        else:
            self._on_tick(task, message)
        task.meta_dirty = True

    def _on_event(self, task: ServiceTask, message: Message) -> None:
        try:
            event = decode_service_event(message.value() or b"")
            occurred = to_us(event.occurred_at)
            if occurred > int(self.wall_clock() * US_PER_SECOND) + self.skew_us:
                raise Rejected(
                    "FutureEvent",
                    f"occurred_at {event.occurred_at.isoformat()} is more than "
                    f"{self.settings.max_future_skew:g}s ahead of the worker's clock",
                )
            duplicates = task.stage.counters.duplicates
            outputs = task.stage.on_event(event, occurred)
            if task.stage.counters.duplicates > duplicates:
                self.metrics.duplicate()
            else:
                self.metrics.event(event.type)
        except Rejected as rejected:
            self.metrics.rejected(rejected.error_class)
            self.produce(
                self.settings.topic_dlq,
                message.value(),
                key=message.key(),
                headers=dead_letter_headers(
                    rejected.error_class, rejected.message, *coordinates(message)
                ),
            )
            return
        self._emit(outputs)

    def _on_tick(self, task: ServiceTask, message: Message) -> None:
        try:
            tick = Tick.decode(message.value() or b"")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning(
                "services[%d]: unreadable tick at offset %d", task.partition, message.offset()
            )
            return
        self._emit(task.stage.on_tick(tick.now, self._caught_up(task, tick.end_offset)))

    def _on_watermark(self, task: ServiceTask, message: Message) -> None:
        try:
            mark = Watermark.decode(message.value() or b"")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning(
                "services[%d]: unreadable watermark at offset %d", task.partition, message.offset()
            )
            return
        self._emit(task.stage.on_watermark(mark.source_id, mark.clock, mark.first))

    def _emit(self, outputs: list[Output]) -> None:
        for output in outputs:
            value = encode_output(output)
            key = output["service_id"].encode()
            self.produce(
                self.settings.topic_availability,
                value,
                key=key,
                headers=cloudevents_headers(output, self.source),
            )
            self.metrics.output(output["type"])
            if output["type"] == REPORT:
                for ledger_partition in range(self.ledger_partitions):
                    self.produce(
                        self.settings.topic_ledger_input,
                        value,
                        key=key,
                        headers=[("kind", KIND_AVAILABILITY)],
                        partition=ledger_partition,
                    )

    def after_batch(self) -> None:
        """Send each task's clock progress to every ledger partition (source `services`)
        and to the other services partitions."""
        for task in self.tasks.values():
            clock = task.stage.fired_through  # not `clock`: timers at the clock may be due
            if clock is None or clock == task.clock_sent:
                continue
            task.clock_sent = clock
            record = Watermark(task.partition, clock, SOURCE, task.stage.first_applied).encode()
            for ledger_partition in range(self.ledger_partitions):
                self.produce(
                    self.settings.topic_ledger_input,
                    record,
                    headers=[("kind", KIND_WATERMARK)],
                    partition=ledger_partition,
                )
            for partition in range(self.partitions):
                if partition != task.partition:
                    self.produce(
                        self.settings.topic_services_clock,
                        record,
                        headers=[("kind", KIND_WATERMARK)],
                        partition=partition,
                    )

    # -- readers on other threads ------------------------------------------------------------------

    def owned_partitions(self) -> list[int]:
        with self.assigned_lock:
            return sorted(self.assigned)

    def earliest_due(self) -> int | None:
        dues = [d for t in list(self.tasks.values()) if (d := t.stage.earliest_timer()) is not None]
        return min(dues) if dues else None

    def service_status(self, service_id: str) -> dict[str, Any] | None:
        """The status view of a service held by a task of this worker, as of its clock.

        Computed from the record published at the end of the task's last batch (the stage
        thread mutates the live state in place; the published record never changes).
        """
        for partition, task in list(self.tasks.items()):
            record, clock = task.published.get(service_id), task.published_clock
            if record is None:
                if task.stage.owns(service_id) and self._defined_now(task, service_id):
                    return {**self._quiet_view(task, service_id), "partition": partition}
                continue
            state = ServiceState.from_record(orjson.loads(record))
            now = clock if clock is not None else state.accounted_to
            view = task.stage.availability.view(state, now)
            return {**view, "partition": partition}
        return None

    def service_ids(self) -> list[str]:
        """Every service a policy version this worker has read defines (a service a later
        version adds is known before its first period)."""
        ids = set(self.services)
        if self.versions is not None:
            for version in list(self.versions.versions):
                raw = version.policy.raw
                if raw is not None:
                    ids.update(raw.services)
        return sorted(ids)

    def _now(self, task: ServiceTask) -> int:
        clock = task.published_clock
        return clock if clock is not None else int(self.wall_clock() * US_PER_SECOND)

    def _defined_now(self, task: ServiceTask, service_id: str) -> bool:
        """The service has a period at the task's clock (a service a version adds: from
        its first period starting at or after the version's P)."""
        return task.stage.availability.known(service_id, self._now(task))

    def _quiet_view(self, task: ServiceTask, service_id: str) -> dict[str, Any]:
        """A service of this task that has no state yet (no input anywhere so far): it is
        operational, with the whole period ahead of it, as of the task's clock (else now)."""
        now = self._now(task)
        availability = task.stage.availability
        return availability.view(availability.new_state(service_id, now), now)


def service_ticker(
    settings: Settings,
    owned: Callable[[], list[int]],
    wall_clock: Callable[[], float],
    earliest_due: Callable[[], int | None],
    broker: BrokerState,
) -> Ticker:
    """The worker's ticker, for the partitions of `services.events` and their clock topic."""
    from slaclock.processors.live.worker import Ticker  # here: the worker module imports this one

    class ServiceTicker(Ticker):
        def _tick(self) -> None:
            for partition in self.owned():
                now = int(self.wall_clock() * US_PER_SECOND)  # before the end offset
                _, high = self.offsets.get_watermark_offsets(
                    TopicPartition(self.settings.topic_services, partition),
                    timeout=5,
                    cached=False,
                )
                self.broker.up()
                if self.held():
                    return
                self.producer.produce(
                    self.settings.topic_services_clock,
                    Tick(now, high).encode(),
                    partition=partition,
                )
            self.producer.poll(0)

    return ServiceTicker(settings, owned, wall_clock, earliest_due, broker=broker)
