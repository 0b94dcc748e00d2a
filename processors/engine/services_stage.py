"""The services stage as a pure object: one partition's clock, timers and service states.

The same time rules as the ticket stage (`processors.engine.stage.TicketStage`):
- an event at t first advances the clock C to t - grace and fires the timers due strictly
  before C (events at an instant come before timers at that instant);
- an event older than C is applied as of C (a late event); a service's own time never goes
  back either: an event older than the service's last applied instant (possible within
  the grace) is applied at that instant;
- `advance_to(c)` (a clock tick, or the end of a replay) fires every timer due at or
  before c, across services in (instant, service id) order;
- `on_tick(now, caught_up)` is the live tick rule: C advances to now - grace when the
  partition is caught up with its input, else only to the newest applied
  `occurred_at` - grace.

Replay uses it with grace = 0; the Kafka worker uses one per partition of
`services.events`. The store is any mutable mapping of service id -> ServiceState.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from slaclock.processors.engine.availability import (
    AvailabilityClock,
    Output,
    ServicePolicy,
    ServiceState,
)
from slaclock.processors.engine.timers import PartitionClock, TimerIndex
from slaclock.processors.engine.versions import PolicyBook
from slaclock.schemas.rejection import Rejected
from slaclock.schemas.services import ServiceEvent


@dataclass
class ServiceCounters:
    events: int = 0
    duplicates: int = 0
    late: int = 0
    rejected: int = 0
    ignored_cancels: int = 0
    outputs: int = 0
    by_output_type: dict[str, int] = field(default_factory=dict)

    def count_outputs(self, outputs: list[Output]) -> None:
        self.outputs += len(outputs)
        for output in outputs:
            kind = output["type"]
            self.by_output_type[kind] = self.by_output_type.get(kind, 0) + 1


class ServiceStage(PartitionClock[Output]):
    def __init__(
        self,
        services: Mapping[str, ServicePolicy],
        store: MutableMapping[str, ServiceState],
        grace_us: int = 0,
        versions: PolicyBook | None = None,
    ) -> None:
        # a policy version changes a service's terms from its next period (see ServiceTerms)
        self.availability = AvailabilityClock(services, versions)
        self.store = store
        self.grace_us = grace_us
        self.clock: int | None = None
        self.stream_time: int | None = None  # newest occurred_at applied
        self.first_applied: int | None = None  # the least instant an event was applied at
        # every timer due at or before this instant has fired: the ledger's watermark
        self.fired_through: int | None = None
        self.counters = ServiceCounters()
        self._timers = TimerIndex()

    # -- snapshot (a partition's meta record; service states are records of their own) -----

    def meta(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "stream_time": self.stream_time,
            "first_applied": self.first_applied,
            "fired_through": self.fired_through,
        }

    def restore_meta(self, meta: Mapping[str, Any]) -> None:
        clock, stream_time = meta.get("clock"), meta.get("stream_time")
        first = meta.get("first_applied")
        self.clock = None if clock is None else int(clock)
        self.stream_time = None if stream_time is None else int(stream_time)
        self.first_applied = None if first is None else int(first)
        fired = meta.get("fired_through", None if clock is None else int(clock) - 1)
        self.fired_through = None if fired is None else int(fired)

    # -- timers ------------------------------------------------------------------------------

    def rebuild_timers(self) -> None:
        """Rebuild the timer index from the store (after a restore)."""
        self._timers.clear()
        for state in self.store.values():
            self._schedule(state)

    def pending_timers(self) -> int:
        return len(self._timers)

    def earliest_timer(self) -> int | None:
        """The earliest scheduled instant (safe to read from another thread)."""
        return self._timers.earliest()

    def _schedule(self, state: ServiceState) -> None:
        self._timers.schedule(state.service_id, state.due)

    def _fire(self, limit: int, inclusive: bool) -> list[Output]:
        """Fire timers due before `limit` (or at it, if inclusive), in (due, service) order."""
        outputs: list[Output] = []
        for due, service_id in self._timers.pop_due(limit, inclusive):
            state = self.store.get(service_id)
            if state is None:
                continue
            outputs.extend(self.availability.fire_due(state, due))
            self.store[service_id] = state
            self._schedule(state)
        self.counters.count_outputs(outputs)
        return outputs

    # -- inputs ------------------------------------------------------------------------------

    def advance_before(self, instant: int) -> list[Output]:
        """C := max(C, instant); fire every timer due strictly before `instant`.

        For a replay of a file that mixes ticket and service events: called before applying
        a ticket event at `instant`, it keeps both stages' outputs in time order (events at
        an instant before timers at that instant), and a later service event is not late.
        """
        if self.clock is None or instant > self.clock:
            self.clock = instant
        outputs = self._fire(instant, inclusive=False)
        self._fired_before(instant)
        return outputs

    def on_tick(self, now: int, caught_up: bool) -> list[Output]:
        """The live tick rule (see the module doc); nothing before the first event."""
        if caught_up:
            return self.advance_to(now - self.grace_us)
        if self.stream_time is None:
            return []
        return self.advance_to(self.stream_time - self.grace_us)

    def on_event(self, event: ServiceEvent, occurred_at: int) -> list[Output]:
        """Apply one validated event. Raises `Rejected` for an input to dead-letter.

        A rejected record and a repeated event id leave no trace: they are recognised
        before the clock moves.
        """
        services = self.availability.services
        if not self.availability.known(event.service_id, occurred_at):
            self.counters.rejected += 1
            known = ", ".join(sorted(services)) or "none"
            raise Rejected(
                "UnknownService",
                f"service {event.service_id!r} is not in the policy's services (defined: {known})",
            )
        state = self.store.get(event.service_id)
        if state is not None and self.availability.is_duplicate(state, event.event_id, occurred_at):
            self.counters.duplicates += 1
            return []

        horizon = occurred_at - self.grace_us
        if self.clock is None or horizon > self.clock:
            self.clock = horizon
        outputs = self._fire(self.clock, inclusive=False)
        self._fired_before(self.clock)
        at = occurred_at
        if at < self.clock:
            at = self.clock
            self.counters.late += 1
        if self.stream_time is None or occurred_at > self.stream_time:
            self.stream_time = occurred_at

        state = self.store.get(event.service_id)
        if state is None:
            state = self.availability.new_state(event.service_id, at)
        # This service's own timers due before the event fire first, whatever the grace.
        fired = self.availability.fire_due(state, at - 1)
        self.counters.count_outputs(fired)
        outputs.extend(fired)
        at = max(at, state.accounted_to)
        if self.first_applied is None or at < self.first_applied:
            self.first_applied = at
        if self.availability.apply(state, event, at):
            self.counters.events += 1
        else:
            self.counters.ignored_cancels += 1
        self.store[event.service_id] = state
        self._schedule(state)
        return outputs

    def status(self, service_id: str, now: int | None = None) -> dict[str, Any] | None:
        """The status view of a service as of `now` (default: this stage's clock)."""
        state = self.store.get(service_id)
        if state is None:
            return None
        instant = now if now is not None else (self.clock or state.accounted_to)
        return self.availability.view(state, instant)
