"""Ticket states as of an instant, by replay: what `slaclock explain` and the report's
breach timelines explain (docs/semantics.md: Explanations).

Replay "to T" applies the lines in file order up to the first one whose `occurred_at` is
after T (the replay clock would pass T there, so everything after it is later than T in
the log), then advances the clock to T inclusive, firing the timers due by then. Without
T it replays the whole file and T is the last event's instant, as `slaclock replay`
without `--until` (the report asks for at least the latest instant of its outputs, as a
replay `--until` then). Rejected lines are skipped as `slaclock replay` skips them. Closed
tickets are kept (no retention), so any ticket of the file can be explained.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.replay import Replayer
from slaclock.schemas.rejection import Rejected

FOREVER_US = 1 << 62
"""Closed-ticket retention for explanations: never purge."""

HolderChange = tuple[str, int, str | None, str | None]
"""(ticket, instant, group holding it before, group holding it after): a change of the
ticket's holder (docs/semantics.md: Groups) as the engine applied it."""


def replay_to(
    policy: CompiledPolicy,
    lines: Iterable[bytes],
    at: int | None,
    at_least: int | None = None,
    holders: list[HolderChange] | None = None,
) -> tuple[Replayer, int | None]:
    """The replayer with every ticket's state as of `at` (default: the last event's
    instant, or `at_least` if that is later), and that instant (None when nothing valid
    was read). With `holders`, every change of a ticket's holding group is appended to it,
    at the instant the engine applied the event (the report's "By group")."""
    replayer = Replayer(policy, _discard, closed_retention_us=FOREVER_US)
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if at is not None:
            instant = line_instant(line)
            if instant is not None and instant > at:
                break
        ticket = _ticket_of(line) if holders is not None else None
        state = None if ticket is None else replayer.store.get(ticket)
        before = None if state is None else state.holder
        try:
            replayer.on_line(line)
        except Rejected:
            continue
        if holders is not None and ticket is not None:
            state = replayer.store.get(ticket)
            after = None if state is None else state.holder
            clock = replayer.clock()
            if after != before and clock is not None:
                holders.append((ticket, clock, before, after))
    if at is None and at_least is not None:
        clock = replayer.clock()
        if clock is not None:
            at = max(clock, at_least)
    replayer.finish(at)
    return replayer, at if at is not None else replayer.clock()


def _ticket_of(line: bytes) -> str | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    ticket = data.get("ticket_id") if isinstance(data, dict) else None
    return ticket if isinstance(ticket, str) else None


def line_instant(line: bytes) -> int | None:
    """The `occurred_at` of a line, or None when it has none that parses (such a line is
    left to the replay to accept or reject)."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    occurred = data.get("occurred_at") if isinstance(data, dict) else None
    if not isinstance(occurred, str):
        return None
    try:
        return parse_instant(occurred)
    except ValueError:
        return None


def _discard(output: object) -> None:
    del output
