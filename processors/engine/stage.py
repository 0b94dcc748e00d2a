"""Stage 1 as a pure object: one partition's clock, due-timer index and ticket states.

This is where the time rules (docs/semantics.md: Time) live, once, for every runtime:
- an event at t first advances the clock C to t - grace and fires the timers due
  strictly before that (events at an instant come before timers at that instant);
- an event older than C is applied as of C (late event);
- `advance_to(c)` (a clock tick, or the end of a replay) fires every timer due at or
  before c;
- `on_tick(now, end_offset, position)` is the live tick rule: C advances to now - grace
  when the partition is processed up to the tick's end offset, else to stream_time - grace;
- a record is accepted or rejected before the clock moves, so a rejection leaves no trace;
- a closed ticket's state is dropped `closed_retention` after it closed;
- a policy version takes effect at its P (docs/semantics.md: Policy changes) like a timer
  due at P that comes before every other timer and event at P: every ticket timer due before
  P fires first, then every open ticket of the partition moves to the version (`open`), then
  what is due at P. An event at or after P first moves the clock to P (so with a grace the
  version is never applied behind an event it should judge). A version learnt after the
  partition went past its P (a late record) applies at the latest instant the partition has
  applied, as a late event does.

Replay uses it with grace = 0 over a file; the Kafka worker uses one per partition over
its table. The store is any mutable mapping of ticket id -> TicketState.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from slaclock.processors.engine.group_ledger import GROUP_HOLD
from slaclock.processors.engine.ticket import (
    Output,
    TicketEngine,
    TicketState,
    Verdict,
    record_timer,
)
from slaclock.processors.engine.timers import PartitionClock, TimerIndex
from slaclock.processors.engine.versions import NEW, PolicyVersion
from slaclock.schemas.fast_events import EngineEvent, TicketCreatedEvent
from slaclock.schemas.rejection import Rejected

DAY_US: Final = 86_400 * 1_000_000


@dataclass
class StageCounters:
    events: int = 0
    duplicates: int = 0
    ignored_closed: int = 0
    late: int = 0
    rejected: int = 0
    outputs: int = 0
    purged: int = 0
    by_output_type: dict[str, int] = field(default_factory=dict)
    # tickets created with no target for any metric, by reason (see `untracked_reason`)
    untracked: dict[str, int] = field(default_factory=dict)
    # policy versions this partition has applied; open tickets recomputed and breaches
    # decided at the last version's P
    versions_applied: int = 0
    recomputed_at_last_version: int = 0
    breaches_at_last_version: int = 0

    def count_outputs(self, outputs: list[Output]) -> None:
        for output in outputs:
            kind = output["type"]
            if kind == GROUP_HOLD:  # a hold fact for the ledger, not an output
                continue
            self.outputs += 1
            self.by_output_type[kind] = self.by_output_type.get(kind, 0) + 1


class TicketStage(PartitionClock[Output]):
    def __init__(
        self,
        engine: TicketEngine,
        store: MutableMapping[str, TicketState],
        grace_us: int = 0,
        closed_retention_us: int = 7 * DAY_US,
    ) -> None:
        self.engine = engine
        self.store = store
        self.grace_us = grace_us
        self.closed_retention_us = closed_retention_us
        self.clock: int | None = None
        # Every timer due at or before this instant has fired (the clock after a tick; one
        # microsecond less after an event, whose own instant's timers are still due): what
        # the ledger may take as this partition's watermark.
        self.fired_through: int | None = None
        self.first_applied: int | None = None  # the least effective instant applied
        self.stream_time: int | None = None  # newest occurred_at of an accepted event
        self.counters = StageCounters()
        self._timers = TimerIndex()
        # ids of the policy versions this partition has taken (applied or superseded at
        # their P), and the latest instant it has applied anything at (events run ahead of
        # the clock by up to the grace): where a late version applies
        self.versions_taken: set[str] = {engine.versions.first.version_id}
        self.horizon: int | None = None

    # -- the partition's meta record (ticket states are records of their own) ---------------

    def version_meta(self) -> dict[str, object]:
        return {"versions_taken": sorted(self.versions_taken), "horizon": self.horizon}

    def restore_version_meta(self, meta: dict[str, object]) -> None:
        taken = meta.get("versions_taken")
        if isinstance(taken, list):
            self.versions_taken = {str(v) for v in taken} | {self.engine.versions.first.version_id}
        horizon = meta.get("horizon")
        self.horizon = horizon if isinstance(horizon, int) else None

    # -- timers -------------------------------------------------------------------------

    def rebuild_timers(self) -> None:
        """Rebuild the in-memory timer index from the store (after recovery/rebalance)."""
        self._timers.clear()
        for state in self.store.values():
            self._schedule(state)

    def rebuild_timers_from_records(self, records: Iterable[Sequence[Any]]) -> None:
        """`rebuild_timers` from the store's state records (decoded JSON arrays) instead
        of its states: a restore that has the records at hand need not rebuild (nor read
        back) every state; the same timers as `rebuild_timers` (`record_timer`)."""
        self._timers.clear()
        for record in records:
            ticket_id, closed_at, due = record_timer(record)
            if closed_at is not None:
                due = closed_at + self.closed_retention_us
            self._timers.schedule(ticket_id, due)

    def pending_timers(self) -> int:
        return len(self._timers)

    def scheduled_timers(self) -> dict[str, int]:
        """A copy of the timer index: ticket id -> due instant (for a checkpoint)."""
        return self._timers.snapshot()

    def restore_timers(self, scheduled: dict[str, int]) -> None:
        """Take a timer index saved by `scheduled_timers` instead of rebuilding it."""
        self._timers.restore(scheduled)

    def earliest_timer(self) -> int | None:
        """The earliest scheduled instant (safe to read from another thread); a policy
        version still to apply counts as a timer at its P."""
        earliest = self._timers.earliest()
        pending = self._next_version()
        if pending is not None and (earliest is None or pending.effective < earliest):
            return pending.effective
        return earliest

    # -- policy versions ----------------------------------------------------------------

    def _next_version(self) -> PolicyVersion | None:
        """The first version (by P, then record order) this partition has not taken."""
        versions = self.engine.versions.versions
        taken = self.versions_taken
        for index in range(1, len(versions)):  # the hot path: one version, no loop
            version = versions[index]
            if version.version_id not in taken:
                return version
        return None

    def _version_instant(self, version: PolicyVersion) -> int:
        """Where a version applies here: its P, or the horizon if the partition is past P."""
        if self.horizon is not None and self.horizon > version.effective:
            return self.horizon
        return version.effective

    def _version_barrier(self, instant: int) -> int | None:
        """The latest instant at which a version still to take applies, at or before
        `instant` (an event at `instant` must be judged by it)."""
        barrier: int | None = None
        versions = self.engine.versions.versions
        for index in range(1, len(versions)):
            version = versions[index]
            if version.version_id in self.versions_taken:
                continue
            at = self._version_instant(version)
            if at <= instant and (barrier is None or at > barrier):
                barrier = at
        return barrier

    def _take_version(self, version: PolicyVersion, at: int) -> list[Output]:
        """Apply a version at `at` to every open ticket (every timer before `at` has fired)."""
        self.versions_taken.add(version.version_id)
        if version.applies_to == NEW or not self.engine.versions.winning(version):
            return []  # pinned tickets keep theirs; a superseded record never applies
        outputs: list[Output] = []
        recomputed = 0
        for ticket_id, state in sorted(self.store.items(), key=_by_ticket):
            if state.closed_at is not None:
                continue
            outputs.extend(self.engine.change_version(state, version, at))
            recomputed += 1
            self.store[ticket_id] = state
            self._schedule(state)
        counters = self.counters
        counters.versions_applied += 1
        counters.recomputed_at_last_version = recomputed
        counters.breaches_at_last_version = sum(1 for o in outputs if o["type"] == "sla.breach")
        counters.count_outputs(outputs)
        return outputs

    def _wake_at(self, state: TicketState) -> int | None:
        if state.closed_at is not None:
            return state.closed_at + self.closed_retention_us
        return state.next_due()

    def _schedule(self, state: TicketState) -> None:
        self._timers.schedule(state.ticket_id, self._wake_at(state))

    def _fire(self, limit: int, inclusive: bool) -> list[Output]:
        """Fire timers due before `limit` (or at it, if inclusive), in (due, ticket) order,
        and the policy versions that apply at or before `limit` in their place (each before
        the timers due at its instant)."""
        outputs: list[Output] = []
        while True:
            version = self._next_version()
            if version is None:
                break
            at = self._version_instant(version)
            if at > limit:
                break
            outputs.extend(self._fire_timers(at, inclusive=False))
            outputs.extend(self._take_version(version, at))
        outputs.extend(self._fire_timers(limit, inclusive))
        if self.horizon is None or limit > self.horizon:
            self.horizon = limit
        return outputs

    def _fire_timers(self, limit: int, inclusive: bool) -> list[Output]:
        """Fire ticket timers due before `limit` (or at it, if inclusive), in (due, ticket)
        order.

        Progress guard: a ticket's timer must move past the instant it fired at; one that
        does not would fire forever, so it raises instead.
        """
        outputs: list[Output] = []
        timers = self._timers
        while True:
            entry = timers.pop_next(limit, inclusive)
            if entry is None:
                break
            due, ticket_id = entry
            state = self.store.get(ticket_id)
            if state is None:
                continue
            if state.closed_at is not None:
                del self.store[ticket_id]
                self.counters.purged += 1
                continue
            fired = self.engine.fire_due(state, due)
            outputs.extend(fired)
            self.store[ticket_id] = state
            self._schedule(state)
            following = self._timers.due_of(ticket_id)
            if following is not None and following <= due:
                raise RuntimeError(
                    f"timer of ticket {ticket_id!r} due at {due} did not advance "
                    f"(next due {following}): the engine fired nothing for it"
                )
        self.counters.count_outputs(outputs)
        return outputs

    # -- inputs -------------------------------------------------------------------------

    def on_tick(self, now: int, end_offset: int, position: int) -> list[Output]:
        """A clock tick `{now, end_offset}` of this partition (the tick rule (docs/semantics.md: Time)).

        `position` is the input offset before which every record of the partition has been
        processed (applied, dropped or rejected alike). Caught up (`position >= end_offset`):
        C advances to `now - grace`. Otherwise (catching up, lagging, backfilling) only to
        `stream_time - grace`, so a timer never fires before the events that precede it in
        the log; with no event applied yet, the tick does nothing.
        """
        if position >= end_offset:
            target = now - self.grace_us
        elif self.stream_time is not None:
            target = self.stream_time - self.grace_us
        else:
            return []
        return self.advance_to(target)

    def on_event(self, event: EngineEvent, occurred_at: int) -> list[Output]:
        """Apply one validated event. Raises `Rejected` for an input to dead-letter.

        One atomic step: whether the record is acceptable (a repeat, an unknown ticket, a
        ticket whose closed state this step's clock move purges, a second creation) is
        decided before the clock moves or any timer fires. So a rejected record and a
        repeated event id leave no trace (they cannot make later events late), and a
        rejection can never drop outputs already fired for other tickets.
        """
        horizon = occurred_at - self.grace_us
        clock = horizon if self.clock is None or horizon > self.clock else self.clock
        # a policy version effective at or before the event judges it: the clock goes there
        barrier = self._version_barrier(occurred_at if occurred_at > clock else clock)
        if barrier is not None and barrier > clock:
            clock = barrier
        state = self._surviving(event.ticket_id, clock)
        if state is not None and self.engine.is_duplicate(state, event.event_id):
            self.counters.duplicates += 1
            return []
        self._check_acceptable(state, event, occurred_at if occurred_at > clock else clock)
        # -- accepted: from here on nothing rejects ------------------------------------
        self.clock = clock
        outputs = self._fire(clock, inclusive=False)
        self._fired_before(clock)
        at = occurred_at
        if at < clock:
            at = clock
            self.counters.late += 1
        if self.stream_time is None or occurred_at > self.stream_time:
            self.stream_time = occurred_at
        if self.first_applied is None or at < self.first_applied:
            self.first_applied = at
        if self.horizon is None or at > self.horizon:
            self.horizon = at

        if state is not None:
            # re-read: firing may have changed it, and a store may hand out copies (RocksDB)
            state = self.store.get(event.ticket_id)
            assert state is not None, "`_surviving` said this clock move does not purge it"
        applied: list[Output]
        ignored = False
        if state is None:
            assert isinstance(event, TicketCreatedEvent)  # `_check_acceptable` let nothing else by
            state, applied = self.engine.create(event, at)
            reason = self.engine.untracked_reason(event, state, at)
            if reason is not None:
                untracked = self.counters.untracked
                untracked[reason] = untracked.get(reason, 0) + 1
        else:
            # docs/semantics.md: Warnings, breaches and time order; Time: timers of this ticket due before the event fire first, whatever the
            # grace: grace delays other tickets' timers, never this ticket's own outcome.
            fired = self.engine.fire_due(state, at - 1)
            outputs.extend(fired)
            self.counters.count_outputs(fired)
            verdict, applied = self.engine.apply(state, event, at)
            ignored = verdict is Verdict.IGNORED_CLOSED
        if ignored:
            self.counters.ignored_closed += 1
        else:
            self.counters.events += 1
        self.store[event.ticket_id] = state
        self._schedule(state)
        self.counters.count_outputs(applied)
        outputs.extend(applied)
        return outputs

    def _surviving(self, ticket_id: str, clock: int) -> TicketState | None:
        """The ticket's state, or None if it has none after the clock moves to `clock`.

        A closed ticket's state is purged when the clock passes its retention timer
        (`_fire(clock, inclusive=False)`): that ticket is unknown to this step.
        """
        state = self.store.get(ticket_id)
        closed_at = None if state is None else state.closed_at
        if closed_at is not None and closed_at + self.closed_retention_us < clock:
            return None
        return state

    def _check_acceptable(self, state: TicketState | None, event: EngineEvent, at: int) -> None:
        """Raise `Rejected` for an event that must go to the dead-letter topic."""
        try:
            if state is None:
                if not isinstance(event, TicketCreatedEvent):
                    raise Rejected(
                        "UnknownTicket",
                        f"ticket {event.ticket_id!r} was never created ({event.type})",
                    )
                self.engine.check_creatable(event, at)
            elif isinstance(event, TicketCreatedEvent):
                raise Rejected("DuplicateTicket", f"ticket {event.ticket_id!r} was already created")
        except Rejected:
            self.counters.rejected += 1
            raise


def _by_ticket(item: tuple[str, TicketState]) -> str:
    return item[0]
