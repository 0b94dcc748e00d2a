"""Stage 1 on Kafka: ticket events + clock ticks in, SLA outputs out (docs/semantics.md: Time; Duplicates and invalid input).

One task per partition of `tickets.events`; its clock-topic partition is co-assigned.
All SLA logic, the tick rule (docs/semantics.md: Time) included, is in `TicketStage`; this adapter decodes
records (checking their key), tells the stage how far the partition is processed, and
routes what comes out: outputs with CloudEvents headers, rejected records to
the dead-letter topic, creditable breaches (re-keyed by customer) and clock watermarks
to the ledger's input topic, changed ticket states to the changelog.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from confluent_kafka import Message, TopicPartition

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.group_view import open_group
from slaclock.processors.engine.instants import US_PER_SECOND
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import TicketEngine, record_open_group
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.live.checkpoint import (
    StoreCheckpoint,
    store_path,
    take_checkpoints,
    write_checkpoint,
)
from slaclock.processors.live.contracts import ContractsFollower
from slaclock.processors.live.metrics import Metrics
from slaclock.processors.live.policies import PoliciesFollower
from slaclock.processors.live.records import KIND_WATERMARK, META_KEY, Watermark
from slaclock.processors.live.store import (
    MemoryTicketStore,
    Record,
    RocksTicketStore,
    TicketStore,
    require_rocksdict,
)
from slaclock.processors.live.ticket_input import TicketInput, TicketTask, processed_position
from slaclock.processors.live.txloop import TransactionalLoop
from slaclock.processors.settings import Settings
from slaclock.schemas.fast_events import EngineEvent

log = logging.getLogger(__name__)


TrackingStore = MemoryTicketStore  # its former name (`SLACLOCK_STORE=memory`)


class TicketProcessor(TransactionalLoop):
    def __init__(
        self,
        settings: Settings,
        policy: CompiledPolicy,
        ledger_partitions: int,
        metrics: Metrics | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            settings,
            "tickets",
            [settings.topic_events, settings.topic_clock],
            settings.topic_events,
            settings.topic_ticket_changelog,
        )
        self.policy = policy
        # policy versions and contract changes, read on this thread before each batch
        # (processors.live.policies, processors.live.contracts)
        self.versions = PolicyBook(policy)
        self.contracts = ContractBook.from_policy(policy, self.versions)
        self.engine = TicketEngine(policy, self.contracts, self.versions)
        self.contracts_feed: ContractsFollower | None = None
        self.policies_feed: PoliciesFollower | None = None
        self.ledger_partitions = ledger_partitions
        # partitions of the services clock topic that also get each task's watermark (the
        # services stage settles the earliest input instant with them); 0: no services
        self.services_clock_partitions = 0
        self.metrics = metrics or Metrics()
        self.wall_clock = wall_clock
        self.tasks: dict[int, TicketTask] = {}
        self.untracked_logged: set[str] = set()  # customers whose untracked ticket was logged
        self.grace_us = int(settings.grace * US_PER_SECOND)
        self.retention_us = int(settings.closed_retention * US_PER_SECOND)
        self.source = f"slaclock/{settings.app_id}"
        # the work per record (compiled in the shipped build): it shares `tasks`
        self.input = TicketInput(
            self,
            self.tasks,
            settings,
            ledger_partitions,
            self.source,
            self.metrics,
            wall_clock,
            self._note_untracked,
        )
        # per-batch counts, added to the Prometheus counters once per batch (each `inc`
        # takes a lock: too dear per record); the same dicts as the per-record path's
        self.events_seen = self.input.events_seen
        self.outputs_seen = self.input.outputs_seen
        self.state_dir = settings.state_dir / settings.app_id / settings.instance_id
        self.warm: dict[int, StoreCheckpoint] = {}
        self.closing = False
        if settings.store == "rocksdb":
            require_rocksdict()
            # A clean predecessor left checkpointed stores (a warm start); anything else
            # it left, a killed one in particular, is deleted: those tasks are refilled
            # from their changelogs.
            self.warm = take_checkpoints(self.state_dir)

    # -- state ----------------------------------------------------------------------------

    def _new_store(self, partition: int) -> TicketStore:
        """An empty store for a task: in memory, or a wiped RocksDB (`settings.store`)."""
        if self.settings.store == "memory":
            return MemoryTicketStore()
        previous = self.tasks.get(partition)
        if previous is not None:
            previous.store.close()  # a database is re-created at the same path
        return RocksTicketStore.fresh(store_path(self.state_dir, partition))

    def warm_offset(self, partition: int) -> int | None:
        checkpoint = self.warm.get(partition)
        return None if checkpoint is None else checkpoint.changelog_offset

    def restore_task(
        self, partition: int, records: list[tuple[bytes, bytes]], warm: bool = False
    ) -> None:
        checkpoint = self.warm.pop(partition, None)  # used once, or never
        store: TicketStore
        if warm and checkpoint is not None:
            store = RocksTicketStore(store_path(self.state_dir, partition))
        else:
            checkpoint = None
            store = self._new_store(partition)
        task = TicketTask(
            partition, TicketStage(self.engine, store, self.grace_us, self.retention_us), store
        )
        if checkpoint is not None:
            self._apply_meta(task, checkpoint.meta)
            task.stage.restore_timers(checkpoint.timers)
        else:
            states = [(key, value) for key, value in records if key != META_KEY]
            for key, value in records:
                if key == META_KEY:
                    self._apply_meta(task, orjson.loads(value))
            store.load_many(states)
            if store.persistent:
                # the timers (and the group index) from the records at hand: no state
                # rebuilt, none read back
                task.stage.rebuild_timers_from_records(self._indexed(task, states))
            else:
                task.stage.rebuild_timers()  # the memory store has rebuilt every state
        if self._has_groups() and not (store.persistent and checkpoint is None):
            for state in store.values():  # a warm store or the memory store: states at hand
                group = open_group(state)
                if group is not None:
                    task.open_groups[state.ticket_id] = group
        store.publish_clock(task.stage.clock)
        self.tasks[partition] = task
        self.metrics.set_open_tickets(partition, len(store))
        log.info(
            "tickets[%d]: restored %d tickets, clock %s", partition, len(store), task.stage.clock
        )

    def _indexed(self, task: TicketTask, states: list[tuple[bytes, bytes]]) -> Iterator[Any]:
        """The decoded records, one at a time, noting each ticket's open group on the way
        (when a version defines groups; a policy without groups pays nothing)."""
        loads = orjson.loads
        groups = self._has_groups()
        index = task.open_groups
        for _, value in states:
            record = loads(value)
            if groups:
                group = record_open_group(record)
                if group is not None:
                    index[str(record[0])] = group
            yield record

    @staticmethod
    def _apply_meta(task: TicketTask, meta: dict[str, Any]) -> None:
        task.stage.clock = meta.get("clock")
        task.stage.stream_time = meta.get("stream_time")
        task.processed_offset = meta.get("processed_offset", 0)
        task.stage.first_applied = meta.get("first_applied")
        clock = meta.get("clock")
        task.stage.fired_through = meta.get("fired_through", None if clock is None else clock - 1)
        task.stage.restore_version_meta(meta)
        task.clock_sent = task.stage.fired_through

    def _meta(self, task: TicketTask) -> dict[str, Any]:
        return {
            "clock": task.stage.clock,
            "stream_time": task.stage.stream_time,
            "processed_offset": task.processed_offset,
            "first_applied": task.stage.first_applied,
            "fired_through": task.stage.fired_through,
            **task.stage.version_meta(),
        }

    def drop_task(self, partition: int) -> None:
        task = self.tasks.pop(partition, None)
        if task is not None:
            if self.closing:
                task.store.close()  # stopping: its checkpoint (if any) may reuse it
            else:
                task.store.destroy()
        self.metrics.forget_partition(partition)

    def _has_groups(self) -> bool:
        return any(self.versions.get(v).policy.groups for v in self.versions.ids())

    def _note_open_groups(self, task: TicketTask) -> None:
        """Keep the task's index of tickets with an open group cycle (read by
        `GET /groups/{group}`) up to date with this batch's changed tickets."""
        store = task.store
        held = [(ticket_id, store.get(ticket_id)) for ticket_id in store.dirty]
        index = task.open_groups
        with task.open_groups_lock:  # in place: O(changed tickets), never a copy of the index
            for ticket_id, state in held:
                group = None if state is None else open_group(state)
                if group is None:
                    index.pop(ticket_id, None)
                else:
                    index[ticket_id] = group

    def _flush_task(self, task: TicketTask, groups: bool) -> list[tuple[str, Record | None]]:
        """The end of a batch for a task: its changed states' changelog records (the store
        publishes them to readers, HTTP), its open-group index brought up to date."""
        if groups:
            self._note_open_groups(task)
        return task.store.flush(task.stage.clock)

    def _meta_record(self, task: TicketTask) -> bytes | None:
        """The task's meta record if the batch changed it (once)."""
        if not task.meta_dirty:
            return None
        task.meta_dirty = False
        return orjson.dumps(self._meta(task))

    def flush_state(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        groups = self._has_groups()
        for task in self.tasks.values():
            for ticket_id, value in self._flush_task(task, groups):
                yield task.partition, ticket_id.encode(), value
            meta = self._meta_record(task)
            if meta is not None:
                yield task.partition, META_KEY, meta

    def produce_state_changes(self) -> None:
        """`flush_state`'s records, in the same order, produced by the compiled path (one
        per changed ticket per batch: no generator, no Python call per record)."""
        groups = self._has_groups()
        topic = self.changelog_topic
        for task in self.tasks.values():
            self.input.produce_changes(topic, task.partition, self._flush_task(task, groups))
            meta = self._meta_record(task)
            if meta is not None:
                self.produce(topic, meta, key=META_KEY, partition=task.partition)

    # -- processing ---------------------------------------------------------------------------

    def catch_up_contracts(self) -> None:
        """Read policy versions and contract changes published so far (before any event of
        the batch is applied)."""
        if self.policies_feed is None:
            self.policies_feed = PoliciesFollower(
                self.settings, self.contracts, self.versions, "tickets"
            )
        self.policies_feed.catch_up()
        if self.contracts_feed is None:
            self.contracts_feed = ContractsFollower(self.settings, self.contracts, "tickets")
        self.contracts_feed.catch_up()

    def before_batch(self, last_offsets: dict[tuple[str, int], int]) -> None:
        """Note, per task, the consumer position and the batch's last input offset.

        A transactional publisher's commit markers occupy offsets no consumer ever sees, so
        "processed up to end_offset" (docs/semantics.md: Time) is judged by the consumer's position, which
        librdkafka moves past them, once every input record of the batch is processed.
        """
        self.catch_up_contracts()
        topic = self.settings.topic_events
        for task in self.tasks.values():
            task.last_in_batch = last_offsets.get((topic, task.partition), -1)
        partitions = [TopicPartition(topic, p) for p in self.tasks]
        if partitions:
            for tp in self.consumer.position(partitions):
                owner = self.tasks.get(tp.partition)
                if owner is not None:
                    owner.position = tp.offset

    @staticmethod
    def _processed_position(task: TicketTask) -> int:
        """`ticket_input.processed_position`: where the task's partition is processed to."""
        return processed_position(task)

    def process_batch(self, messages: list[Message]) -> None:
        self.input.process_batch(messages)

    def process(self, message: Message) -> None:
        self.input.process(message)

    def _note_untracked(self, task: TicketTask, event: EngineEvent, reason: str) -> None:
        """Count a ticket created with no SLA; log the first one of each customer."""
        self.metrics.untracked(reason)
        state = task.store.get(event.ticket_id)
        customer = state.customer_id if state is not None else "?"
        if customer in self.untracked_logged:
            return
        self.untracked_logged.add(customer)
        log.warning(
            "tickets[%d]: ticket %r of customer %r gets no SLA (%s: tier %r has no target "
            "for priority %r); further ones of this customer are only counted",
            task.partition,
            event.ticket_id,
            customer,
            reason,
            None if state is None else state.tier,
            None if state is None else state.priority,
        )

    def unreadable_tick(self, task: TicketTask, message: Message) -> None:
        log.warning("tickets[%d]: unreadable tick at offset %d", task.partition, message.offset())

    def after_batch(self) -> None:
        """Send each task's clock progress to every ledger partition (watermarks, docs/semantics.md: Credits)."""
        for kind, count in self.events_seen.items():
            self.metrics.event(kind, count)
        for kind, count in self.outputs_seen.items():
            self.metrics.output(kind, count)
        self.events_seen.clear()
        self.outputs_seen.clear()
        for task in self.tasks.values():
            self.metrics.set_open_tickets(task.partition, len(task.store))
            self.metrics.set_pending_timers(task.partition, task.stage.pending_timers())
            counters = task.stage.counters
            self.metrics.policy_versions(
                task.partition,
                counters.versions_applied,
                counters.recomputed_at_last_version,
                counters.breaches_at_last_version,
            )
            clock = task.stage.fired_through  # not `clock`: timers at the clock may be due
            if clock is None or clock == task.clock_sent:
                continue
            task.clock_sent = clock
            record = Watermark(task.partition, clock, "tickets", task.stage.first_applied).encode()
            for target in range(self.ledger_partitions):
                self.produce(
                    self.settings.topic_ledger_input,
                    record,
                    headers=[("kind", KIND_WATERMARK)],
                    partition=target,
                )
            for target in range(self.services_clock_partitions):
                self.produce(
                    self.settings.topic_services_clock,
                    record,
                    headers=[("kind", KIND_WATERMARK)],
                    partition=target,
                )

    def close(self) -> None:
        self.closing = True
        try:
            if self.clean_exit:
                self._checkpoint_stores()
        except Exception:  # no checkpoint only means a full restore next time
            log.exception("tickets: checkpointing the local stores failed")
        try:
            super().close()
        finally:
            for task in list(self.tasks.values()):
                task.store.close()  # files stay: reused if checkpointed, else wiped
            if self.contracts_feed is not None:
                self.contracts_feed.close()
            if self.policies_feed is not None:
                self.policies_feed.close()

    def _checkpoint_stores(self) -> None:
        """After the last commit of a clean stop: checkpoint every RocksDB task store."""
        for task in list(self.tasks.values()):
            if not task.store.persistent:
                continue
            checkpoint = StoreCheckpoint(
                self._changelog_end(task.partition),
                self._meta(task),
                task.stage.scheduled_timers(),
            )
            task.store.close()
            write_checkpoint(self.state_dir, task.partition, checkpoint)
            log.info(
                "tickets[%d]: checkpointed %d tickets at changelog offset %d",
                task.partition,
                len(checkpoint.timers),
                checkpoint.changelog_offset,
            )

    def owned_partitions(self) -> list[int]:
        with self.assigned_lock:
            return sorted(self.assigned)

    def earliest_due(self) -> int | None:
        """The earliest timer of this worker's tasks (read by the ticker's thread)."""
        dues = [d for t in list(self.tasks.values()) if (d := t.stage.earliest_timer()) is not None]
        return min(dues) if dues else None

    def open_group_tickets(self, group: str) -> list[tuple[int, list[Record], int | None]]:
        """Per task of this worker: (partition, the published records of its tickets with
        an open cycle of `group`, the clock of that flush); for readers on other threads."""
        found = []
        for task in list(self.tasks.values()):
            records: list[Record] = []
            clock: int | None = None
            with task.open_groups_lock:
                held = [t for t, held_by in task.open_groups.items() if held_by == group]
            for ticket_id in held:
                record, clock = task.store.published(ticket_id)
                if record is not None:
                    records.append(record)
            if clock is None:  # no such ticket: the flush clock alone (any key answers it)
                clock = task.store.published("")[1]
            found.append((task.partition, records, clock))
        return found

    def published(self, ticket_id: str) -> tuple[int, Record, int | None] | None:
        """(partition, the ticket's record as of its task's last batch, that batch's clock),
        for readers on other threads; None when no task of this worker holds it."""
        for task in list(self.tasks.values()):
            record, clock = task.store.published(ticket_id)
            if record is not None:
                return task.partition, record, clock
        return None
