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

Every service is reported (docs/availability.md: Quiet services): each service the policy
defines that this stage owns is reported for every period whose end is after the earliest
input instant F (ticket or service event), whether or not it ever had an event. A stage
learns F from its own events and from the progress of the other inputs (`on_watermark`:
replay's single clock, or live every ticket and services partition); F is *settled* once
every declared source has fired through F - 1 (so no input before F is still to come, for a
log in time order). Then every owned service without a state gets one, operational from
the start of its period containing F, and its timers run like any other service's. A state
created earlier by an event (F not yet settled) keeps its `origin`; the quiet periods
between F's and its origin are reported when F settles (`AvailabilityClock.quiet_reports`).

Replay uses it with grace = 0; the Kafka worker uses one per partition of
`services.events`. The store is any mutable mapping of service id -> ServiceState.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from slaclock.processors.engine.availability import (
    AvailabilityClock,
    Output,
    ServicePolicy,
    ServiceState,
)
from slaclock.processors.engine.instants import format_us
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


def _owns_every_service(_service_id: str) -> bool:
    return True


ServicesAt = Callable[[int], Collection[str]]
"""The ids of the services the policy in force at an instant defines."""


class ServiceStage(PartitionClock[Output]):
    def __init__(
        self,
        services: Mapping[str, ServicePolicy],
        store: MutableMapping[str, ServiceState],
        grace_us: int = 0,
        *,
        sources: Iterable[str] = (),
        owns: Callable[[str], bool] = _owns_every_service,
        services_at: ServicesAt | None = None,
        versions: PolicyBook | None = None,
    ) -> None:
        """`sources`: the other inputs whose progress (`on_watermark`) settles the earliest
        input instant (none: this stage's own events only); `owns`: whether a service is
        this stage's to report (live: its partition's); `services_at`: the services defined
        at an instant (default: those of the version in force); `versions`: the policy
        versions (a version changes a service's terms from its next period, see
        `ServiceTerms`, and a service it adds is reported from its first period starting
        at or after its P)."""
        self.availability = AvailabilityClock(services, versions)
        self.versions = versions
        # ids of the versions whose added services this stage has taken into its store
        self.versions_taken: set[str] = set() if versions is None else {versions.first.version_id}
        self.store = store
        self.grace_us = grace_us
        self.sources = frozenset(sources)
        self.owns = owns
        self.services_at: ServicesAt = services_at or self._policy_services
        # source -> (how far it fired its timers, the least instant it applied)
        self.marks: dict[str, tuple[int, int | None]] = {}
        self.first_input: int | None = None  # the settled earliest input instant F
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
            "first_input": self.first_input,
            "marks": {source: list(mark) for source, mark in sorted(self.marks.items())},
            "versions_taken": sorted(self.versions_taken),
        }

    def restore_meta(self, meta: Mapping[str, Any]) -> None:
        clock, stream_time = meta.get("clock"), meta.get("stream_time")
        first = meta.get("first_applied")
        self.clock = None if clock is None else int(clock)
        self.stream_time = None if stream_time is None else int(stream_time)
        self.first_applied = None if first is None else int(first)
        fired = meta.get("fired_through", None if clock is None else int(clock) - 1)
        self.fired_through = None if fired is None else int(fired)
        first_input = meta.get("first_input")
        self.first_input = None if first_input is None else int(first_input)
        self.marks = {
            str(source): (int(mark[0]), None if mark[1] is None else int(mark[1]))
            for source, mark in dict(meta.get("marks") or {}).items()
        }
        taken = meta.get("versions_taken")
        if isinstance(taken, list):
            self.versions_taken |= {str(version_id) for version_id in taken}

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
        """Fire timers due before `limit` (or at it, if inclusive), in (due, service) order
        (after taking the services the policy versions effective by then add)."""
        if self.versions is not None and len(self.versions) > len(self.versions_taken):
            self._take_versions(limit)
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
        return outputs + self._settle()

    def advance_to(self, instant: int) -> list[Output]:
        """A clock tick: C := max(C, instant); fire every timer due at or before C."""
        return super().advance_to(instant) + self._settle()

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
        availability = self.availability
        if not availability.known(event.service_id, occurred_at):
            self.counters.rejected += 1
            raise Rejected("UnknownService", self._unknown(event.service_id, occurred_at))
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
            # from F's period if an earlier input is known (settled or not: never too early)
            earliest = self.earliest_known()
            start = at if earliest is None else min(at, earliest)
            state = self.availability.new_state(event.service_id, start)  # at or before `at`
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
        return outputs + self._settle()

    # -- every service is reported -------------------------------------------------------------

    def _policy_services(self, at: int) -> Collection[str]:
        return self.availability.defined_at(at).keys()

    def _unknown(self, service_id: str, at: int) -> str:
        """Why an event for `service_id` at `at` is refused, naming what is defined."""
        defined = self.availability.defined_at(at)
        known = ", ".join(sorted(defined)) or "none"
        if service_id in defined:
            first = self.availability.reported_from(service_id, at)
            if first is not None:
                return (
                    f"service {service_id!r} is defined from {format_us(first)} (the first "
                    "period that begins after the policy version adding it took effect); an "
                    "event before that has no period to count in"
                )
        return f"service {service_id!r} is not in the policy's services (defined: {known})"

    def _take_versions(self, limit: int) -> None:
        """A version whose P is at or before `limit` adds its new services: each owned one
        without a state is reported from its first period starting at or after P."""
        versions = self.versions
        if versions is None or self.first_input is None:
            return
        for version in versions.changes():
            if version.version_id in self.versions_taken or version.effective > limit:
                continue
            self.versions_taken.add(version.version_id)
            for service_id in sorted(self.availability.terms.of(version.version_id)):
                if service_id not in self.store and self.owns(service_id):
                    self.ensure_reported(service_id, version.effective)

    def on_watermark(self, source: str, fired_through: int, first: int | None) -> list[Output]:
        """Progress of another input: it fired every timer due at or before
        `fired_through`, and the least instant it applied is `first` (None: none yet)."""
        mark = self.marks.get(source)
        if mark is not None:
            fired_through = max(fired_through, mark[0])
            if first is None or (mark[1] is not None and mark[1] < first):
                first = mark[1]
        if mark != (fired_through, first):
            self.marks[source] = (fired_through, first)
        return self._settle()

    def earliest_known(self) -> int | None:
        """The least input instant known (from this stage and the other inputs), settled
        or not."""
        known = [m[1] for m in self.marks.values() if m[1] is not None]
        if self.first_applied is not None:
            known.append(self.first_applied)
        return min(known) if known else None

    def settled_through(self) -> int | None:
        """Every input (this stage and each declared source) fired through this instant:
        none of them can still apply an input at or before it."""
        if self.fired_through is None:
            return None
        through = self.fired_through
        for source in self.sources:
            mark = self.marks.get(source)
            if mark is None:
                return None
            through = min(through, mark[0])
        return through

    def _settle(self) -> list[Output]:
        """Adopt the earliest input instant F once it is settled (or an earlier one, after
        a late input): every owned service is reported from its period containing F."""
        first = self.earliest_known()
        if first is None or (self.first_input is not None and first >= self.first_input):
            return []
        through = self.settled_through()
        if through is None or first > through + 1:
            return []
        self.first_input = first
        if self.versions is not None:  # what they add is in the services at F already
            self.versions_taken |= {
                v.version_id for v in self.versions.changes() if v.effective <= first
            }
        return self.report_every_service(first)

    def report_every_service(self, first: int) -> list[Output]:
        """Every service defined at `first` that this stage owns is reported from its
        period containing `first` (`ensure_reported`). Timers already due (this stage's
        clock may be past them) fire now."""
        outputs: list[Output] = []
        for service_id in sorted(self.services_at(first)):
            if self.owns(service_id):
                outputs.extend(self.ensure_reported(service_id, first))
        if self.fired_through is not None:
            outputs.extend(self._fire(self.fired_through, inclusive=True))
        return outputs

    def ensure_reported(self, service_id: str, first: int) -> list[Output]:
        """`service_id` is reported from its period containing `first`: a state from that
        period if it has none, else the quiet periods between that one and its origin
        (returned). Its own timers already due are left to the caller to fire."""
        state = self.store.get(service_id)
        quiet: list[Output] = []
        if state is None:
            if self.availability.reported_from(service_id, first) is None:
                return []  # no version defines it from then on
            state = self.availability.new_state(service_id, first)
        else:
            quiet = self.availability.quiet_reports(state, first)
            if not quiet:
                return []
            self.counters.count_outputs(quiet)
        self.store[service_id] = state
        self._schedule(state)
        return quiet

    def status(self, service_id: str, now: int | None = None) -> dict[str, Any] | None:
        """The status view of a service as of `now` (default: this stage's clock)."""
        state = self.store.get(service_id)
        if state is None:
            return None
        instant = now if now is not None else (self.clock or state.accounted_to)
        return self.availability.view(state, instant)
