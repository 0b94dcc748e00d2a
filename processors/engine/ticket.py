"""The per-ticket SLA state machine (docs/semantics.md: Metrics; Warnings, breaches and time order).

Pure and deterministic: it learns time only from the instants it is given and does no
I/O. For speed the state object is updated in place and the outputs are returned; a
caller that needs the previous state keeps a snapshot (`TicketState.to_record`).

Contract with the runtime (replay, Kafka, tests):
- before applying an event at instant t, call `fire_due(state, limit)` for every timer
  strictly before t (events at t come before timers at t, docs/semantics.md: Warnings, breaches and time order);
- after any call, `state.next_due()` is the instant of the next timer, or None;
- `fire_due(state, now)` fires every timer due at or before `now`, in time order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

from slaclock.processors.engine.calendar import BusinessCalendar
from slaclock.processors.engine.clock import (
    CANCELLED,
    COMPLETED,
    PAUSED,
    RUN,
    STOPPED,
    CalendarOf,
    MetricClock,
    MetricRecord,
    Phase,
    version_cause,
)
from slaclock.processors.engine.group_ledger import GROUP_HOLD
from slaclock.processors.engine.ids import KEY_SEPARATOR, natural_key_id, output_event_id
from slaclock.processors.engine.instants import format_us, seconds_value
from slaclock.processors.engine.outputs import (
    BreachOutput,
    CancelledOutput,
    CancelReason,
    CompletedOutput,
    TicketOutputBase,
    WarningOutput,
    as_output,
)
from slaclock.processors.engine.outputs import (
    Output as Output,  # re-exported: the generic output type the runtimes import from here
)
from slaclock.processors.engine.policy import CompiledPolicy, CompiledTier, Threshold
from slaclock.processors.engine.versions import PolicyBook, PolicyVersion
from slaclock.schemas.common import METRIC_ORDER
from slaclock.schemas.fast_events import (
    AgentRepliedEvent,
    AssignedEvent,
    CustomerRepliedEvent,
    EngineEvent,
    PriorityChangedEvent,
    StatusChangedEvent,
    TicketCreatedEvent,
)
from slaclock.schemas.rejection import Rejected

if TYPE_CHECKING:
    from slaclock.processors.engine.contracts import ContractBook


FIRST_RESPONSE: Final = "first_response"
NEXT_RESPONSE: Final = "next_response"
PERIODIC_UPDATE: Final = "periodic_update"
RESOLUTION: Final = "resolution"
METRICS: Final = (FIRST_RESPONSE, NEXT_RESPONSE, PERIODIC_UPDATE, RESOLUTION)
SOLVED: Final = "solved"
CLOSED: Final = "closed"
PENDING: Final = "pending"
OPEN: Final = "open"
GROUP_RESPONSE: Final = "group_response"
GROUP_RESOLUTION: Final = "group_resolution"
GROUP_ERA: Final = "\x00group:"
"""The prefix of an era's tier that names a group (a group clock's segments frozen under an
earlier version's group calendar); no tier name starts with a NUL character."""
_CLOCK_ORDER: dict[str, int] = {**METRIC_ORDER, GROUP_RESPONSE: 4, GROUP_RESOLUTION: 5}


class Verdict(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # repeated event_id for the ticket: dropped (docs/semantics.md: Duplicates and invalid input)
    IGNORED_CLOSED = "ignored_closed"  # the ticket is closed: ignored (docs/semantics.md: Metrics)


DEFAULT_POLICY_VERSION: Final = "1"


def policy_version(policy: CompiledPolicy) -> str:
    """The policy's `version` id (docs/semantics.md: Explanations); "1" for a file without one."""
    version = getattr(policy.raw, "version", None)
    return version if isinstance(version, str) and version else DEFAULT_POLICY_VERSION


def event_fingerprint(event_id: str) -> int:
    """64-bit digest of an event id, kept per ticket to drop repeats in little space."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


class TicketState:
    """Everything the engine remembers about one ticket."""

    __slots__ = (
        "assignee",
        "cause",
        "closed_at",
        "customer_id",
        "finished",
        "group",
        "group_clocks",
        "group_cycles",
        "group_finished",
        "metrics",
        "nr_cycles",
        "priority",
        "pu_cycles",
        "replied",
        "seen",
        "status",
        "ticket_id",
        "tier",
        "version",
    )

    def __init__(
        self,
        ticket_id: str,
        customer_id: str,
        tier: str,
        priority: str,
        status: str,
        version: str = "",
    ) -> None:
        self.ticket_id = ticket_id
        self.customer_id = customer_id
        self.tier = tier
        self.priority = priority
        self.status = status
        self.replied = False  # a public agent reply has happened
        self.closed_at: int | None = None
        self.nr_cycles = 0  # tracked next_response cycles started so far
        self.pu_cycles = 0  # tracked periodic_update cycles started so far
        self.metrics: dict[str, MetricClock] = {}
        self.seen: set[int] = set()
        self.assignee: str | None = None
        self.group: str | None = None
        # cycles replaced by a later cycle of their metric, oldest first (explanations show
        # every cycle a ticket has had; docs/semantics.md: Explanations)
        self.finished: list[MetricClock] = []
        # the event_id of the input being applied ("" between inputs): what the clocks note
        # as the cause of a change; never stored
        self.cause = ""
        # the id of the policy version the ticket runs under ("": the first version)
        self.version = version
        # Group clocks (docs/semantics.md: Groups): the cycles of the current hold by metric
        # (group_response, group_resolution; each names its group), replaced ones, and the
        # tracked cycles started so far per group [group_response, group_resolution].
        # For a ticket no group held these are shared empty objects, never changed (a
        # ticket's memory and record stay what they were before groups): `own_groups`
        # gives a ticket its own before anything is added.
        self.group_clocks: dict[str, MetricClock] = _NO_CLOCKS
        self.group_finished: list[MetricClock] = _NO_FINISHED
        self.group_cycles: dict[str, list[int]] = _NO_CYCLES

    def own_groups(self) -> None:
        """Give the ticket its own group containers (before the first group clock)."""
        if self.group_clocks is _NO_CLOCKS:
            self.group_clocks = {}
        if self.group_finished is _NO_FINISHED:
            self.group_finished = []
        if self.group_cycles is _NO_CYCLES:
            self.group_cycles = {}

    @property
    def holder(self) -> str | None:
        """The group holding the ticket: its latest assignment's group, if set and not empty."""
        return self.group or None

    def next_due(self) -> int | None:
        due: int | None = None
        for clock in self.metrics.values():
            if clock.due is not None and (due is None or clock.due < due):
                due = clock.due
        for clock in self.group_clocks.values():
            if clock.due is not None and (due is None or clock.due < due):
                due = clock.due
        return due

    def to_record(self) -> list[object]:
        """The state as the changelog holds it: a JSON array laid out as `TicketRecord`."""
        ids: dict[str, int] = {}
        metrics = [clock.to_record(ids) for clock in self.metrics.values()]
        finished = [clock.to_record(ids) for clock in self.finished]
        groups: list[object] = []
        if self.group_clocks or self.group_finished or self.group_cycles:
            groups = [
                [clock.to_record(ids) for clock in self.group_clocks.values()],
                [clock.to_record(ids) for clock in self.group_finished],
                {name: list(cycles) for name, cycles in self.group_cycles.items()},
            ]
        record: list[object] = [  # laid out as `TicketRecord` (no tuple in between)
            self.ticket_id,
            self.customer_id,
            self.tier,
            self.priority,
            self.status,
            self.replied,
            self.closed_at,
            self.nr_cycles,
            self.pu_cycles,
            metrics,
            sorted(self.seen),
            self.assignee,
            self.group,
            finished,
            list(ids),
            self.version,
        ]
        if groups:  # a ticket no group held: its record is what it was before groups
            record.append(groups)
        return record

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> TicketState:
        """Rebuild a state from `to_record`'s array (decoded JSON; its arity is checked;
        a record written before explanations, without `finished`, or before policy versions, without `version`, still loads)."""
        if not MIN_TICKET_FIELDS <= len(record) <= len(TicketRecord._fields):
            raise TypeError(
                f"a ticket record has {MIN_TICKET_FIELDS} to {len(TicketRecord._fields)} "
                f"fields, not {len(record)}"
            )
        r = TicketRecord(*record)
        state = cls(r.ticket_id, r.customer_id, r.tier, r.priority, r.status, r.version)
        state.replied = bool(r.replied)
        state.closed_at = r.closed_at
        state.nr_cycles = r.nr_cycles
        state.pu_cycles = r.pu_cycles
        ids = r.event_ids
        for clock_record in r.metrics:
            clock = MetricClock.from_record(clock_record, ids)
            state.metrics[clock.metric] = clock
        state.seen = set(r.seen)
        state.assignee = r.assignee
        state.group = r.group
        state.finished = [MetricClock.from_record(clock, ids) for clock in r.finished]
        if r.groups:
            running, replaced, cycles = r.groups
            state.own_groups()
            for clock_record in running:
                clock = MetricClock.from_record(clock_record, ids)
                state.group_clocks[clock.metric] = clock
            state.group_finished = [MetricClock.from_record(c, ids) for c in replaced]
            state.group_cycles = {str(g): [int(n) for n in c] for g, c in cycles.items()}
        return state


_NO_CLOCKS: dict[str, MetricClock] = {}
_NO_FINISHED: list[MetricClock] = []
_NO_CYCLES: dict[str, list[int]] = {}


class TicketRecord(NamedTuple):
    """The layout of a ticket's state record (a JSON array, these fields in order)."""

    ticket_id: str
    customer_id: str
    tier: str
    priority: str
    status: str
    replied: bool
    closed_at: int | None
    nr_cycles: int
    pu_cycles: int
    metrics: list[list[Any]]  # `MetricRecord` arrays
    seen: list[int]  # fingerprints of the event ids applied (`event_fingerprint`)
    assignee: str | None
    group: str | None
    finished: Sequence[Sequence[Any]] = ()  # `MetricRecord` arrays of replaced cycles
    event_ids: Sequence[str] = ()  # the event ids the clocks' notes name, by index
    version: str = ""  # policy version id ("": the first version)
    # group clocks, only for a ticket a group held: [running by metric, replaced, cycles]
    groups: Sequence[Any] = ()


MIN_TICKET_FIELDS: Final = 13
"""Fields of a ticket record written before explanations: it still loads."""

_DUE = MetricRecord._fields.index("due")
_CLOSED_AT = TicketRecord._fields.index("closed_at")
_METRICS = TicketRecord._fields.index("metrics")
_GROUPS = TicketRecord._fields.index("groups")


def record_timer(record: Sequence[Any]) -> tuple[str, int | None, int | None]:
    """(ticket_id, closed_at, next_due()) of a state record (decoded JSON), read without
    rebuilding the state: what a restore needs for the timer index, at a fraction of
    `TicketState.from_record`'s cost; the same as `from_record(record)`'s fields."""
    if not MIN_TICKET_FIELDS <= len(record) <= len(TicketRecord._fields):
        raise TypeError(
            f"a ticket record has {MIN_TICKET_FIELDS} to {len(TicketRecord._fields)} "
            f"fields, not {len(record)}"
        )
    due: int | None = None
    clocks: list[Any] = list(record[_METRICS])
    if len(record) > _GROUPS and record[_GROUPS]:
        clocks.extend(record[_GROUPS][0])  # the running group clocks
    for clock in clocks:
        at = clock[_DUE]
        if at is not None and (due is None or at < due):
            due = at
    return str(record[0]), record[_CLOSED_AT], due


def era_calendar(policy: CompiledPolicy, tier: str) -> BusinessCalendar:
    """The calendar an era of a clock counted under: a tier's, or a group's (`GROUP_ERA`)."""
    if tier.startswith(GROUP_ERA):
        return policy.groups[tier[len(GROUP_ERA) :]].calendar
    return policy.tiers[tier].calendar


def era_calendars(book: PolicyBook | None, fallback: CompiledPolicy) -> CalendarOf:
    """`calendar_of` for a clock's eras: each era's version from `book`, else `fallback`."""

    def calendar_of(version_id: str, tier: str) -> BusinessCalendar:
        found = None if book is None else book.find(version_id)
        return era_calendar(fallback if found is None else found.policy, tier)

    return calendar_of


_PHASE = MetricRecord._fields.index("phase")
_GROUP = MetricRecord._fields.index("group")


def record_open_group(record: Sequence[Any]) -> str | None:
    """The group whose cycle of this ticket still has no outcome, read off a state record
    (decoded JSON) without rebuilding the state: `group_view.open_group` of
    `TicketState.from_record(record)`, at a restore's cost."""
    if len(record) <= _GROUPS or not record[_GROUPS]:
        return None
    for clock in record[_GROUPS][0]:
        if clock[_PHASE] == 0 and len(clock) > _GROUP and clock[_GROUP]:  # Phase.ACTIVE
            return str(clock[_GROUP])
    return None


class TicketEngine:
    """Applies events and time to `TicketState`s under the policy versions of a book."""

    def __init__(
        self,
        policy: CompiledPolicy,
        contracts: ContractBook | None = None,
        versions: PolicyBook | None = None,
    ) -> None:
        from slaclock.processors.engine.contracts import ContractBook

        self.policy = policy  # the first version
        # the last event id fingerprinted and its fingerprint: the stage asks
        # `is_duplicate`, then `apply` asks again, for every event
        self._fingerprinted_id = ""
        self._fingerprint = event_fingerprint("")
        # Policy versions in time; a ticket runs under the version its state names.
        self.versions = versions if versions is not None else PolicyBook(policy)
        self._first = self.versions.first  # the hot path: most tickets run under it
        self._first_id = self._first.version_id
        # Contracts in force at each instant; a ticket's tier is its contract's at creation.
        self.contracts = (
            contracts if contracts is not None else ContractBook.from_policy(policy, self.versions)
        )

    # -- versions -------------------------------------------------------------------------

    def version_of(self, state: TicketState) -> PolicyVersion:
        """The policy version a ticket runs under (its own: pinned tickets keep theirs)."""
        if state.version == self._first_id:
            return self._first
        found = self.versions.find(state.version)
        if found is None:  # a state written before policy versions: the first version
            found = self.versions.first
            state.version = found.version_id
        return found

    def policy_of(self, state: TicketState) -> CompiledPolicy:
        return self.version_of(state).policy

    def _tier(self, state: TicketState) -> CompiledTier:
        return self.version_of(state).policy.tiers[state.tier]

    def calendar_of(self, version: str, tier: str) -> BusinessCalendar:
        """The calendar of `tier` in `version` (for segments a clock froze under it)."""
        found = self.versions.find(version)
        return era_calendar(found.policy if found is not None else self.versions.first.policy, tier)

    def _group_terms(self, state: TicketState, group: str) -> CompiledTier | None:
        """The terms of `group` in the ticket's version (None: the version does not define it)."""
        return self.version_of(state).policy.groups.get(group)

    # -- entry points ---------------------------------------------------------------------

    def check_creatable(self, event: TicketCreatedEvent, at: int | None = None) -> None:
        """Raise `Rejected` if the ticket cannot be created under the version in force at
        `at` (default: the first version)."""
        # A contract's tier is checked when the contract is accepted; the default is valid.
        version = self.versions.first if at is None else self.versions.in_force(at)
        if event.tier is not None and event.tier not in version.policy.tiers:
            where = (
                "the policy"
                if len(self.versions) == 1
                else (f"policy version {version.version_id!r}")
            )
            raise Rejected("UnknownTier", f"tier {event.tier!r} is not defined in {where}")

    def untracked_reason(
        self, event: TicketCreatedEvent, state: TicketState, at: int
    ) -> str | None:
        """Why a ticket just created gets no SLA at all, or None if it is tracked.

        Untracked: its tier has no target for its priority in any metric (a later priority
        change starts no metric that was not tracked before). The reason is `no_contract`
        when that tier is the default one because the customer had no contract in force and
        the event named no tier, else `no_target` (the priority has no target in the tier
        the event or the contract chose).
        """
        tier = self._tier(state)
        priority = state.priority
        if any(tier.target(metric, priority) is not None for metric in METRICS):
            return None
        if event.tier is None and self.contracts.in_force(event.customer_id, at) is None:
            return "no_contract"
        return "no_target"

    def create(self, event: TicketCreatedEvent, at: int) -> tuple[TicketState, list[Output]]:
        """Start a ticket. `at` is the effective instant (occurred_at, or the clock if late)."""
        self.check_creatable(event, at)
        version = self.versions.in_force(at)
        tiers = version.policy.tiers
        tier_name = self.contracts.tier_for(event.tier, event.customer_id, at)
        if tier_name not in tiers:  # a contract tier the version lacks (refused when published)
            tier_name = version.policy.default_tier
        tier = tiers[tier_name]
        state = TicketState(
            event.ticket_id,
            event.customer_id,
            tier_name,
            str(event.priority),
            "new",
            version.version_id,
        )
        state.seen.add(self.fingerprint(event.event_id))
        state.cause = event.event_id
        outputs: list[Output] = []
        for metric in (FIRST_RESPONSE, RESOLUTION):
            self._start(state, tier, metric, 1, at)
        if str(event.status) != "new":
            self._change_status(state, tier, str(event.status), at, outputs)
        state.cause = ""
        return state, outputs

    def apply(
        self, state: TicketState, event: EngineEvent, at: int
    ) -> tuple[Verdict, list[Output]]:
        """Apply a non-creating event to a known ticket at effective instant `at`."""
        fingerprint = self.fingerprint(event.event_id)
        if fingerprint in state.seen:
            return Verdict.DUPLICATE, []
        if isinstance(event, TicketCreatedEvent):
            raise Rejected("DuplicateTicket", f"ticket {event.ticket_id!r} was already created")
        if state.closed_at is not None:
            return Verdict.IGNORED_CLOSED, []
        state.seen.add(fingerprint)
        state.cause = event.event_id
        tier = self._tier(state)
        outputs: list[Output] = []
        if isinstance(event, AgentRepliedEvent):
            if event.public:
                self._agent_replied(state, tier, at, outputs)
            if state.group_clocks:  # any reply while held answers the group
                self._group_replied(state, at, outputs)
        elif isinstance(event, CustomerRepliedEvent):
            self._customer_replied(state, tier, at, outputs)
        elif isinstance(event, StatusChangedEvent):
            self._change_status(state, tier, str(event.status), at, outputs)
        elif isinstance(event, PriorityChangedEvent):
            self._change_priority(state, tier, str(event.priority), at, outputs)
        elif isinstance(event, AssignedEvent):
            state.assignee = event.assignee
            previous = state.holder
            state.group = event.group
            if state.holder != previous:  # the same group again changes nothing
                self._end_hold(state, at, outputs)
                if previous is not None and state.holder is not None:
                    outputs.append(_hold_fact(state, previous, "handoff", at))
                self._begin_hold(state, at)
                if state.holder is not None:
                    outputs.append(_hold_fact(state, state.holder, "begun", at))
        state.cause = ""
        return Verdict.APPLIED, outputs

    def is_duplicate(self, state: TicketState, event_id: str) -> bool:
        return self.fingerprint(event_id) in state.seen

    def fingerprint(self, event_id: str) -> int:
        """`event_fingerprint(event_id)`, remembered for the last id asked."""
        if event_id != self._fingerprinted_id:
            self._fingerprint = event_fingerprint(event_id)
            self._fingerprinted_id = event_id
        return self._fingerprint

    def fire_due(self, state: TicketState, now: int) -> list[Output]:
        """Fire every timer due at or before `now`, in time order (ties: metric order)."""
        outputs: list[Output] = []
        customer_tier: CompiledTier | None = None  # looked up once something is due
        while True:
            clock = _earliest(state)
            if clock is None or clock.due is None or clock.due > now:
                return outputs
            at = clock.due
            if customer_tier is None:
                customer_tier = self._tier(state)
            tier = customer_tier
            if clock.group:
                terms = self._group_terms(state, clock.group)
                if terms is None:  # not reachable: a version without the group ends its clocks
                    clock.due = None
                    continue
                tier = terms
            if clock.next_threshold < len(tier.thresholds):
                threshold = tier.thresholds[clock.next_threshold]
                clock.next_threshold += 1
                outputs.append(self._warning(state, tier, clock, threshold.fraction, at))
            else:
                clock.breached = True
                outputs.append(self._breach(state, clock, at, decided_at=at))
            clock.refresh_due(tier.calendar, tier.thresholds, self.calendar_of)

    def change_version(self, state: TicketState, version: PolicyVersion, at: int) -> list[Output]:
        """An `open` policy version takes effect for this open ticket at P = `at`
        (docs/semantics.md: Policy changes). The caller has fired every timer due before `at`.

        Counted time up to P stays as the old calendar and `pause_on` counted it (a clock
        whose calendar changes freezes its segments, naming the old version and tier); from
        P the new ones count. Every running metric is then recomputed exactly as by a
        priority change at P: the new target from its original start, thresholds of the
        new warnings strictly before P skipped (one at or below a fraction the cycle has
        passed already is never warned again), a deadline strictly before P breached at
        once, no target: cancelled. A tier the version lacks becomes its `default_tier`. A
        stopped `first_response` and a completed resolution only keep their counted time:
        a reopen recomputes them under the ticket's version then.
        """
        old_version = self.version_of(state)
        if state.closed_at is not None or old_version is version:
            return []
        old_tier = old_version.policy.tiers[state.tier]
        old_id, old_tier_name = old_version.version_id, state.tier
        tiers = version.policy.tiers
        tier_name = state.tier if state.tier in tiers else version.policy.default_tier
        tier = tiers[tier_name]
        state.version = version.version_id
        state.tier = tier_name
        same_calendar = old_tier.calendar.same_counting(tier.calendar)
        outputs: list[Output] = []
        # what the clocks note as the cause of what changes at P (docs/semantics.md: Explanations)
        state.cause = version_cause(version.version_id)
        if not same_calendar:
            for replaced in state.finished:  # explained under the calendar that counted them
                _freeze_ended(replaced, old_tier, old_id, old_tier_name)
        for metric in list(state.metrics):
            clock = state.metrics[metric]
            if clock.phase is Phase.CANCELLED:
                if not same_calendar:
                    _freeze_ended(clock, old_tier, old_id, old_tier_name)
                continue
            running = clock.running
            stopped = _stopped(clock)
            if clock.phase is Phase.ACTIVE and not stopped and metric in _PAUSABLE:
                should_run = state.status not in tier.pause_on
            else:
                should_run = running
            if running:  # a run ends at P: a timeline shows the rules that count from P
                clock.pause(old_tier.calendar, at)
                if not should_run:
                    clock.mark(at, PAUSED, state.status, state.cause)
            if not same_calendar:
                clock.freeze(old_id, old_tier_name)
            if should_run:
                clock.resume(at)
                clock.mark(at, RUN, "", state.cause)
            if clock.phase is not Phase.ACTIVE or stopped:
                continue
            clock.next_threshold = _carried_threshold(clock, old_tier.thresholds, tier.thresholds)
            self._retarget(state, tier, clock, at, outputs)
        if state.group_clocks or state.group_finished:
            self._change_group_version(state, old_version, at, outputs)
        state.cause = ""
        return outputs

    def _change_group_version(
        self, state: TicketState, old_version: PolicyVersion, at: int, outputs: list[Output]
    ) -> None:
        """A version at P for the group clocks, as for the customer metrics: counted time
        kept under the old group calendar, the new group terms from P (a group the version
        no longer defines, or no target: the running cycles are cancelled, `no_target`)."""
        old_groups = old_version.policy.groups
        new_groups = self.version_of(state).policy.groups
        old_id = old_version.version_id

        def same(group: str) -> bool:
            old, new = old_groups.get(group), new_groups.get(group)
            return old is not None and new is not None and old.calendar.same_counting(new.calendar)

        for replaced in state.group_finished:
            old = old_groups.get(replaced.group)
            if old is not None and not same(replaced.group):
                _freeze_ended(replaced, old, old_id, GROUP_ERA + replaced.group)
        for metric in list(state.group_clocks):
            clock = state.group_clocks[metric]
            old = old_groups.get(clock.group)
            new = new_groups.get(clock.group)
            if old is None:
                continue
            if clock.phase is not Phase.ACTIVE:
                if not same(clock.group):
                    _freeze_ended(clock, old, old_id, GROUP_ERA + clock.group)
                continue
            if new is None:  # the version drops the group: its running cycles end
                self._cancel(state, old, clock, at, "no_target", outputs)
                _freeze_ended(clock, old, old_id, GROUP_ERA + clock.group)
                continue
            running = clock.running
            should_run = state.status not in new.pause_on if metric == GROUP_RESOLUTION else running
            if running:
                clock.pause(old.calendar, at)
                if not should_run:
                    clock.mark(at, PAUSED, state.status, state.cause)
            if not same(clock.group):
                clock.freeze(old_id, GROUP_ERA + clock.group)
            if should_run:
                clock.resume(at)
                clock.mark(at, RUN, "", state.cause)
            clock.next_threshold = _carried_threshold(clock, old.thresholds, new.thresholds)
            self._retarget(state, new, clock, at, outputs)

    # -- rules ------------------------------------------------------------------------------

    def _agent_replied(
        self, state: TicketState, tier: CompiledTier, at: int, outputs: list[Output]
    ) -> None:
        state.replied = True
        for metric in (FIRST_RESPONSE, NEXT_RESPONSE, PERIODIC_UPDATE):
            clock = state.metrics.get(metric)
            if clock is not None and clock.phase is Phase.ACTIVE:
                self._complete(state, tier, clock, at, outputs)
        if state.status != SOLVED:
            self._start_cycle(state, tier, PERIODIC_UPDATE, at)

    def _customer_replied(
        self, state: TicketState, tier: CompiledTier, at: int, outputs: list[Output]
    ) -> None:
        if state.status in (PENDING, SOLVED):
            self._change_status(state, tier, OPEN, at, outputs)
        if not state.replied:
            return
        running = state.metrics.get(NEXT_RESPONSE)
        if running is None or running.phase is not Phase.ACTIVE:
            self._start_cycle(state, tier, NEXT_RESPONSE, at)

    def _change_status(
        self, state: TicketState, tier: CompiledTier, status: str, at: int, outputs: list[Output]
    ) -> None:
        previous = state.status
        if status == previous:
            return
        self._change_customer_status(state, tier, status, at, outputs)
        if state.group_clocks or (previous == SOLVED and state.holder is not None):
            self._group_status(state, previous, status, at, outputs)

    def _change_customer_status(
        self, state: TicketState, tier: CompiledTier, status: str, at: int, outputs: list[Output]
    ) -> None:
        previous = state.status
        state.status = status
        metrics = state.metrics
        if status in (SOLVED, CLOSED):
            ended: CancelReason = "solved" if status == SOLVED else "closed"
            for metric in (NEXT_RESPONSE, PERIODIC_UPDATE):
                self._cancel(state, tier, metrics.get(metric), at, ended, outputs)
            resolution = metrics.get(RESOLUTION)
            if resolution is not None and resolution.phase is Phase.ACTIVE:
                self._complete(state, tier, resolution, at, outputs)
            first = metrics.get(FIRST_RESPONSE)
            if status == CLOSED:
                self._cancel(state, tier, first, at, "closed", outputs)
                state.closed_at = at
            elif first is not None and first.phase is Phase.ACTIVE:
                first.stop(
                    tier.calendar, at
                )  # not running until a reopen (docs/semantics.md: Metrics)
                first.mark(at, STOPPED, status, state.cause)
            return
        paused = status in tier.pause_on
        if previous == SOLVED:  # a reopen (docs/semantics.md: Metrics)
            resolution = metrics.get(RESOLUTION)
            if resolution is not None and resolution.phase is Phase.COMPLETED:
                resolution.phase = Phase.ACTIVE
                if not paused:
                    resolution.resume(at)
                resolution.mark(
                    at, PAUSED if paused else RUN, status if paused else "", state.cause
                )
                self._retarget(state, tier, resolution, at, outputs)
            first = metrics.get(FIRST_RESPONSE)
            if first is not None and first.phase is Phase.ACTIVE:
                first.resume(at)
                first.mark(at, RUN, "", state.cause)
                self._retarget(state, tier, first, at, outputs)
            self._start_cycle(state, tier, PERIODIC_UPDATE, at)
            return
        for metric in (RESOLUTION, PERIODIC_UPDATE):
            clock = metrics.get(metric)
            if clock is None or clock.phase is not Phase.ACTIVE:
                continue
            if paused:
                clock.pause(tier.calendar, at)
                clock.mark(at, PAUSED, status, state.cause)
            elif not clock.running:
                clock.resume(at)
                clock.mark(at, RUN, "", state.cause)
            clock.refresh_due(tier.calendar, tier.thresholds, self.calendar_of)

    def _change_priority(
        self, state: TicketState, tier: CompiledTier, priority: str, at: int, outputs: list[Output]
    ) -> None:
        if priority == state.priority:
            return
        state.priority = priority
        for metric in list(state.metrics):
            clock = state.metrics[metric]
            if clock.phase is Phase.ACTIVE and not _stopped(clock):
                self._retarget(state, tier, clock, at, outputs)
        for clock in list(state.group_clocks.values()):
            terms = self._group_terms(state, clock.group)
            if clock.phase is Phase.ACTIVE and terms is not None:
                self._retarget(state, terms, clock, at, outputs)

    # -- groups (docs/semantics.md: Groups) -------------------------------------------------

    def _group_replied(self, state: TicketState, at: int, outputs: list[Output]) -> None:
        """An agent reply (public or not) while held completes the hold's group_response."""
        clock = state.group_clocks.get(GROUP_RESPONSE)
        if clock is None or clock.phase is not Phase.ACTIVE:
            return
        terms = self._group_terms(state, clock.group)
        if terms is not None:
            self._complete(state, terms, clock, at, outputs)

    def _end_hold(self, state: TicketState, at: int, outputs: list[Output]) -> None:
        """The hold's group stops holding the ticket: a running group_response is cancelled
        (`hold_ended`), a running group_resolution completes; both become replaced cycles."""
        clocks = state.group_clocks
        if not clocks:
            return
        response = clocks.get(GROUP_RESPONSE)
        resolution = clocks.get(GROUP_RESOLUTION)
        group = (response or resolution or next(iter(clocks.values()))).group
        terms = self._group_terms(state, group)
        if terms is not None:
            self._cancel(state, terms, response, at, "hold_ended", outputs)
            if resolution is not None and resolution.phase is Phase.ACTIVE:
                self._complete(state, terms, resolution, at, outputs)
        state.own_groups()
        state.group_finished.extend(clocks.values())
        clocks.clear()

    def _begin_hold(self, state: TicketState, at: int) -> None:
        """The holder begins a hold: a new cycle of both group metrics, unless the policy
        does not define the group (held without clocks) or the ticket is solved (a reopen
        starts group_resolution then)."""
        group = state.holder
        if group is None or state.status == SOLVED:
            return
        terms = self._group_terms(state, group)
        if terms is None:
            return
        for metric in (GROUP_RESPONSE, GROUP_RESOLUTION):
            self._start_group(state, terms, group, metric, at)

    def _start_group(
        self, state: TicketState, terms: CompiledTier, group: str, metric: str, at: int
    ) -> None:
        target = terms.target(metric, state.priority)
        if target is None:
            return  # an untracked cycle: not numbered, nothing runs
        state.own_groups()
        cycles = state.group_cycles.setdefault(group, [0, 0])
        index = 0 if metric == GROUP_RESPONSE else 1
        cycles[index] += 1
        clock = MetricClock(metric, cycles[index], at, target, group)
        if metric == GROUP_RESOLUTION and state.status in terms.pause_on:
            clock.mark(at, PAUSED, state.status, state.cause)
        else:
            clock.resume(at)
            clock.mark(at, RUN, "", state.cause)
        clock.note_target(at, state.priority, state.version, state.cause)
        clock.refresh_due(terms.calendar, terms.thresholds, self.calendar_of)
        replaced = state.group_clocks.get(metric)
        if replaced is not None:
            state.group_finished.append(replaced)
        state.group_clocks[metric] = clock

    def _group_status(
        self, state: TicketState, previous: str, status: str, at: int, outputs: list[Output]
    ) -> None:
        """A status change for the group clocks: solved/closed cancel group_response and
        complete group_resolution (the ticket stays held); a reopen starts a new
        group_resolution cycle for the holder; group_resolution pauses on the group's pause_on."""
        group = state.holder
        if status in (SOLVED, CLOSED):
            response = state.group_clocks.get(GROUP_RESPONSE)
            resolution = state.group_clocks.get(GROUP_RESOLUTION)
            clock = response or resolution
            if clock is None:
                return
            terms = self._group_terms(state, clock.group)
            if terms is None:
                return
            self._cancel(
                state, terms, response, at, "solved" if status == SOLVED else "closed", outputs
            )
            if resolution is not None and resolution.phase is Phase.ACTIVE:
                self._complete(state, terms, resolution, at, outputs)
            return
        if group is None:
            return
        terms = self._group_terms(state, group)
        if terms is None:
            return
        if previous == SOLVED:  # a reopen while held
            self._start_group(state, terms, group, GROUP_RESOLUTION, at)
            return
        clock = state.group_clocks.get(GROUP_RESOLUTION)
        if clock is None or clock.phase is not Phase.ACTIVE:
            return
        if status in terms.pause_on:
            clock.pause(terms.calendar, at)
            clock.mark(at, PAUSED, status, state.cause)
        elif not clock.running:
            clock.resume(at)
            clock.mark(at, RUN, "", state.cause)
        clock.refresh_due(terms.calendar, terms.thresholds, self.calendar_of)

    # -- clock operations -------------------------------------------------------------------

    def _start(
        self, state: TicketState, tier: CompiledTier, metric: str, cycle: int, at: int
    ) -> None:
        target = tier.target(metric, state.priority)
        if target is None:
            return
        clock = MetricClock(metric, cycle, at, target)
        pausable = metric in (RESOLUTION, PERIODIC_UPDATE)
        if not (pausable and state.status in tier.pause_on):
            clock.resume(at)
            clock.mark(at, RUN, "", state.cause)
        else:
            clock.mark(at, PAUSED, state.status, state.cause)
        clock.note_target(at, state.priority, state.version, state.cause)
        clock.refresh_due(tier.calendar, tier.thresholds, self.calendar_of)
        replaced = state.metrics.get(metric)
        if replaced is not None:
            state.finished.append(replaced)
        state.metrics[metric] = clock

    def _start_cycle(self, state: TicketState, tier: CompiledTier, metric: str, at: int) -> None:
        """Start the next tracked cycle of next_response or periodic_update."""
        if tier.target(metric, state.priority) is None:
            replaced = state.metrics.pop(metric, None)
            if replaced is not None:
                state.finished.append(replaced)
            return
        if metric == NEXT_RESPONSE:
            state.nr_cycles += 1
            cycle = state.nr_cycles
        else:
            state.pu_cycles += 1
            cycle = state.pu_cycles
        self._start(state, tier, metric, cycle, at)

    def _cancel(
        self,
        state: TicketState,
        tier: CompiledTier,
        clock: MetricClock | None,
        at: int,
        reason: CancelReason,
        outputs: list[Output],
    ) -> None:
        """End a tracked cycle without an outcome, with an `sla.cancelled` saying why
        (docs/semantics.md: Outputs), so whatever a warning or breach opened can be closed."""
        if clock is None or clock.phase is not Phase.ACTIVE:
            return
        elapsed = clock.counted(tier.calendar, at)
        clock.phase = Phase.CANCELLED
        clock.due = None
        clock.mark(at, CANCELLED, reason, state.cause)
        # the common fields, then this output's own, in one dict (no copy)
        cancelled = cast(CancelledOutput, _common(state, clock, "sla.cancelled", at))
        cancelled["reason"] = reason
        cancelled["elapsed_seconds"] = seconds_value(elapsed)
        cancelled["target_seconds"] = seconds_value(clock.target)
        cancelled["breached"] = clock.breached
        outputs.append(as_output(cancelled))

    def _complete(
        self,
        state: TicketState,
        tier: CompiledTier,
        clock: MetricClock,
        at: int,
        outputs: list[Output],
    ) -> None:
        calendar = tier.calendar
        clock.pause(calendar, at)
        clock.phase = Phase.COMPLETED
        clock.due = None
        clock.completions += 1
        clock.mark(at, COMPLETED, state.status, state.cause)
        # the common fields, then this output's own, in one dict (no copy)
        completed = cast(
            CompletedOutput, _common(state, clock, "sla.completed", at, clock.completions)
        )
        completed["outcome"] = "breached" if clock.breached else "met"
        completed["elapsed_seconds"] = seconds_value(clock.closed_counted)
        completed["target_seconds"] = seconds_value(clock.target)
        outputs.append(as_output(completed))

    def _retarget(
        self,
        state: TicketState,
        tier: CompiledTier,
        clock: MetricClock,
        at: int,
        outputs: list[Output],
    ) -> None:
        """Recomputation (docs/semantics.md: Warnings, breaches and time order) at instant `at` for the ticket's current priority.

        The target of the current priority applies from the metric's original start with
        the counted time it has; thresholds crossed strictly before `at` are not warned; a
        deadline strictly before `at` breaches at once; one exactly at `at` stays a timer.
        """
        target = tier.target(clock.metric, state.priority)
        if target is None:
            self._cancel(state, tier, clock, at, "no_target", outputs)
            return
        calendar = tier.calendar
        clock.target = target
        clock.note_target(at, state.priority, state.version, state.cause)
        if not clock.breached:
            thresholds = tier.thresholds
            while clock.next_threshold < len(thresholds):
                point = thresholds[clock.next_threshold].point(target)
                reached = clock.instant_reaching(calendar, point, self.calendar_of)
                if reached is None or reached >= at:
                    break
                clock.next_threshold += 1
            deadline = clock.instant_reaching(calendar, target, self.calendar_of)
            if deadline is not None and deadline < at:
                clock.breached = True
                outputs.append(self._breach(state, clock, deadline, decided_at=at))
        clock.refresh_due(calendar, tier.thresholds, self.calendar_of)

    # -- outputs --------------------------------------------------------------------------

    def _warning(
        self, state: TicketState, tier: CompiledTier, clock: MetricClock, fraction: Any, at: int
    ) -> Output:
        calendar = tier.calendar
        deadline = clock.deadline(calendar, self.calendar_of)
        if deadline is None:  # paused at the very threshold instant: project as if it ran on
            deadline = calendar.instant_after(at, clock.target - clock.counted(calendar, at))
        # the common fields, then this output's own, in one dict (no copy)
        warning = cast(WarningOutput, _common(state, clock, "sla.warning", at, fraction))
        warning["threshold"] = float(fraction)
        warning["deadline"] = format_us(deadline)
        warning["target_seconds"] = seconds_value(clock.target)
        return as_output(warning)

    def _breach(self, state: TicketState, clock: MetricClock, at: int, decided_at: int) -> Output:
        # the common fields, then this output's own, in one dict (no copy)
        breach = cast(BreachOutput, _common(state, clock, "sla.breach", at))
        breach["deadline"] = format_us(at)
        breach["decided_at"] = format_us(decided_at)
        breach["target_seconds"] = seconds_value(clock.target)
        return as_output(breach)


def _common(
    state: TicketState, clock: MetricClock, kind: str, at: int, *key: object
) -> TicketOutputBase:
    """The fields every ticket output has (docs/semantics.md: Outputs), in their fixed order.

    The event id is the UUIDv5 of (kind, ticket, metric, cycle, *key): a threshold for a
    warning, the completion number for a completion, nothing more for a breach; then the
    group, for a group metric.
    """
    # output_event_id(kind, ticket, metric, cycle, *key), joined here (no star-call)
    natural = kind + KEY_SEPARATOR + state.ticket_id + KEY_SEPARATOR + str(clock.metric)
    natural += KEY_SEPARATOR + str(clock.cycle)
    for part in key:
        natural += KEY_SEPARATOR + str(part)
    if clock.group:  # cycles are numbered per group: the group is part of the key
        natural += KEY_SEPARATOR + clock.group
    return {
        "event_id": natural_key_id(natural),
        "type": kind,
        "ticket_id": state.ticket_id,
        "customer_id": state.customer_id,
        "tier": state.tier,
        "priority": state.priority,
        "metric": clock.metric,
        "cycle": clock.cycle,
        "at": format_us(at),
        "policy_version": state.version,
        "group": clock.group or None,
    }


_PAUSABLE: Final = (RESOLUTION, PERIODIC_UPDATE)


def _hold_fact(state: TicketState, group: str, hold: str, at: int) -> Output:
    """A hold `begun`, or one ended by a `handoff` to another group: for the group
    statements only (the ledger counts them; no public topic carries them)."""
    return {
        "event_id": output_event_id(GROUP_HOLD, state.ticket_id, group, hold, state.cause),
        "type": GROUP_HOLD,
        "ticket_id": state.ticket_id,
        "customer_id": state.customer_id,
        "group": group,
        "hold": hold,
        "at": format_us(at),
        "policy_version": state.version,
    }


def _freeze_ended(clock: MetricClock, tier: CompiledTier, version: str, tier_name: str) -> None:
    """Keep an ended cycle's segments under the calendar that counted them (for its
    explanation). One that ended running (a cancellation leaves its run open) is closed
    at its end first; one whose end is not noted (an old record) is left as it is."""
    if len(clock.segments) % 2 == 1:
        end = clock.ended_at()
        if end is None or clock.phase is Phase.ACTIVE:
            return
        clock.pause(tier.calendar, end)
    clock.freeze(version, tier_name)


def _carried_threshold(
    clock: MetricClock, old: tuple[Threshold, ...], new: tuple[Threshold, ...]
) -> int:
    """The index into the new warnings of the first threshold the cycle may still warn.

    A cycle's warnings only go up: a fraction at or below the highest one it has passed
    (warned, or skipped by a recomputation) is never warned (again); a breached cycle
    warns no more.
    """
    if clock.breached:
        return len(new)
    if clock.next_threshold == 0 or not old:
        return 0
    passed = old[min(clock.next_threshold, len(old)) - 1].fraction
    index = 0
    while index < len(new) and new[index].fraction <= passed:
        index += 1
    return index


def _stopped(clock: MetricClock) -> bool:
    """A `first_response` stopped by `solved` (docs/semantics.md: Metrics: stopped is not running).

    `first_response` never pauses, so an active one that is not counting is stopped: it
    has no timer and a priority change leaves it alone; a reopen recomputes it.
    """
    return clock.metric == FIRST_RESPONSE and clock.phase is Phase.ACTIVE and not clock.running


def _earliest(state: TicketState) -> MetricClock | None:
    """The clock with the earliest timer; ties go to the earlier metric (the metric order of docs/semantics.md: Credits).

    Once per event and per timer fired: instants compared first, the metric order looked
    up only on a tie (no key tuples)."""
    best: MetricClock | None = None
    best_due = 0
    for clock in state.metrics.values():
        due = clock.due
        if due is None:
            continue
        if (
            best is None
            or due < best_due
            or (due == best_due and _CLOCK_ORDER[clock.metric] < _CLOCK_ORDER[best.metric])
        ):
            best, best_due = clock, due
    for clock in state.group_clocks.values():
        due = clock.due
        if due is None:
            continue
        if (
            best is None
            or due < best_due
            or (due == best_due and _CLOCK_ORDER[clock.metric] < _CLOCK_ORDER[best.metric])
        ):
            best, best_due = clock, due
    return best
