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

from processors.engine.instants import to_us
from processors.engine.ledger import CreditLedger, CustomerLedger
from processors.engine.policy import CompiledPolicy
from processors.engine.stage import DAY_US, StageCounters, TicketStage
from processors.engine.ticket import Output, Rejected, TicketEngine, TicketState
from processors.intake import decode_event


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

    def describe(self) -> str:
        c = self.counters
        return (
            f"events {c.events}, outputs {c.outputs + self.credits} "
            f"(credits {self.credits}), rejected {c.rejected}, duplicates {c.duplicates}, "
            f"ignored after close {c.ignored_closed}, late {c.late}"
        )


class Replayer:
    """Drives stage 1 and the credit ledger over an in-memory store."""

    def __init__(
        self,
        policy: CompiledPolicy,
        emit: Callable[[Output], None],
        closed_retention_us: int = 7 * DAY_US,
    ) -> None:
        self.engine = TicketEngine(policy)
        self.store: dict[str, TicketState] = {}
        self.stage = TicketStage(self.engine, self.store, 0, closed_retention_us)
        self.credit_ledger = CreditLedger(policy)
        self.ledgers: dict[str, CustomerLedger] = {}
        self._holding: set[str] = set()
        self._emit = emit
        self.credits = 0

    def on_line(self, raw: bytes | str) -> None:
        """Apply one input line. Raises `Rejected` for a line to dead-letter."""
        event = decode_event(raw)
        self._publish(self.stage.on_event(event, to_us(event.occurred_at)))

    def finish(self, until: int | None) -> None:
        clock = self.stage.clock
        if until is None:
            until = clock
        if until is not None:
            self._publish(self.stage.advance_to(until))
            self._release(until + 1)

    def _publish(self, outputs: list[Output]) -> None:
        for output in outputs:
            self._emit(output)
            if output["type"] == "sla.breach" and self.credit_ledger.is_creditable(output):
                customer = output["customer_id"]
                ledger = self.ledgers.get(customer)
                if ledger is None:
                    ledger = self.ledgers[customer] = CustomerLedger(customer)
                self.credit_ledger.offer(ledger, output)
                self._holding.add(customer)
        if self._holding and self.stage.clock is not None:
            self._release(self.stage.clock)

    def _release(self, watermark: int) -> None:
        for customer in sorted(self._holding):
            ledger = self.ledgers[customer]
            for credit in self.credit_ledger.release(ledger, watermark):
                self.credits += 1
                self._emit(credit)
            if not ledger.held:
                self._holding.discard(customer)


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
    return ReplaySummary(count, replayer.stage.counters, replayer.credits, replayer.stage.clock)
