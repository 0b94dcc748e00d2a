"""The ledger on Kafka: outcomes, availability reports and watermarks in; credits,
statements and earn-backs out.

One `LedgerStage` per partition of the ledger input; it owns the customers whose
`ledger_partition` is that partition. Every rule (holding, release order, caps, period
ends, earn-back) is in the stage; this adapter decodes records, feeds the stage, routes
what it releases and persists what changed to the changelog.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import orjson
from confluent_kafka import Message

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.group_ledger import GroupLedger
from slaclock.processors.engine.group_view import AtRisk, group_month_view
from slaclock.processors.engine.ledger import (
    AvailabilityPercent,
    LedgerStage,
    Output,
    metric_figures,
)
from slaclock.processors.engine.ledger_view import customer_view
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.live.contracts import ContractsFollower
from slaclock.processors.live.metrics import Metrics
from slaclock.processors.live.policies import PoliciesFollower
from slaclock.processors.live.records import (
    KIND_AVAILABILITY,
    KIND_OUTCOME,
    KIND_WATERMARK,
    META_KEY,
    Watermark,
    cloudevents_headers,
    coordinates,
    encode_output,
    header_value,
    ledger_partition,
    output_key,
)
from slaclock.processors.live.txloop import TransactionalLoop
from slaclock.processors.settings import Settings

log = logging.getLogger(__name__)


def ticket_sources(partitions: int) -> list[str]:
    return [Watermark(p, 0, "tickets").source_id for p in range(partitions)]


class LedgerProcessor(TransactionalLoop):
    def __init__(
        self,
        settings: Settings,
        policy: CompiledPolicy,
        sources: int | Iterable[str],
        metrics: Metrics | None = None,
        ledger_partitions: int = 1,
        availability_percent: AvailabilityPercent | None = None,
    ) -> None:
        super().__init__(
            settings,
            "ledger",
            [settings.topic_ledger_input],
            settings.topic_ledger_input,
            settings.topic_ledger_changelog,
        )
        self.policy = policy
        self.versions = PolicyBook(policy)
        self.book = ContractBook.from_policy(policy, self.versions)
        self.sources = ticket_sources(sources) if isinstance(sources, int) else list(sources)
        self.metrics = metrics or Metrics()
        self.availability_percent = availability_percent
        self.ledger_partitions = ledger_partitions
        self.tasks: dict[int, LedgerStage] = {}
        self.source = f"slaclock/{settings.app_id}"
        self.contracts_feed: ContractsFollower | None = None
        self.policies_feed: PoliciesFollower | None = None
        self.snapshots: dict[str, bytes] = {}  # customer -> account record (end of batch)
        self.marks: dict[int, tuple[int | None, int | None]] = {}  # watermark, first instant
        self.group_months: dict[int, bytes] = {}  # partition -> its group months (end of batch)
        self.topics = {
            "sla.credit": settings.topic_credits,
            "sla.credit_earned_back": settings.topic_credits,
            "sla.statement": settings.topic_statements,
            "sla.group_statement": settings.topic_statements,
        }

    def _new_stage(self, partition: int) -> LedgerStage:
        count = self.ledger_partitions
        stage = LedgerStage(
            self.policy,
            self.book,
            self.sources,
            owns=lambda customer: ledger_partition(customer, count) == partition,
            versions=self.versions,
        )
        if self.availability_percent is not None:
            stage.availability_percent = self.availability_percent
        return stage

    def restore_task(
        self, partition: int, records: list[tuple[bytes, bytes]], warm: bool = False
    ) -> None:
        stage = self._new_stage(partition)  # in memory only: never warm
        for key, value in records:
            if key == META_KEY:
                stage.restore_meta(orjson.loads(value))
            else:
                stage.restore_account(orjson.loads(value))
                self.snapshots[key.decode()] = value
        self.tasks[partition] = stage
        # readable over HTTP at once: a restored task may see no input for a while (every
        # clock already sent), and its views must not wait for its first batch
        self.marks[partition] = (stage.watermark(), stage.first_instant)
        if stage.groups.months:
            self.group_months[partition] = orjson.dumps(stage.groups.to_record())

    def drop_task(self, partition: int) -> None:
        self.tasks.pop(partition, None)
        self.marks.pop(partition, None)
        self.group_months.pop(partition, None)

    def flush_state(self) -> Iterator[tuple[int, bytes, bytes | None]]:
        for partition, stage in self.tasks.items():
            for customer in sorted(stage.dirty):
                account = stage.accounts.get(customer)
                if account is not None:
                    yield partition, customer.encode(), orjson.dumps(account.to_record())
            stage.dirty.clear()
            if stage.meta_dirty:
                yield partition, META_KEY, orjson.dumps(stage.meta_record())
                stage.meta_dirty = False

    def before_batch(self, last_offsets: dict[tuple[str, int], int]) -> None:
        if self.policies_feed is None:
            self.policies_feed = PoliciesFollower(self.settings, self.book, self.versions, "ledger")
        changed = self.policies_feed.catch_up()
        if self.contracts_feed is None:
            self.contracts_feed = ContractsFollower(self.settings, self.book, "ledger")
        if self.contracts_feed.catch_up() or changed:
            for stage in self.tasks.values():
                stage.contracts_changed()

    def process(self, message: Message) -> None:
        stage = self.tasks.get(coordinates(message)[1])
        if stage is None:
            return
        kind = header_value(message.headers(), "kind")
        value = message.value() or b""
        if kind == KIND_OUTCOME:
            outcome = orjson.loads(value)
            self._know_version(outcome.get("policy_version"))
            stage.on_outcome(outcome)
        elif kind == KIND_WATERMARK:
            mark = Watermark.decode(value)
            stage.on_watermark(mark.source_id, mark.clock, mark.first)
        elif kind == KIND_AVAILABILITY:
            stage.on_availability(orjson.loads(value))

    def _know_version(self, version: str | None) -> None:
        """An outcome decided under a version this loop has not read yet (stage 1 read it
        first): read `sla.policies` to its end now, so its credit terms are that version's."""
        if version is None or self.versions.find(version) is not None:
            return
        if self.policies_feed is not None:
            self.policies_feed.checked_at = float("-inf")  # ask the broker for the end now
            if self.policies_feed.catch_up():
                for stage in self.tasks.values():
                    stage.contracts_changed()

    def after_batch(self) -> None:
        for partition, stage in self.tasks.items():
            for output in stage.release():
                self._emit(output)
            # immutable copies for the HTTP thread (it never reads the live stage)
            for customer in stage.dirty:
                account = stage.accounts.get(customer)
                if account is not None:
                    self.snapshots[customer] = orjson.dumps(account.to_record())
            self.marks[partition] = (stage.watermark(), stage.first_instant)
            if stage.groups.months or partition in self.group_months:
                self.group_months[partition] = orjson.dumps(stage.groups.to_record())

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's account as of its ledger task's last batch, if this worker owns it.

        Safe on any thread: built from the serialised copy taken at the end of that batch.
        Raises LookupError when the customer's partition is not owned here.
        """
        partition = ledger_partition(customer_id, self.ledger_partitions)
        mark = self.marks.get(partition)
        if partition not in self.tasks or mark is None:
            raise LookupError(partition)
        view_stage = LedgerStage(self.policy, self.book, ["as-of"])
        watermark, first = mark
        if watermark is not None:
            view_stage.watermarks["as-of"] = watermark
        view_stage.first_instant = first
        record = self.snapshots.get(customer_id)
        if record is not None:
            view_stage.restore_account(orjson.loads(record))
        return customer_view(view_stage, customer_id)

    def group_view(self, group: str, at_risk: list[AtRisk]) -> dict[str, Any] | None:
        """The group's open month as of its ledger task's last batch, with `at_risk`; None
        when the version in force does not define the group. Safe on any thread (built from
        the serialised copy of that batch). Raises LookupError when another worker owns it.
        """
        partition = ledger_partition(group, self.ledger_partitions)
        mark = self.marks.get(partition)
        if partition not in self.tasks or mark is None:
            raise LookupError(partition)
        groups = GroupLedger(self.versions, lambda name: True, metric_figures)
        record = self.group_months.get(partition)
        if record is not None:
            groups.restore(orjson.loads(record))
        return group_month_view(groups, group, mark[0], at_risk)

    def _emit(self, output: Output) -> None:
        kind = output["type"]
        self.produce(
            self.topics[kind],
            encode_output(output),
            key=output_key(output),  # a group statement's key is its group
            headers=cloudevents_headers(output, self.source),
        )
        self.metrics.output(kind)
        if kind == "sla.statement":
            self.metrics.statements.inc()
        elif kind == "sla.credit":
            self.metrics.credits_amount.labels(output["currency"]).inc(
                float(Decimal(output["amount"]))
            )

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.contracts_feed is not None:
                self.contracts_feed.close()
            if self.policies_feed is not None:
                self.policies_feed.close()
