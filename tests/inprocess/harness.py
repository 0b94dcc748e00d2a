"""The in-process tier: stage 1 partitions and the ledger, driven together without a broker.

Like Flink's operator test harness or Kafka Streams' TopologyTestDriver: each input
partition has its own `TicketStage` (and its own contract book, as each live loop has),
the ledger is one `LedgerStage` whose sources are those partitions, and the test decides
when records travel and when clocks tick. The ledger's inbox keeps each partition's
records in order (as a Kafka partition does) while the test interleaves partitions as it
likes: out-of-order arrival across partitions, a lagging partition, a month end.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

import orjson

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.group_ledger import GROUP_HOLD
from slaclock.processors.engine.instants import parse_instant, to_us
from slaclock.processors.engine.ledger import LedgerStage, ledger_input
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import Output, TicketEngine
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.intake import decode_event
from slaclock.processors.policy_versions import decode_policy_change, take_policy_change
from slaclock.schemas.policy import parse_contract

Record = tuple[str, Any]  # ("outcome", output) | ("watermark", (clock, first))


def partition_of(ticket_id: str, partitions: int) -> int:
    return zlib.crc32(ticket_id.encode()) % partitions


def ledger_owner(customer_id: str, ledgers: int) -> int:
    """The ledger partition that owns a customer (the live rule: CRC-32 modulo the count)."""
    return zlib.crc32(customer_id.encode()) % ledgers


class Pipeline:
    def __init__(
        self, policy: CompiledPolicy, partitions: int = 2, grace_us: int = 0, ledgers: int = 1
    ) -> None:
        self.partitions = partitions
        # each loop has its own contract book and policy book, as each live loop has
        self.stages = [
            TicketStage(TicketEngine(policy, *_books(policy)), {}, grace_us)
            for _ in range(partitions)
        ]
        self.sources = [f"tickets/{p}" for p in range(partitions)]
        # one ledger task per ledger partition, each with its own contract book (as each
        # live loop has) and the customers that partition owns; every task sees every
        # source's watermark, the outcomes only of the customers it owns
        self.ledgers = [
            LedgerStage(
                policy,
                _books(policy)[0],
                self.sources,
                owns=lambda customer, index=index: ledger_owner(customer, ledgers) == index,
            )
            for index in range(ledgers)
        ]
        self.ledger = self.ledgers[0]
        self.inbox: list[deque[Record]] = [deque() for _ in range(partitions)]
        self.ticket_outputs: list[Output] = []
        self.ledger_outputs: list[Output] = []

    # -- stage 1 --------------------------------------------------------------------------

    def event(self, event: dict[str, Any] | bytes) -> int:
        """Apply an event in its ticket's partition; returns the partition."""
        raw = event if isinstance(event, bytes) else orjson.dumps(event)
        decoded = decode_event(raw)
        partition = partition_of(decoded.ticket_id, self.partitions)
        self._route(partition, self.stages[partition].on_event(decoded, to_us(decoded.occurred_at)))
        return partition

    def contract(self, customer_id: str, contract: Any, published_at: str) -> None:
        """A contract change, read by every loop's book (stage 1 tasks and ledgers alike)."""
        parsed = None if contract is None else parse_contract(orjson.dumps(contract))
        at = parse_instant(published_at)
        for stage in self.stages:
            stage.engine.contracts.change(customer_id, parsed, at)
        for ledger in self.ledgers:
            ledger.on_contract(customer_id, parsed, at)

    def policy_version(self, line: dict[str, Any]) -> None:
        """A policy version (a `policy.changed` line), read by every loop's book."""
        publication = decode_policy_change(orjson.dumps(line))
        at = to_us(publication.occurred_at)
        for stage in self.stages:
            engine = stage.engine
            take_policy_change(engine.versions, engine.contracts, publication, at)
        for ledger in self.ledgers:
            take_policy_change(ledger.versions, ledger.book, publication, at)
            ledger.contracts_changed()

    def tick(self, partition: int, instant: str | int) -> None:
        at = parse_instant(instant) if isinstance(instant, str) else instant
        self._route(partition, self.stages[partition].advance_to(at))

    def tick_all(self, instant: str | int) -> None:
        for partition in range(self.partitions):
            self.tick(partition, instant)

    def _route(self, partition: int, outputs: list[Output]) -> None:
        stage = self.stages[partition]
        for output in outputs:
            if output["type"] != GROUP_HOLD:  # hold facts go to the ledger only
                self.ticket_outputs.append(output)
            if ledger_input(output):
                self.inbox[partition].append(("outcome", output))
        if stage.fired_through is not None:  # the watermark goes with the outputs, after them
            self.inbox[partition].append(("watermark", (stage.fired_through, stage.first_applied)))

    # -- the ledger -----------------------------------------------------------------------

    def deliver(self, partition: int, count: int | None = None) -> None:
        """Hand the ledger `count` (default: all) pending records of one partition, in order."""
        queue = self.inbox[partition]
        n = len(queue) if count is None else min(count, len(queue))
        for _ in range(n):
            kind, payload = queue.popleft()
            for ledger in self.ledgers:
                if kind == "outcome":
                    ledger.on_outcome(payload)  # only its owner counts it
                else:
                    clock, first = payload
                    ledger.on_watermark(self.sources[partition], clock, first)
        for ledger in self.ledgers:
            self.ledger_outputs.extend(ledger.release())

    def deliver_all(self) -> None:
        for partition in range(self.partitions):
            self.deliver(partition)

    def finish(self, until: str) -> None:
        """Replay's end: every clock to `until`, everything delivered, the final release."""
        self.tick_all(until)
        self.deliver_all()
        for ledger in self.ledgers:
            self.ledger_outputs.extend(ledger.release(through=parse_instant(until), final=True))

    def of(self, kind: str) -> list[Output]:
        return [o for o in self.ledger_outputs + self.ticket_outputs if o["type"] == kind]


def _books(policy: CompiledPolicy) -> tuple[ContractBook, PolicyBook]:
    versions = PolicyBook(policy)
    return ContractBook.from_policy(policy, versions), versions
