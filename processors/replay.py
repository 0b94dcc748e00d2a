"""The replay adapter: a JSONL file of events in, a JSONL stream of outputs out.

docs/semantics.md: Time: events in file order; before an event at t every timer due before t fires; at
the end the clock advances to `until` inclusive (default: the last event's instant).
Replay is the live rule with grace = 0 and no wall clock, so it is also the oracle the
Kafka tests compare against. Same input, same bytes out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import ValidationError

from slaclock.processors.engine.availability import compile_services, ledger_availability_percent
from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.group_ledger import GROUP_HOLD
from slaclock.processors.engine.instants import to_us
from slaclock.processors.engine.ledger import LedgerCounters, LedgerStage, ledger_input
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.services_stage import ServiceCounters, ServiceStage
from slaclock.processors.engine.stage import DAY_US, StageCounters, TicketStage
from slaclock.processors.engine.ticket import Output, TicketEngine, TicketState
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.intake import classify_validation_error, decode_event
from slaclock.processors.policy_versions import decode_policy_change, take_policy_change
from slaclock.processors.services_intake import decode_service_event
from slaclock.schemas.contracts import ContractChanged, parse_contract_changed
from slaclock.schemas.fast_decode import decode_fast
from slaclock.schemas.fast_events import EngineEvent
from slaclock.schemas.rejection import Rejected
from slaclock.schemas.services import is_service_event_type


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
    services: ServiceCounters | None = None
    contract_changes: int = 0
    policy_changes: int = 0

    def applied(self) -> int:
        """Valid input lines: events applied, ignored or dropped as repeats, contract changes."""
        c = self.counters
        total = c.events + c.duplicates + c.ignored_closed + self.contract_changes
        total += self.policy_changes
        if self.services is not None:
            total += self.services.events + self.services.duplicates
        return total

    def describe(self) -> str:
        c = self.counters
        statements = self.ledger.statements if self.ledger is not None else 0
        earned = self.ledger.earned_back if self.ledger is not None else 0
        service_outputs = self.services.outputs if self.services is not None else 0
        groups = self.ledger.group_statements if self.ledger is not None else 0
        outputs = c.outputs + self.credits + statements + earned + service_outputs + groups
        group_text = f", group statements {groups}" if groups else ""
        text = (
            f"events {c.events}, outputs {outputs} "
            f"(credits {self.credits}, statements {statements}{group_text}, "
            f"earned back {earned}), "
            f"rejected {c.rejected}, duplicates {c.duplicates}, "
            f"ignored after close {c.ignored_closed}, late {c.late}"
        )
        if self.services is not None and (self.services.events or self.services.rejected):
            s = self.services
            text += (
                f"; service events {s.events} (outputs {s.outputs}, rejected {s.rejected}, "
                f"duplicates {s.duplicates}, late {s.late})"
            )
        if self.contract_changes:
            text += f"; contract changes {self.contract_changes}"
        if self.policy_changes:
            text += f"; policy versions {self.policy_changes}"
        return text


CONTRACT_CHANGED: Final = b'"contract.changed"'
POLICY_CHANGED: Final = b'"policy.changed"'


def decode_contract_change(raw: bytes | str) -> ContractChanged:
    """A `contract.changed` line; raises `Rejected` like a bad event."""
    try:
        return parse_contract_changed(raw)
    except ValidationError as error:
        raise classify_validation_error(error) from None


SERVICE_MARKER: Final = b'"service.'
MAINTENANCE_MARKER: Final = b'"maintenance.'


def line_kind(raw: bytes) -> str:
    """`ticket`, `service`, `contract` or `policy`: cheap dispatch on `type` (only lines that
    mention a service, contract or policy type are parsed to check it; anything else is a
    ticket event)."""
    if (
        CONTRACT_CHANGED not in raw
        and POLICY_CHANGED not in raw
        and SERVICE_MARKER not in raw
        and MAINTENANCE_MARKER not in raw
    ):
        return "ticket"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "ticket"
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "contract.changed":
        return "contract"
    if kind == "policy.changed":
        return "policy"
    return "service" if is_service_event_type(kind) else "ticket"


class Replayer:
    """Drives stage 1, the services stage and the ledger over in-memory state: the live
    rules, with one clock.

    The file is one timeline: before a ticket or service event at t, both stages fire what
    is due before t, so they share the replay clock, and the ledger's only source is that
    clock: ticket credits are released once it is past their `decided_at`, period ends once
    it has reached them, exactly as live with every partition's clock at the same instant.
    """

    SOURCE = "replay"

    def __init__(
        self,
        policy: CompiledPolicy,
        emit: Callable[[Output], None],
        closed_retention_us: int = 7 * DAY_US,
    ) -> None:
        self.versions = PolicyBook(policy)
        self.book = ContractBook.from_policy(policy, self.versions)
        self.engine = TicketEngine(policy, self.book, self.versions)
        self.store: dict[str, TicketState] = {}
        self.stage = TicketStage(self.engine, self.store, 0, closed_retention_us)
        services = compile_services(policy.raw) if policy.raw is not None else {}
        self.services = (
            ServiceStage(services, {}, sources=[self.SOURCE], versions=self.versions)
            if services
            else None
        )
        self.ledger = LedgerStage(
            policy,
            self.book,
            [self.SOURCE],
            availability_percent=ledger_availability_percent(services),
            versions=self.versions,
        )
        self._emit = emit
        self.contract_changes = 0
        self.policy_changes = 0
        self._released_at: int | None = None  # the clock of the last ledger release

    @property
    def credits(self) -> int:
        return self.ledger.counters.credits

    def on_line(self, raw: bytes) -> None:
        """Apply one input line. Raises `Rejected` for a line to dead-letter."""
        event = decode_fast(raw)
        if event is None:  # not a ticket event msgspec vouches for: what kind of line?
            event = self._other_line(raw)
            if event is None:
                return
        occurred = to_us(event.occurred_at)
        outputs = self.stage.on_event(event, occurred)
        if self.services is not None:
            outputs = self.services.advance_before(occurred) + outputs + self._settle_services()
        self._publish(outputs)

    def _other_line(self, raw: bytes) -> EngineEvent | None:
        """A line the fast path did not decode: a contract, policy or service line is
        applied here (None); a ticket line is decoded by pydantic (or rejected).

        A line `decode_fast` decodes is a ticket line for `line_kind` too: msgspec refuses
        a repeated key, so its `type`, a ticket event's, is the one `line_kind` reads."""
        kind = line_kind(raw)
        if kind == "contract":
            change = decode_contract_change(raw)
            self.ledger.on_contract(change.customer_id, change.contract, to_us(change.occurred_at))
            self.contract_changes += 1
            self._released_at = None
            return None
        if kind == "policy":
            # a version takes effect at its P, when the stages' clocks get there; the line
            # itself moves no clock and is not an input instant of the statements
            publication = decode_policy_change(raw)
            published = to_us(publication.occurred_at)
            take_policy_change(self.versions, self.book, publication, published)
            self.policy_changes += 1
            self._released_at = None
            return None
        if kind == "service":
            service_event = decode_service_event(raw)
            if self.services is None:
                raise Rejected(
                    "UnknownService",
                    f"service {service_event.service_id!r}: the policy defines no services",
                )
            at = to_us(service_event.occurred_at)
            before = self.stage.advance_to(at - 1)  # ticket timers due before the event
            try:
                applied = self.services.on_event(service_event, at)
            except Rejected:
                # those timers fired: their outputs stand; only the line is refused
                self._publish(before + self._settle_services())
                raise
            self._publish(before + applied + self._settle_services())
            return None
        return decode_event(raw)

    def _settle_services(self) -> list[Output]:
        """Tell the services stage how far the replay got: the earliest input instant is
        settled as soon as it is applied (one clock), and every service is reported from
        its period (docs/availability.md: Quiet services)."""
        fired, first = self.fired_through(), self.first_applied()
        if self.services is None or fired is None:
            return []
        return self.services.on_watermark(self.SOURCE, fired, first)

    def finish(self, until: int | None) -> None:
        until = self.clock() if until is None else until
        if until is not None:
            outputs = self.stage.advance_to(until)
            if self.services is not None:
                outputs += self.services.advance_to(until)
            self._publish(outputs, final=until)

    def clock(self) -> int | None:
        """The replay clock: the latest of the stages' clocks (they move together)."""
        clocks = [self.stage.clock]
        if self.services is not None:
            clocks.append(self.services.clock)
        known = [c for c in clocks if c is not None]
        return max(known) if known else None

    def fired_through(self) -> int | None:
        """Every timer of both stages due at or before this instant has fired: the ledger's
        watermark (after an event at t, timers due at t are still to come)."""
        fired = self.stage.fired_through
        if self.services is not None:  # the least of those known (on every line: no lists)
            other = self.services.fired_through
            if fired is None or (other is not None and other < fired):
                fired = other
        return fired

    def first_applied(self) -> int | None:
        first = self.stage.first_applied
        if self.services is not None:
            other = self.services.first_applied
            if first is None or (other is not None and other < first):
                first = other
        return first

    def _publish(self, outputs: list[Output], final: int | None = None) -> None:
        self.release_ledger(self.offer(outputs), final)

    def offer(self, outputs: list[Output]) -> bool:
        """Emit outputs (a hold fact is for the ledger only) and give the ledger those it
        takes; whether it was given any."""
        ledger = self.ledger
        offered = False
        for output in outputs:
            kind = output["type"]
            if kind == GROUP_HOLD:  # a hold fact: for the ledger only
                ledger.on_outcome(output)
                offered = True
                continue
            self._emit(output)
            if kind == "sla.availability_report":
                ledger.on_availability(output)
                offered = True
            elif ledger_input(output):
                ledger.on_outcome(output)
                offered = True
        return offered

    def release_ledger(self, offered: bool, final: int | None = None) -> None:
        """Tell the ledger how far the replay got and emit what it releases (at the end,
        `final`: everything through that instant)."""
        ledger = self.ledger
        clock = self.fired_through()
        if clock is None or (final is None and not offered and clock == self._released_at):
            return  # nothing new for the ledger: same clock, nothing offered
        forced = self._released_at is None  # a contract or policy line came before
        self._released_at = clock
        ledger.on_watermark(self.SOURCE, clock, self.first_applied())
        if final is None and not forced:
            # Most lines: nothing is due at this clock, so `release` would find nothing
            # (it checks the same `next_due` after computing the watermark again).
            due = ledger.next_due()
            if due is None or due > clock:
                return
        released = ledger.release() if final is None else ledger.release(through=final, final=True)
        for output in released:
            self._emit(output)


class OutputWriter:
    """`emit` for a JSON Lines sink: each output `orjson.dumps`ed with a newline, written
    in blocks of about `block` bytes (compiled with the core, it saves a call into Python
    and a `write` per output). `write_raw` keeps the order with bytes already serialised
    (`replay --workers`); `flush` at the end."""

    def __init__(self, write: Callable[[bytes], object], block: int = 1 << 16) -> None:
        self._write = write
        self._block = block
        self._parts: list[bytes] = []
        self._size = 0

    def __call__(self, output: Output) -> None:
        data = orjson.dumps(output, option=orjson.OPT_APPEND_NEWLINE)
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self._block:
            self.flush()

    def write_raw(self, data: bytes) -> None:
        self.flush()
        self._write(data)

    def flush(self) -> None:
        if self._parts:
            self._write(b"".join(self._parts))
            self._parts = []
            self._size = 0


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
        if not line or line.isspace():  # blank (`not line.strip()`, without a copy)
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
        None if replayer.services is None else replayer.services.counters,
        replayer.contract_changes,
        replayer.policy_changes,
    )
