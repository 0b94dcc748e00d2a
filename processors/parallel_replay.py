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
clock, which has not seen the other shards' events, would not. So the parent checks that
no ticket line is older than the replay clock before it (as one process would have it),
nor older than a ticket line before it that did not apply (refused or repeated: one
process moves no clock for it, but its shard fired its timers due before it first), and
otherwise replays in one process (`ParallelReplay.fallback` says why). Input with
a policy version (`policy.changed`) also replays in one process: a version applies at its P
to every open ticket in one sweep, which the shards do not reproduce.

A new kind of input line: add it to `line_kind` (replay.py) and to `BROADCAST` if it
changes what the ticket stages decide (as contract changes do); broadcast lines go to
every shard and to the parent, in file order, through `Replayer.on_line`.

What the parent does is the serial part of the replay, so the shards do all they can.
The parent routes every line once (a substring test for the kind of line, the hash of
`ticket_id`) into a map the shards share, batch by batch as they start, so each shard
reads only its own lines and waits only for the batch it is about to read. A shard sends its
outputs already serialised (the bytes one process writes), in one buffer per batch, with
the few outputs the ledger takes (breaches, first met completions, hold facts) apart; the
parent writes those bytes as they are (`emit_raw`), consecutive ones at once, and decodes
only the ledger's share.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import multiprocessing
import os
import re
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson

from slaclock.processors.engine.group_ledger import GROUP_HOLD
from slaclock.processors.engine.instants import format_us, to_us
from slaclock.processors.engine.ledger import ledger_input
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.stage import StageCounters, TicketStage
from slaclock.processors.engine.ticket import Output
from slaclock.processors.gc_tuning import tune_gc
from slaclock.processors.intake import decode_event
from slaclock.processors.replay import (
    POLICY_CHANGED,
    Rejection,
    Replayer,
    ReplaySummary,
    line_kind,
    replay,
)
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

# A shard's timer output: (due, ticket_id, sequence in the shard, the bytes to write (JSON
# and a newline; empty for a hold fact), the JSON the ledger takes (empty: none)).
_Timer = tuple[int, str, int, bytes, bytes]


def default_workers() -> int:
    return os.cpu_count() or 1


@dataclass
class ParallelReplay:
    """What the parallel replay did: its summary, the workers used, why it fell back."""

    summary: ReplaySummary
    workers: int
    fallback: str | None = None


@dataclass
class _Verdicts:
    """One batch of a shard: its verdicts on its ticket lines of `CHUNK` input lines, in
    line order: for the i-th, its line number, verdict and instant; its own outputs' bytes
    are `written[ends[i-1]:ends[i]]`, the ledger's share of them `ledger[i]`, a refused
    line's reason `refused[i]`. With them: the timers the shard fired meanwhile, and the
    instant before which it has fired every timer (`fired_below`; None: none yet)."""

    numbers: array[int] = field(default_factory=lambda: array("q"))
    codes: bytearray = field(default_factory=bytearray)
    instants: array[int] = field(default_factory=lambda: array("q"))
    ends: array[int] = field(default_factory=lambda: array("q"))
    written: bytes = b""
    ledger: dict[int, list[bytes]] = field(default_factory=dict)
    refused: dict[int, tuple[str, str]] = field(default_factory=dict)
    timers: list[_Timer] = field(default_factory=list)
    fired_below: int | None = None


CHUNK = 4096
"""Input lines per batch: the parent merges a batch while the shards work on the next."""


@dataclass
class _Shard:
    process: Any
    conn: Connection


def replay_parallel(
    policy: CompiledPolicy,
    lines: Iterable[bytes],
    emit: Callable[[Output], None],
    reject: Callable[[Rejection], None],
    until: int | None = None,
    workers: int | None = None,
    emit_raw: Callable[[bytes], None] | None = None,
) -> ParallelReplay:
    """`replay` with tickets sharded over `workers` processes (default: the cores; then
    inputs under `AUTO_MIN_LINES` lines use one). Same outputs, rejections and summary, in
    the same order, as `replay` for input in time order; otherwise it is `replay`.

    `emit_raw`, if given, takes the outputs the shards serialised as they are: the bytes
    of one or more outputs, each `orjson.dumps(output)` and a newline (a writer's fast
    path; `emit` still takes the others). Without it every output goes to `emit`."""
    raw_lines = list(lines)
    auto = workers is None
    n = default_workers() if workers is None else workers
    if n <= 1 or (auto and len(raw_lines) < AUTO_MIN_LINES) or not _can_fork():
        return ParallelReplay(replay(policy, raw_lines, emit, reject, until), 1)
    versioned = _first_policy_line(raw_lines)
    if versioned is not None:
        # A version applies at its P to every open ticket at once (one sweep, in the
        # stage's order); the shards do not replay that sweep, so such input runs whole.
        summary = replay(policy, raw_lines, emit, reject, until)
        reason = f"line {versioned} is a policy version (policy.changed), which is not sharded"
        return ParallelReplay(summary, 1, fallback=reason)
    if emit_raw is None:
        emit_raw = _decoding(emit)
    held = _Held(emit, emit_raw, reject)
    n = min(n, MAX_SHARDS)
    routes = _Routes(raw_lines, n)
    shards = _start_shards(policy, raw_lines, routes)
    try:
        others = routes.route_all()  # the shards start on each batch as soon as it is routed
        merge = _Merge(policy, raw_lines, shards, held, others)
        disorder = merge.run(until)
        if disorder is not None:
            _stop(shards, abort=True)
            summary = replay(policy, raw_lines, emit, reject, until)
            return ParallelReplay(summary, 1, fallback=disorder)
        summary = merge.summary(len(raw_lines))
    except BaseException:
        _stop(shards, abort=True)  # they may be waiting for a batch never routed
        raise
    finally:
        _stop(shards)
    held.flush()
    return ParallelReplay(summary, n)


class _Held:
    """The merge's outputs and rejections, held until the merge is known to be exact (a
    line out of time order, found half-way, means replaying in one process instead).
    Consecutive bytes from the shards are held (and written) as one."""

    def __init__(
        self,
        emit: Callable[[Output], None],
        emit_raw: Callable[[bytes], None],
        reject: Callable[[Rejection], None],
    ) -> None:
        self._sinks = (emit, emit_raw, reject)
        self._held: list[tuple[int, Any]] = []
        self._raw: list[bytes] = []

    def emit(self, output: Output) -> None:
        self._join_raw()
        self._held.append((0, output))

    def emit_raw(self, written: bytes) -> None:
        self._raw.append(written)

    def reject(self, rejection: Rejection) -> None:
        self._join_raw()
        self._held.append((2, rejection))

    def _join_raw(self) -> None:
        if self._raw:
            self._held.append((1, b"".join(self._raw)))
            self._raw = []

    def flush(self) -> None:
        self._join_raw()
        sinks = self._sinks
        for sink, item in self._held:
            sinks[sink](item)
        self._held = []


def _decoding(emit: Callable[[Output], None]) -> Callable[[bytes], None]:
    def emit_raw(written: bytes) -> None:
        for line in written.splitlines():
            emit(orjson.loads(line))

    return emit_raw


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _first_policy_line(raw_lines: list[bytes]) -> int | None:
    """The number of the first `policy.changed` line (a substring test first: cheap)."""
    for number, raw in enumerate(raw_lines, start=1):
        if POLICY_CHANGED in raw:
            line = raw.rstrip(b"\r\n")
            if line.strip() and line_kind(line) == "policy":
                return number
    return None


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


def _batches(raw_lines: list[bytes]) -> int:
    """Batches of `CHUNK` input lines (the last one may be empty): lines
    `b * CHUNK + 1 ... (b + 1) * CHUNK` are batch b."""
    return len(raw_lines) // CHUNK + 1


MAX_SHARDS = 240
"""Shards at most (a line's route is one byte: a shard's index or a mark)."""

_BLANK, _OTHER, _BROADCAST = 255, 254, 253


class _Routes:
    """Every line routed once, by the parent, into a map the shards share (one byte a
    line: its shard, or a mark for a broadcast line, another kind of line, a blank one),
    batch by batch after they start: a shard waits only for the batch it is about to
    read (a semaphore per shard, released once per batch routed; the parent never waits
    for a shard here, so no pipe can fill up on both ends)."""

    def __init__(self, raw_lines: list[bytes], n: int) -> None:
        self.raw_lines = raw_lines
        self.n = n
        self.map = mmap.mmap(-1, max(1, len(raw_lines)))  # shared with the forked shards
        context = multiprocessing.get_context("fork")
        self.ready = [context.Semaphore(0) for _ in range(n)]

    def route_all(self) -> list[list[tuple[int, str]]]:
        """Route every batch (a substring test for the kind of line, the hash of its
        `ticket_id`); per batch, the lines that are not ticket lines, as (number, kind)."""
        raw_lines = self.raw_lines
        routes = self.map
        n = self.n
        others: list[list[tuple[int, str]]] = []
        for batch in range(_batches(raw_lines)):
            batch_others: list[tuple[int, str]] = []
            stop = min(len(raw_lines), (batch + 1) * CHUNK)
            for number in range(batch * CHUNK + 1, stop + 1):
                line = raw_lines[number - 1].rstrip(b"\r\n")
                if not line or line.isspace():  # blank
                    routes[number - 1] = _BLANK
                    continue
                kind = line_kind(line)
                if kind == "ticket":
                    routes[number - 1] = _shard_of(line, n)
                    continue
                batch_others.append((number, kind))
                routes[number - 1] = _BROADCAST if kind in BROADCAST else _OTHER
            for ready in self.ready:
                ready.release()
            others.append(batch_others)
        return others


def _start_shards(policy: CompiledPolicy, raw_lines: list[bytes], routes: _Routes) -> list[_Shard]:
    context = multiprocessing.get_context("fork")
    shards = []
    for index in range(routes.n):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_shard_main,
            args=(policy, raw_lines, routes, index, child_end),
            name=f"replay-shard-{index}",
        )
        process.start()
        child_end.close()
        shards.append(_Shard(process, parent_end))
    return shards


def _stop(shards: list[_Shard], abort: bool = False) -> None:
    """Stop the shards: asked to, or (`abort`, they may be half-way) terminated."""
    if abort:
        for shard in shards:
            if shard.process.is_alive():
                shard.process.terminate()
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
    policy: CompiledPolicy, raw_lines: list[bytes], routes: _Routes, index: int, conn: Connection
) -> None:
    try:
        _shard(policy, raw_lines, routes, index, conn)
    except BaseException as error:  # the parent raises it: a shard's failure is the replay's
        with contextlib.suppress(OSError):
            conn.send(_ShardFailed(f"{type(error).__name__}: {error}"))
        raise


def _shard(
    policy: CompiledPolicy, raw_lines: list[bytes], routes: _Routes, index: int, conn: Connection
) -> None:
    """One shard: batch by batch, as soon as the parent has routed it (`_Routes`), its
    own ticket lines applied in file order (verdicts and outputs back to the parent),
    broadcast lines applied too; then timers fired on request ((limit, inclusive)
    messages) until None."""
    # Everything inherited from the parent is frozen first, so no collection here runs the
    # destructors of the parent's garbage: a native handle (a Kafka client, a RocksDB) whose
    # threads did not come along with the fork would crash this process.
    gc.freeze()
    tune_gc()
    replayer = Replayer(policy, _discard)
    stage = replayer.stage
    found = _Verdicts()
    written: list[bytes] = []
    size = 0
    fired_below: int | None = None
    ready = routes.ready[index]
    routed = routes.map
    for batch in range(_batches(raw_lines)):
        if batch:
            found.written = b"".join(written)
            found.fired_below = fired_below
            conn.send(found)
            found, written, size = _Verdicts(), [], 0
        ready.acquire()  # the parent has routed this batch
        stop = min(len(raw_lines), (batch + 1) * CHUNK)
        for number in range(batch * CHUNK + 1, stop + 1):
            route = routed[number - 1]
            if route != index:
                if route == _BROADCAST:
                    with contextlib.suppress(Rejected):  # the parent reports it
                        replayer.on_line(raw_lines[number - 1].rstrip(b"\r\n"))
                continue
            line = raw_lines[number - 1].rstrip(b"\r\n")
            verdict = len(found.codes)
            found.numbers.append(number)
            try:
                event = decode_event(line)
            except Rejected as rejected:
                if rejected.error_class in DECODE_CLASSES:
                    stage.counters.rejected += 1
                found.refused[verdict] = (rejected.error_class, rejected.message)
                found.codes.append(_UNDECODED)
                found.instants.append(0)
                found.ends.append(size)
                continue
            at = to_us(event.occurred_at)
            found.instants.append(at)
            _fire(stage, at, False, found.timers)
            if fired_below is None or at > fired_below:
                fired_below = at
            duplicates = stage.counters.duplicates
            try:
                outputs = stage.on_event(event, at)
            except Rejected as rejected:
                found.refused[verdict] = (rejected.error_class, rejected.message)
                found.codes.append(_REJECTED)
                found.ends.append(size)
                continue
            if stage.counters.duplicates != duplicates:
                found.codes.append(_DUPLICATE)
            else:
                found.codes.append(_APPLIED)
                ledger: list[bytes] = []
                for output in outputs:
                    data, taken = _serialise(output)
                    if data:
                        written.append(data)
                        size += len(data)
                    if taken:
                        ledger.append(taken)
                if ledger:
                    found.ledger[verdict] = ledger
            found.ends.append(size)
    found.written = b"".join(written)
    found.fired_below = fired_below
    conn.send(found)  # the last batch: every shard sends one per batch (`_batches`)
    del found, written
    while True:
        request = conn.recv()
        if request is None:
            break
        if request == "counters":
            conn.send(_counters_tuple(stage.counters))
            continue
        limit, inclusive = request
        timers: list[_Timer] = []
        _fire(stage, limit, inclusive, timers)
        conn.send(timers)
    conn.close()


def _serialise(output: Output) -> tuple[bytes, bytes]:
    """(the bytes to write: JSON and a newline, or empty for a hold fact; the JSON the
    ledger takes, or empty), as `Replayer.offer` sorts them."""
    data = orjson.dumps(output)
    if output["type"] == GROUP_HOLD:
        return b"", data
    return data + b"\n", data if ledger_input(output) else b""


@dataclass
class _ShardFailed:
    reason: str = ""  # (a default: compiled classes are unpickled without arguments)


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
            data, taken = _serialise(output)
            into.append((due, output["ticket_id"], sequence, data, taken))


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


def _number(entry: tuple[int, Any, int]) -> int:
    return entry[0]


def _take_outcomes(replayer: Replayer, outcomes: list[Output]) -> None:
    """The ledger's share of outputs already written (or hold facts, never written)."""
    ledger = replayer.ledger
    for outcome in outcomes:
        ledger.on_outcome(outcome)


class _Merge:
    """Walks the lines in file order and publishes what one process would, through a
    `Replayer` whose ticket stage holds no tickets: only the clock one process would have
    (clock, fired_through, first_applied), which the ledger's watermark reads.

    It takes the shards' batches as they come: a line that needs the timers due before its
    instant (an applied ticket event, a service event) waits until every shard has fired
    its timers that far (`fired_below`); the others only wait for the lines before them.
    """

    def __init__(
        self,
        policy: CompiledPolicy,
        raw_lines: list[bytes],
        shards: list[_Shard],
        held: _Held,
        others: list[list[tuple[int, str]]],
    ) -> None:
        self.raw_lines = raw_lines
        self.others = others  # per batch: the lines that are not ticket lines (`_Routes`)
        self.shards = shards
        self.emit_raw = held.emit_raw
        self.reject = held.reject
        self.replayer = Replayer(policy, held.emit)
        # lines received, not merged yet, in file order: (number, its shard's batch and
        # the verdict's index there), or (number, None, 0) for a line of kind `kinds[n]`
        self.pending: deque[tuple[int, _Verdicts | None, int]] = deque()
        self.kinds: dict[int, str] = {}
        self.services: dict[int, ServiceEvent | Rejected] = {}
        self.fired_below: list[int | None] = [None] * len(shards)
        self.timers: list[_Timer] = []
        self.taken = 0
        self.took_below: int | None = None  # every timer due before it has been taken
        self.last: int | None = None  # the last instant that fires timers (so far)
        self.order_clock: int | None = None  # the replay clock of the time-order check
        # the latest instant of a decoded ticket line that did not apply (refused, repeated)
        self.refused_floor: int | None = None

    def run(self, until: int | None) -> str | None:
        """Merge everything; or why sharding would change the outputs (then nothing merged
        may be used)."""
        for others in self.others:  # one batch of every shard per batch of lines
            problem = self._add([_receive(shard) for shard in self.shards], others)
            problem = problem or self._drain(final=False)
            if problem is not None:
                return problem
        # every timer due before the last firing line's instant: the shards fire them now
        if self.last is not None:
            problem = self._collect((self.last, False))
            if problem is not None:
                return problem
        problem = self._drain(final=True)
        if problem is not None:
            return problem
        self._finish(until)
        return None

    def _add(self, batches: list[_Verdicts], others: list[tuple[int, str]]) -> str | None:
        entries: list[tuple[int, _Verdicts | None, int]] = []
        last = self.last
        for index, batch in enumerate(batches):
            count = len(batch.numbers)
            entries.extend(zip(batch.numbers, [batch] * count, range(count), strict=True))
            for code, at in zip(batch.codes, batch.instants, strict=True):
                if code == _APPLIED and (last is None or at > last):
                    last = at
            self.fired_below[index] = batch.fired_below
        has_services = self.replayer.services is not None
        for number, kind in others:
            self.kinds[number] = kind
            entries.append((number, None, 0))
            if kind != "service":
                continue
            try:
                event = decode_service_event(self._line(number))
            except Rejected as rejected:
                self.services[number] = rejected
                continue
            self.services[number] = event
            if has_services:
                at = to_us(event.occurred_at)
                if last is None or at > last:
                    last = at
        self.last = last
        entries.sort(key=_number)
        self.pending.extend(entries)
        return self._receive_timers([t for batch in batches for t in batch.timers])

    def _receive_timers(self, timers: list[_Timer]) -> str | None:
        if not timers:
            return None
        behind = self.took_below
        if behind is not None and min(timers)[0] < behind:
            # never for time-ordered input: a shard's timers are due after its clock
            return f"a replay shard fired a timer due before {format_us(behind)} late"
        self.timers.extend(timers)
        pending = self.timers[self.taken :]
        pending.sort()
        self.timers[self.taken :] = pending
        return None

    def _drain(self, final: bool) -> str | None:
        """Merge the pending lines in order, as far as the shards' timers allow (`final`:
        all of them; every timer has been collected)."""
        frontier: int | None = None
        if not final and None not in self.fired_below:
            frontier = min(f for f in self.fired_below if f is not None)
        has_services = self.replayer.services is not None
        pending = self.pending
        replayer = self.replayer
        while pending:
            number, batch, verdict = pending[0]
            need: int | None = None  # the instant before which this line takes timers
            if batch is None:
                event = self.services.get(number)
                if has_services and event is not None and not isinstance(event, Rejected):
                    need = to_us(event.occurred_at)
            elif batch.codes[verdict] == _APPLIED:
                need = batch.instants[verdict]
            if not final and need is not None and (frontier is None or need > frontier):
                return None
            pending.popleft()
            problem = self._out_of_order(number, batch, verdict, need)
            if problem is not None:
                return problem
            try:
                if batch is not None:
                    self._ticket_line(number, batch, verdict)
                elif self.kinds[number] == "service":
                    self._service_line(number)
                else:
                    replayer.on_line(self._line(number))
            except Rejected as rejected:
                if rejected.error_class in DECODE_CLASSES:
                    replayer.stage.counters.rejected += 1
                self._reject(number, rejected.error_class, rejected.message)
        return None

    def _out_of_order(
        self, number: int, batch: _Verdicts | None, verdict: int, need: int | None
    ) -> str | None:
        """Why this line makes sharding inexact (a ticket line older than the replay clock
        before it, as one process would have it), or None."""
        clock = self.order_clock
        if batch is None:
            if need is not None:  # a service event moves the clock to its instant - 1
                at = need - 1
                self.order_clock = at if clock is None or at > clock else clock
            return None
        code = batch.codes[verdict]
        if code == _UNDECODED:
            return None
        at = batch.instants[verdict]
        if clock is not None and at < clock:
            return (
                f"line {number} ({format_us(at)}) is older than the replay "
                f"clock before it ({format_us(clock)})"
            )
        floor = self.refused_floor
        if floor is not None and at < floor:
            # the shard fired its timers due before that line's instant before it knew
            # the line would not apply; one process moved no clock for it
            return (
                f"line {number} ({format_us(at)}) is older than a line before it that was "
                f"not applied ({format_us(floor)})"
            )
        if code == _APPLIED:
            if clock is None or at > clock:
                self.order_clock = at
        elif floor is None or at > floor:
            self.refused_floor = at
        return None

    def _line(self, number: int) -> bytes:
        return self.raw_lines[number - 1].rstrip(b"\r\n")

    def _collect(self, request: tuple[int, bool]) -> str | None:
        for shard in self.shards:
            shard.conn.send(request)
        timers: list[_Timer] = []
        for shard in self.shards:
            timers.extend(_receive(shard))
        return self._receive_timers(timers)

    def _take(self, limit: int, inclusive: bool, ledger: list[Output]) -> bytes:
        """The bytes of the shards' timer outputs due before `limit` (or at it), in (due,
        ticket) order; the ledger's share of them decoded into `ledger`."""
        below = limit + 1 if inclusive else limit
        if self.took_below is None or below > self.took_below:
            self.took_below = below
        timers = self.timers
        start = end = self.taken
        while end < len(timers) and timers[end][0] < below:
            end += 1
        if start == end:
            return b""
        self.taken = end
        taken = timers[start:end]
        ledger.extend(orjson.loads(t[4]) for t in taken if t[4])
        return b"".join(t[3] for t in taken)

    def _ticket_line(self, number: int, found: _Verdicts, verdict: int) -> None:
        code = found.codes[verdict]
        if code in (_UNDECODED, _REJECTED):
            error_class, message = found.refused[verdict]
            self._reject(number, error_class, message)
            return
        at = found.instants[verdict]
        replayer = self.replayer
        written = b""
        ledger: list[Output] = []
        if code == _APPLIED:
            # the stage's on_event (time order checked: the event is not late)
            stage = replayer.stage
            if stage.clock is None or at > stage.clock:
                stage.clock = at
            written = self._take(at, False, ledger)
            if stage.fired_through is None or at - 1 > stage.fired_through:
                stage.fired_through = at - 1
            if stage.first_applied is None or at < stage.first_applied:
                stage.first_applied = at
            start = found.ends[verdict - 1] if verdict else 0
            written += found.written[start : found.ends[verdict]]
            own = found.ledger.get(verdict)
            if own is not None:
                ledger.extend(orjson.loads(data) for data in own)
        services = replayer.services
        offered = False
        if services is not None:
            offered = replayer.offer(services.advance_before(at))
        if written:
            self.emit_raw(written)
        if ledger:
            _take_outcomes(replayer, ledger)
            offered = True
        if services is not None:
            offered = replayer.offer(replayer._settle_services()) or offered
        replayer.release_ledger(offered)

    def _service_line(self, number: int) -> None:
        event = self.services[number]
        if isinstance(event, Rejected):
            raise event
        replayer = self.replayer
        if replayer.services is None:
            raise Rejected(
                "UnknownService", f"service {event.service_id!r}: the policy defines no services"
            )
        at = to_us(event.occurred_at)
        offered = self._advance(at - 1)
        try:
            applied = replayer.services.on_event(event, at)
        except Rejected:
            offered = replayer.offer(replayer._settle_services()) or offered
            replayer.release_ledger(offered)
            raise
        offered = replayer.offer(applied + replayer._settle_services()) or offered
        replayer.release_ledger(offered)

    def _advance(self, instant: int) -> bool:
        """The ticket stage's `advance_to(instant)`, its timers from the shards, written
        and offered to the ledger (whether it took any)."""
        stage = self.replayer.stage
        if stage.clock is None or instant > stage.clock:
            stage.clock = instant
        ledger: list[Output] = []
        written = self._take(stage.clock, True, ledger)
        stage.fired_through = stage.clock
        if written:
            self.emit_raw(written)
        if not ledger:
            return False
        _take_outcomes(self.replayer, ledger)
        return True

    def _finish(self, until: int | None) -> None:
        replayer = self.replayer
        until = replayer.clock() if until is None else until
        if until is None:
            return
        stage = replayer.stage
        limit = until if stage.clock is None or until > stage.clock else stage.clock
        problem = self._collect((limit, True))
        if problem is not None:  # never for time-ordered input (see `_receive_timers`)
            raise RuntimeError(problem)
        offered = self._advance(until)
        if replayer.services is not None:
            offered = replayer.offer(replayer.services.advance_to(until)) or offered
        replayer.release_ledger(offered, final=until)

    def _reject(self, number: int, error_class: str, message: str) -> None:
        raw = self._line(number).decode("utf-8", "replace")
        self.reject(Rejection(number, error_class, message, raw))

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
