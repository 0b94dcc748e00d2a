"""The replay adapter: a JSONL file of events in, a JSONL stream of outputs out.

SPEC 7: events in file order; before an event at t every timer due before t fires; at
the end the clock advances to `until` inclusive (default: the last event's instant).
Replay is the live rule with grace = 0 and no wall clock, so it is also the oracle the
Kafka tests compare against. Same input, same bytes out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from processors.engine.contracts import ContractBook
from processors.engine.instants import to_us
from processors.engine.ledger import LedgerCounters, LedgerStage, ledger_input
from processors.engine.policy import CompiledPolicy
from processors.engine.stage import DAY_US, StageCounters, TicketStage
from processors.engine.ticket import Output, Rejected, TicketEngine, TicketState
from processors.intake import _classify, decode_event
from schemas.contracts import ContractChanged, parse_contract_changed


@dataclass
class Rejection:
    line: int
    error_class: str
    message: str
    raw: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "line": self.line,
                "error_class": self.error_class,
                "message": self.message,
                "raw": self.raw,
            }
        )


@dataclass
class ReplaySummary:
    lines: int
    counters: StageCounters
    credits: int
    final_clock: int | None
    ledger: LedgerCounters | None = None

    def describe(self) -> str:
        c = self.counters
        statements = self.ledger.statements if self.ledger is not None else 0
        earned = self.ledger.earned_back if self.ledger is not None else 0
        outputs = c.outputs + self.credits + statements + earned
        return (
            f"events {c.events}, outputs {outputs} "
            f"(credits {self.credits}, statements {statements}, earned back {earned}), "
            f"rejected {c.rejected}, duplicates {c.duplicates}, "
            f"ignored after close {c.ignored_closed}, late {c.late}"
        )


CONTRACT_CHANGED = b'"contract.changed"'


def decode_contract_change(raw: bytes | str) -> ContractChanged:
    """A `contract.changed` line; raises `Rejected` like a bad event."""
    try:
        return parse_contract_changed(raw)
    except ValidationError as error:
        raise _classify(error) from None


def is_contract_line(raw: bytes) -> bool:
    """Cheap dispatch on `type`: only lines mentioning the type are parsed to check it."""
    if CONTRACT_CHANGED not in raw:
        return False
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("type") == "contract.changed"


class Replayer:
    """Drives stage 1 and the ledger stage over in-memory state: the live rules, one source.

    The ledger's only source is the replay clock, so its watermark is that clock: ticket
    credits are released once the clock is past their `decided_at`, period ends once it has
    reached them, exactly as live with every partition's clock at the same instant.
    """

    SOURCE = "replay"

    def __init__(
        self,
        policy: CompiledPolicy,
        emit: Callable[[Output], None],
        closed_retention_us: int = 7 * DAY_US,
    ) -> None:
        self.book = ContractBook.from_policy(policy)
        self.engine = TicketEngine(policy, self.book)
        self.store: dict[str, TicketState] = {}
        self.stage = TicketStage(self.engine, self.store, 0, closed_retention_us)
        self.ledger = LedgerStage(policy, self.book, [self.SOURCE])
        self._emit = emit

    @property
    def credits(self) -> int:
        return self.ledger.counters.credits

    def on_line(self, raw: bytes) -> None:
        """Apply one input line. Raises `Rejected` for a line to dead-letter."""
        if is_contract_line(raw):
            change = decode_contract_change(raw)
            self.ledger.on_contract(change.customer_id, change.contract, to_us(change.occurred_at))
            return
        event = decode_event(raw)
        self._publish(self.stage.on_event(event, to_us(event.occurred_at)))

    def finish(self, until: int | None) -> None:
        clock = self.stage.clock
        if until is None:
            until = clock
        if until is not None:
            self._publish(self.stage.advance_to(until), final=until)

    def _publish(self, outputs: list[Output], final: int | None = None) -> None:
        ledger = self.ledger
        for output in outputs:
            self._emit(output)
            if ledger_input(output):
                ledger.on_outcome(output)
        clock = self.stage.clock
        if clock is None:
            return
        ledger.on_watermark(self.SOURCE, clock, self.stage.first_applied)
        released = ledger.release() if final is None else ledger.release(through=final, final=True)
        for output in released:
            self._emit(output)


def replay(
    policy: CompiledPolicy,
    lines: Iterable[bytes],
    emit: Callable[[Output], None],
    reject: Callable[[Rejection], None],
    until: int | None = None,
    on_progress: Callable[[int], Any] | None = None,
) -> ReplaySummary:
    replayer = Replayer(policy, emit)
    count = 0
    for count, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            replayer.on_line(line)
        except Rejected as rejected:
            if rejected.error_class in ("InvalidJson", "SchemaViolation", "NaiveTimestamp"):
                replayer.stage.counters.rejected += 1
            reject(
                Rejection(
                    count, rejected.error_class, rejected.message, line.decode("utf-8", "replace")
                )
            )
        if on_progress is not None:
            on_progress(len(raw))
    replayer.finish(until)
    return ReplaySummary(
        count,
        replayer.stage.counters,
        replayer.credits,
        replayer.stage.clock,
        replayer.ledger.counters,
    )
