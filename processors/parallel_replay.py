"""`slaclock replay --workers N`: one replay, its tickets sharded across processes, its
outputs merged into exactly the bytes one process writes.

Why this is exact. A ticket's outputs depend only on its own events and on the instants its
timers fire at, never on other tickets; so each shard (one process) runs a ticket stage
over the ticket lines whose `ticket_id` hashes to it, plus every broadcast line (contract
changes: they decide the tier of tickets created later). What one process adds is the
*order*: before an applied ticket event (or a service event) at t it fires every ticket
timer due before t, in (due, ticket) order; the event's own outputs follow. So each shard
fires its timers one due instant at a time and tags each timer output with (due,
ticket_id, sequence), and the parent walks the lines in file order: at each line that fires
(an applied ticket event, a service event) it takes the shards' timer outputs due before
the line's instant, sorted by that key, then the line's own outputs, then the ledger's
releases. The merge key is thus (instant, timers before the next line, line number,
sequence). The services stage and the ledger run once, in the parent, on the merged
stream, through the single-process `Replayer`; rejected lines reach the dead-letter sink
in line order.

Only for input in time order: one process applies a late event at its clock, and a shard's
clock, which has not seen the other shards' events, would not. So the parent first checks
that no ticket line is older than the replay clock before it (as one process would have
it), and otherwise replays in one process (`ParallelReplay.fallback` says why). Input with
a policy version (`policy.changed`) also replays in one process: a version applies at its P
to every open ticket in one sweep, which the shards do not reproduce.

A new kind of input line: add it to `line_kind` (replay.py) and to `BROADCAST` if it
changes what the ticket stages decide (as contract changes do); broadcast lines go to
every shard and to the parent, in file order, through `Replayer.on_line`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson

from slaclock.processors.engine.instants import format_us, to_us
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.stage import StageCounters, TicketStage
from slaclock.processors.engine.ticket import Output
from slaclock.processors.gc_tuning import tune_gc
from slaclock.processors.intake import decode_event
from slaclock.processors.replay import Rejection, Replayer, ReplaySummary, line_kind, replay
from slaclock.processors.services_intake import decode_service_event
from slaclock.schemas.rejection import Rejected
from slaclock.schemas.services import ServiceEvent

BROADCAST = frozenset({"contract"})
"""Line kinds every shard applies too, in file order (they change what tickets get)."""

DECODE_CLASSES = ("InvalidJson", "SchemaViolation", "NaiveTimestamp")
"""Rejections `replay` counts as `rejected` (the stages count their own)."""

AUTO_MIN_LINES = 20_000
"""With the default worker count, smaller inputs replay in one process (start-up costs)."""

_UNDECODED, _REJECTED, _DUPLICATE, _APPLIED = 0, 1, 2, 3

# A shard's timer output: (due, ticket_id, sequence in the shard, JSON).
_Timer = tuple[int, str, int, bytes]
# A shard's verdict on one of its ticket lines: (line number, verdict, instant, detail):
# undecoded or rejected -> (error_class, message); applied -> its own outputs as JSON.
_Verdict = tuple[int, int, int, Any]


def default_workers() -> int:
    return os.cpu_count() or 1


@dataclass
class ParallelReplay:
    """What the parallel replay did: its summary, the workers used, why it fell back."""

    summary: ReplaySummary
    workers: int
    fallback: str | None = None


@dataclass
class _Line:
    number: int
    raw: bytes
    kind: str
    shard: int = -1  # ticket lines


@dataclass
class _Shard:
    process: Any
    conn: Connection
    verdicts: list[_Verdict] = field(default_factory=list)


def replay_parallel(
    policy: CompiledPolicy,
    lines: Iterable[bytes],
    emit: Callable[[Output], None],
    reject: Callable[[Rejection], None],
    until: int | None = None,
    workers: int | None = None,
) -> ParallelReplay:
    """`replay` with tickets sharded over `workers` processes (default: the cores; then
    inputs under `AUTO_MIN_LINES` lines use one). Same outputs, rejections and summary, in
    the same order, as `replay` for input in time order; otherwise it is `replay`."""
    raw_lines = list(lines)
    auto = workers is None
    n = default_workers() if workers is None else workers
    if n <= 1 or (auto and len(raw_lines) < AUTO_MIN_LINES) or not _can_fork():
        return ParallelReplay(replay(policy, raw_lines, emit, reject, until), 1)
    parsed = _route(raw_lines, n)
    versioned = next((line.number for line in parsed if line.kind == "policy"), None)
    if versioned is not None:
        # A version applies at its P to every open ticket at once (one sweep, in the
        # stage's order); the shards do not replay that sweep, so such input runs whole.
        summary = replay(policy, raw_lines, emit, reject, until)
        reason = f"line {versioned} is a policy version (policy.changed), which is not sharded"
        return ParallelReplay(summary, 1, fallback=reason)
    shards = _start_shards(policy, parsed, n)
    try:
        for shard in shards:
            shard.verdicts = _receive(shard)
        merge = _Merge(policy, parsed, shards, emit, reject)
        disorder = merge.check_time_order()
        if disorder is not None:
            _stop(shards)
            summary = replay(policy, raw_lines, emit, reject, until)
            return ParallelReplay(summary, 1, fallback=disorder)
        merge.run(until)
        summary = merge.summary(len(raw_lines))
    finally:
        _stop(shards)
    return ParallelReplay(summary, n)


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _route(raw_lines: list[bytes], n: int) -> list[_Line]:
    parsed = []
    for number, raw in enumerate(raw_lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        kind = line_kind(line)
        item = _Line(number, line, kind)
        if kind == "ticket":
            item.shard = _shard_of(line, n)
        parsed.append(item)
    return parsed


_TICKET_ID = re.compile(rb'"ticket_id"[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"')


def _shard_of(line: bytes, n: int) -> int:
    """The shard of a ticket line: a stable hash of its `ticket_id` (as the decoder will
    read it; a line that does not decode goes to shard 0, to be rejected there).

    Fast path: a line naming `"ticket_id"` once, with a value free of escapes, hashes the
    value's bytes (the UTF-8 the decoder reads); where that one mention is not the key, the
    line has no `ticket_id` and is rejected wherever it goes."""
    if line.count(b'"ticket_id"') == 1:
        match = _TICKET_ID.search(line)
        if match is not None:
            return zlib.crc32(match.group(1)) % n
    ticket: object = None
    with contextlib.suppress(orjson.JSONDecodeError):
        data = orjson.loads(line)
        if isinstance(data, dict):
            ticket = data.get("ticket_id")
    if not isinstance(ticket, str):  # e.g. a NaN orjson refuses and pydantic takes
        try:
            ticket = decode_event(line).ticket_id
        except Rejected:
            return 0
    return zlib.crc32(ticket.encode("utf-8", "surrogatepass")) % n


def _start_shards(policy: CompiledPolicy, parsed: list[_Line], n: int) -> list[_Shard]:
    context = multiprocessing.get_context("fork")
    shards = []
    for index in range(n):
        items = [
            (line.number, line.raw, line.kind in BROADCAST)
            for line in parsed
            if line.shard == index or line.kind in BROADCAST
        ]
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_shard_main, args=(policy, items, child_end), name=f"replay-shard-{index}"
        )
        process.start()
        child_end.close()
        shards.append(_Shard(process, parent_end))
    return shards


def _stop(shards: list[_Shard]) -> None:
    for shard in shards:
        with contextlib.suppress(OSError):
            shard.conn.send(None)
        shard.conn.close()
    for shard in shards:
        shard.process.join(5)
        if shard.process.is_alive():
            shard.process.terminate()
            shard.process.join()


# -- a shard ------------------------------------------------------------------------------


def _shard_main(
    policy: CompiledPolicy, items: list[tuple[int, bytes, bool]], conn: Connection
) -> None:
    try:
        _shard(policy, items, conn)
    except BaseException as error:  # the parent raises it: a shard's failure is the replay's
        with contextlib.suppress(OSError):
            conn.send(_ShardFailed(f"{type(error).__name__}: {error}"))
        raise


def _shard(policy: CompiledPolicy, items: list[tuple[int, bytes, bool]], conn: Connection) -> None:
    """One shard: its ticket lines in file order (verdicts and outputs back to the parent),
    then timers fired on request ((limit, inclusive) messages) until None."""
    tune_gc()
    replayer = Replayer(policy, _discard)
    stage = replayer.stage
    timers: list[_Timer] = []
    verdicts: list[_Verdict] = []
    for number, raw, broadcast in items:
        if broadcast:
            with contextlib.suppress(Rejected):  # the parent reports it
                replayer.on_line(raw)
            continue
        try:
            event = decode_event(raw)
        except Rejected as rejected:
            if rejected.error_class in DECODE_CLASSES:
                stage.counters.rejected += 1
            verdicts.append((number, _UNDECODED, 0, (rejected.error_class, rejected.message)))
            continue
        at = to_us(event.occurred_at)
        _fire(stage, at, False, timers)
        duplicates = stage.counters.duplicates
        try:
            outputs = stage.on_event(event, at)
        except Rejected as rejected:
            verdicts.append((number, _REJECTED, at, (rejected.error_class, rejected.message)))
            continue
        if stage.counters.duplicates != duplicates:
            verdicts.append((number, _DUPLICATE, at, None))
        else:
            verdicts.append((number, _APPLIED, at, [orjson.dumps(o) for o in outputs]))
    conn.send(verdicts)
    while True:
        request = conn.recv()
        if request is None:
            break
        if request == "counters":
            conn.send(_counters_tuple(stage.counters))
            continue
        limit, inclusive = request
        _fire(stage, limit, inclusive, timers)
        conn.send(timers)  # with those fired while applying the lines, the first time
        timers = []
    conn.close()


class _ShardFailed:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _receive(shard: _Shard) -> Any:
    try:
        message = shard.conn.recv()
    except EOFError:
        raise RuntimeError(f"replay shard {shard.process.name} exited unexpectedly") from None
    if isinstance(message, _ShardFailed):
        raise RuntimeError(f"replay shard {shard.process.name} failed: {message.reason}")
    return message


def _discard(_output: Output) -> None:
    return None


def _fire(stage: TicketStage, limit: int, inclusive: bool, into: list[_Timer]) -> None:
    """Fire the shard's timers due before `limit` (or at it), one due instant at a time, so
    every output is tagged with the instant it is due at."""
    while True:
        due = stage.earliest_timer()
        if due is None or due > limit or (due == limit and not inclusive):
            return
        for sequence, output in enumerate(stage.advance_to(due)):
            into.append((due, output["ticket_id"], sequence, orjson.dumps(output)))


def _counters_tuple(c: StageCounters) -> tuple[Any, ...]:
    return (
        c.events,
        c.duplicates,
        c.ignored_closed,
        c.late,
        c.rejected,
        c.outputs,
        c.purged,
        dict(c.by_output_type),
        dict(c.untracked),
    )


def _add_counters(total: StageCounters, part: tuple[Any, ...]) -> None:
    events, duplicates, ignored, late, rejected, outputs, purged, by_type, untracked = part
    total.events += events
    total.duplicates += duplicates
    total.ignored_closed += ignored
    total.late += late
    total.rejected += rejected
    total.outputs += outputs
    total.purged += purged
    for kind, count in by_type.items():
        total.by_output_type[kind] = total.by_output_type.get(kind, 0) + count
    for reason, count in untracked.items():
        total.untracked[reason] = total.untracked.get(reason, 0) + count


# -- the parent: merge, services, ledger --------------------------------------------------


class _Merge:
    """Walks the lines in file order and publishes what one process would, through a
    `Replayer` whose ticket stage holds no tickets: only the clock one process would have
    (clock, fired_through, first_applied), which the ledger's watermark reads."""

    def __init__(
        self,
        policy: CompiledPolicy,
        parsed: list[_Line],
        shards: list[_Shard],
        emit: Callable[[Output], None],
        reject: Callable[[Rejection], None],
    ) -> None:
        self.parsed = parsed
        self.shards = shards
        self.reject = reject
        self.replayer = Replayer(policy, emit)
        self.verdicts: dict[int, _Verdict] = {v[0]: v for shard in shards for v in shard.verdicts}
        self.services: dict[int, ServiceEvent | Rejected] = {}
        self.timers: list[_Timer] = []
        self.taken = 0

    def check_time_order(self) -> str | None:
        """Why sharding would change the outputs (a ticket line older than the replay clock
        before it), or None. Also decodes the service lines, once."""
        clock: int | None = None
        has_services = self.replayer.services is not None
        for line in self.parsed:
            if line.kind == "service":
                try:
                    event = decode_service_event(line.raw)
                except Rejected as rejected:
                    self.services[line.number] = rejected
                    continue
                self.services[line.number] = event
                if has_services:
                    at = to_us(event.occurred_at) - 1
                    clock = at if clock is None or at > clock else clock
            elif line.kind == "ticket":
                _, verdict, at, _ = self.verdicts[line.number]
                if verdict == _UNDECODED:
                    continue
                if clock is not None and at < clock:
                    return (
                        f"line {line.number} ({format_us(at)}) is older than the replay "
                        f"clock before it ({format_us(clock)})"
                    )
                if verdict == _APPLIED and (clock is None or at > clock):
                    clock = at
        return None

    def run(self, until: int | None) -> None:
        # every timer due before the last firing line's instant: the shards fire them now
        last = self._last_firing_instant()
        if last is not None:
            self._collect((last, False))
        replayer = self.replayer
        for line in self.parsed:
            try:
                if line.kind == "ticket":
                    self._ticket_line(line)
                elif line.kind == "service":
                    self._service_line(line)
                else:
                    replayer.on_line(line.raw)
            except Rejected as rejected:
                if rejected.error_class in DECODE_CLASSES:
                    replayer.stage.counters.rejected += 1
                self._reject(line, rejected.error_class, rejected.message)
        self._finish(until)

    def _last_firing_instant(self) -> int | None:
        last: int | None = None
        for _number, verdict, at, _ in self.verdicts.values():
            if verdict == _APPLIED and (last is None or at > last):
                last = at
        if self.replayer.services is not None:
            for event in self.services.values():
                if not isinstance(event, Rejected):
                    at = to_us(event.occurred_at)
                    if last is None or at > last:
                        last = at
        return last

    def _collect(self, request: tuple[int, bool]) -> None:
        for shard in self.shards:
            shard.conn.send(request)
        for shard in self.shards:
            self.timers.extend(_receive(shard))
        pending = self.timers[self.taken :]
        pending.sort()
        self.timers[self.taken :] = pending

    def _take(self, limit: int, inclusive: bool) -> list[Output]:
        """The shards' timer outputs due before `limit` (or at it), in (due, ticket) order."""
        timers = self.timers
        start = end = self.taken
        while end < len(timers) and (
            timers[end][0] < limit or (inclusive and timers[end][0] == limit)
        ):
            end += 1
        self.taken = end
        return [orjson.loads(t[3]) for t in timers[start:end]]

    def _ticket_line(self, line: _Line) -> None:
        _, verdict, at, detail = self.verdicts[line.number]
        if verdict in (_UNDECODED, _REJECTED):
            error_class, message = detail
            self._reject(line, error_class, message)
            return
        replayer = self.replayer
        outputs: list[Output] = []
        if verdict == _APPLIED:
            # the stage's on_event (time order checked: the event is not late)
            stage = replayer.stage
            if stage.clock is None or at > stage.clock:
                stage.clock = at
            outputs = self._take(at, False)
            if stage.fired_through is None or at - 1 > stage.fired_through:
                stage.fired_through = at - 1
            if stage.first_applied is None or at < stage.first_applied:
                stage.first_applied = at
            outputs.extend(orjson.loads(raw) for raw in detail)
        if replayer.services is not None:
            outputs = replayer.services.advance_before(at) + outputs + replayer._settle_services()
        replayer._publish(outputs)

    def _service_line(self, line: _Line) -> None:
        event = self.services[line.number]
        if isinstance(event, Rejected):
            raise event
        replayer = self.replayer
        if replayer.services is None:
            raise Rejected(
                "UnknownService", f"service {event.service_id!r}: the policy defines no services"
            )
        at = to_us(event.occurred_at)
        before = self._advance(at - 1)
        try:
            applied = replayer.services.on_event(event, at)
        except Rejected:
            replayer._publish(before + replayer._settle_services())
            raise
        replayer._publish(before + applied + replayer._settle_services())

    def _advance(self, instant: int) -> list[Output]:
        """The ticket stage's `advance_to(instant)`, its timers from the shards."""
        stage = self.replayer.stage
        if stage.clock is None or instant > stage.clock:
            stage.clock = instant
        outputs = self._take(stage.clock, True)
        stage.fired_through = stage.clock
        return outputs

    def _finish(self, until: int | None) -> None:
        replayer = self.replayer
        until = replayer.clock() if until is None else until
        if until is None:
            return
        stage = replayer.stage
        limit = until if stage.clock is None or until > stage.clock else stage.clock
        self._collect((limit, True))
        outputs = self._advance(until)
        if replayer.services is not None:
            outputs += replayer.services.advance_to(until)
        replayer._publish(outputs, final=until)

    def _reject(self, line: _Line, error_class: str, message: str) -> None:
        raw = line.raw.decode("utf-8", "replace")
        self.reject(Rejection(line.number, error_class, message, raw))

    def summary(self, lines: int) -> ReplaySummary:
        replayer = self.replayer
        counters = replayer.stage.counters
        for shard in self.shards:
            shard.conn.send("counters")
            _add_counters(counters, _receive(shard))
        return ReplaySummary(
            lines,
            counters,
            replayer.credits,
            replayer.stage.clock,
            replayer.ledger.counters,
            None if replayer.services is None else replayer.services.counters,
            replayer.contract_changes,
        )
