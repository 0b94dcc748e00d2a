"""The availability clock of one service (service availability rules): pure and exact.

A service's **downtime** accrues over the working time of its calendar at the weight of its
current status (`down_on` merged over the defaults), except inside an **excused** maintenance
window (announced at least `maintenance_notice` before its current `starts_at`). Periods are
calendar months in the service's time zone; a period's **budget** is (100 - target)/100 of its
measured (working) time. Warnings fire when downtime reaches each fraction of the budget, the
breach at the first instant downtime *exceeds* the budget, the report at the period end E.

Exactness: instants and working time are integer microseconds. Downtime and the budget are
integers too, in units of 1/SCALE microsecond (`SCALE` = 10^6): a weight has at most 6
decimal places and a target at most 4, so weight x working time and (100 - target) % of the
measured time are whole numbers of those units (a weight of 0.3 makes downtime a non-integer
number of microseconds). A crossing instant is the first whole microsecond at which downtime
has reached the amount (instants are rounded up). No float is used for any decision; floats
appear only when a duration is written as JSON seconds.

How the state advances (the contract with `ServiceStage`):
- `advance(state, t)` accounts downtime and excused time up to `t`, in pieces of constant
  weight (split at excused-window starts and ends; the period end is never crossed here);
- `fire_due(state, limit)` fires every timer due at or before `limit` (warnings, breach,
  report + roll-over to the next period), in time order;
- `apply(state, event, at)` applies an event at `at` after the caller fired every timer due
  strictly before `at` (events at t come before timers at t);
- after any call `state.due` is the next timer instant (always set: the period end at least).

Decisions where the rules are silent are listed in the README section on availability.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from slaclock.processors.engine import periods
from slaclock.processors.engine.calendar import BusinessCalendar, calendar_from_spec
from slaclock.processors.engine.ids import output_event_id
from slaclock.processors.engine.instants import US_PER_SECOND, format_us, seconds_value, to_us
from slaclock.processors.engine.versions import PolicyBook
from slaclock.schemas.policy import Policy, ServiceSpec
from slaclock.schemas.services import (
    MaintenanceCancelled,
    MaintenanceScheduled,
    ServiceEvent,
    ServiceStatusChanged,
)

Output = dict[str, Any]

WARNING = "sla.availability_warning"
BREACH = "sla.availability_breach"
REPORT = "sla.availability_report"
OPERATIONAL = "operational"
HUNDRED = Decimal(100)
_FOUR_PLACES = Decimal("0.0001")
SCALE = 1_000_000
"""Downtime and budgets are integers in units of 1/SCALE microsecond."""
DEDUP_HORIZON_US = 24 * 3600 * US_PER_SECOND
"""A repeated event id is recognised for this long (service time) after the first one."""


# -- the compiled policy of a service ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    """A service's availability terms as the engine uses them."""

    service_id: str
    timezone: str
    zone: ZoneInfo
    calendar: BusinessCalendar
    target: Decimal
    weights: Mapping[str, Fraction]  # every status -> weight of its time as downtime
    scaled_weights: Mapping[str, int]  # the same x SCALE (exact: at most 6 places)
    budget_factor: int  # (100 - target) x 10^4: budget in 1/SCALE µs = factor x measured µs
    notice_us: int
    thresholds: tuple[tuple[Decimal, Fraction], ...]  # (as written, exact), ascending
    bands: tuple[tuple[Decimal, Decimal], ...]  # (below, percent), ascending `below`


def compile_service(
    service_id: str, spec: ServiceSpec, calendars: Mapping[str, BusinessCalendar]
) -> ServicePolicy:
    calendar = (
        calendars[spec.calendar] if spec.calendar is not None else BusinessCalendar("UTC", None)
    )
    return ServicePolicy(
        service_id=service_id,
        timezone=spec.timezone,
        zone=ZoneInfo(spec.timezone),
        calendar=calendar,
        target=spec.target,
        weights={status: Fraction(weight) for status, weight in spec.weights().items()},
        scaled_weights={status: int(weight * SCALE) for status, weight in spec.weights().items()},
        budget_factor=int((HUNDRED - spec.target) * 10_000),
        notice_us=spec.maintenance_notice * US_PER_SECOND,
        thresholds=tuple((f, Fraction(f)) for f in sorted(spec.warnings)),
        bands=tuple(sorted((band.below, band.percent) for band in spec.credits)),
    )


def compile_services(policy: Policy) -> dict[str, ServicePolicy]:
    """Every service of the policy, its calendars built once."""
    calendars = {name: calendar_from_spec(spec) for name, spec in policy.calendars.items()}
    return {sid: compile_service(sid, spec, calendars) for sid, spec in policy.services.items()}


# -- credits (for the ledger) ----------------------------------------------------------------


def uptime_fraction(downtime_us: int | Fraction, measured_us: int) -> Fraction:
    """Exact uptime percent: 100 x (1 - downtime / measured); 100 with no measured time."""
    if measured_us <= 0:
        return Fraction(100)
    return 100 * (1 - Fraction(downtime_us) / measured_us)


def band_percent(service: ServicePolicy, uptime: Fraction | Decimal) -> Decimal | None:
    """The percent of the band with the smallest `below` that `uptime` is strictly below."""
    exact = Fraction(uptime)
    for below, percent in service.bands:  # ascending: the first match is the smallest
        if exact < Fraction(below):
            return percent
    return None


def credit_percent(
    service: ServicePolicy, downtime_us: int | Fraction, measured_us: int
) -> Decimal | None:
    """Credit of a period, percent of the monthly fee, or None when no band applies.

    Pass the exact downtime (a report's rounded `downtime_seconds` may differ by less than a
    microsecond). `report_credit_percent` gives the same answer from a report alone.
    """
    return band_percent(service, uptime_fraction(downtime_us, measured_us))


def report_credit_percent(service: ServicePolicy, report: Output) -> Decimal | None:
    """The band of a `sla.availability_report`, from its `uptime_percent`.

    Exact: the uptime is rounded down to 4 places and bands have at most 4 places, so the
    rounded value is below a band's `below` exactly when the exact one is.
    """
    return band_percent(service, Decimal(report["uptime_percent"]))


def ledger_availability_percent(
    services: Mapping[str, ServicePolicy],
) -> Callable[[object, Output], Decimal | None]:
    """The ledger's `availability_percent` hook: (policy, report) -> the band's percent.

    A report names its band (`credit_percent`, under the terms its period ran with, which
    a policy version may have changed); older reports are looked up in `services`.
    """

    def percent(_policy: object, report: Output) -> Decimal | None:
        if "credit_percent" in report:
            named = report["credit_percent"]
            return None if named is None else Decimal(named)
        service = services.get(report["service_id"])
        return None if service is None else report_credit_percent(service, report)

    return percent


class ServiceTerms:
    """The services of each policy version, compiled once per version.

    A version changes a service's terms from the service's first period that begins at or
    after its P (docs/semantics.md: Policy changes): the terms of a period are those of the
    version in force at the period's start.
    """

    def __init__(
        self, first: Mapping[str, ServicePolicy], versions: PolicyBook | None = None
    ) -> None:
        self.versions = versions
        self.first_id = versions.first.version_id if versions is not None else "1"
        self._compiled: dict[str, Mapping[str, ServicePolicy]] = {self.first_id: first}

    def of(self, version_id: str) -> Mapping[str, ServicePolicy]:
        compiled = self._compiled.get(version_id)
        if compiled is None:
            version = None if self.versions is None else self.versions.find(version_id)
            if version is None or version.policy.raw is None:
                return self._compiled[self.first_id]
            compiled = self._compiled[version_id] = compile_services(version.policy.raw)
        return compiled

    @property
    def single(self) -> bool:
        """One version only (the hot path: nothing to look up by instant)."""
        return self.versions is None or len(self.versions) == 1

    def at(self, instant: int) -> str:
        """The id of the version in force at `instant`."""
        return (
            self.first_id if self.versions is None else self.versions.in_force(instant).version_id
        )


# -- periods ----------------------------------------------------------------------------------


def period_of(zone: ZoneInfo, instant: int) -> tuple[int, int, str]:
    """(start, end, "YYYY-MM") of the calendar month in `zone` that contains `instant`
    (the same months as billing periods: `processors.engine.periods`)."""
    label = periods.period_of(instant, zone)
    start, end = periods.period_bounds(label, zone)
    return start, end, label


# -- state --------------------------------------------------------------------------------------


def event_fingerprint(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


class ServiceState:
    """Everything the engine remembers about one service."""

    __slots__ = (
        "accounted_to",
        "breached",
        "downtime",
        "due",
        "excused",
        "measured",
        "origin",
        "period",
        "period_end",
        "period_start",
        "seen",
        "service_id",
        "status",
        "status_since",
        "version",
        "warned",
        "windows",
    )

    def __init__(self, service_id: str, start: int, end: int, period: str, measured: int) -> None:
        self.service_id = service_id
        self.status = OPERATIONAL
        self.status_since: int | None = None  # instant of the last status change applied
        self.period_start = start
        self.period_end = end
        self.period = period
        self.measured = measured  # working time of the whole period
        self.accounted_to = start  # downtime and excused time are accounted up to here
        self.downtime = 0  # weighted working time, in 1/SCALE microseconds
        self.excused = 0  # working microseconds inside excused windows
        self.warned = 0  # thresholds warned so far (they are warned in ascending order)
        self.breached = False
        # maintenance id -> [starts_at, ends_at, announced_at of the current starts_at]
        self.windows: dict[str, list[int]] = {}
        # fingerprints of the event ids applied in the last DEDUP_HORIZON_US -> instant,
        # in the order applied (a service's instants never go back)
        self.seen: dict[int, int] = {}
        self.due: int = end
        # the start of the first period this state reports (None: restored from a record
        # written before it was kept); periods before it are reported by `quiet_reports`
        self.origin: int | None = start
        self.version = ""  # the policy version whose terms this period runs under

    def to_record(self) -> list[object]:
        return [
            self.service_id,
            self.status,
            self.status_since,
            self.period_start,
            self.period_end,
            self.period,
            self.measured,
            self.accounted_to,
            self.downtime,
            self.excused,
            self.warned,
            self.breached,
            {mid: list(window) for mid, window in sorted(self.windows.items())},
            [[fingerprint, at] for fingerprint, at in self.seen.items()],
            self.due,
            self.origin,
            self.version,
        ]

    @classmethod
    def from_record(cls, record: list[Any]) -> ServiceState:
        if len(record) == 15:  # written before policy versions
            record = [*record, ""]
        (
            service_id,
            status,
            status_since,
            start,
            end,
            period,
            measured,
            accounted_to,
            downtime,
            excused,
            warned,
            breached,
            windows,
            seen,
            due,
        ) = record[:15]
        origin = record[15] if len(record) > 15 else None
        # a record written before policy versions: the first version ("")
        version = record[16] if len(record) > 16 else ""
        state = cls(str(service_id), int(start), int(end), str(period), int(measured))
        state.status = str(status)
        state.status_since = None if status_since is None else int(status_since)
        state.accounted_to = int(accounted_to)
        state.downtime = int(downtime)
        state.excused = int(excused)
        state.warned = int(warned)
        state.breached = bool(breached)
        state.windows = {str(k): [int(x) for x in v] for k, v in windows.items()}
        state.seen = {int(fingerprint): int(at) for fingerprint, at in seen}
        state.due = int(due)
        state.origin = None if origin is None else int(origin)
        state.version = str(version)
        return state

    def copy(self) -> ServiceState:
        return ServiceState.from_record(self.to_record())


# -- the clock ------------------------------------------------------------------------------


class AvailabilityClock:
    """The rules, over `ServiceState`s of the services of one policy."""

    def __init__(
        self, services: Mapping[str, ServicePolicy], versions: PolicyBook | None = None
    ) -> None:
        self.services = services  # the first version's
        self.terms = ServiceTerms(services, versions)

    def policy_of(self, state: ServiceState) -> ServicePolicy:
        """The terms of the service's current period."""
        return self.terms.of(state.version)[state.service_id]

    def known(self, service_id: str, at: int) -> bool:
        """Whether `service_id` takes events at `at`: the version in force then defines it
        and its period containing `at` is one of its own (a service a version adds begins
        with its first period starting at or after the version's P)."""
        if service_id not in self.terms.of(self.terms.at(at)):
            return False
        if self.terms.single:
            return True
        first = self.reported_from(service_id, at)
        return first is not None and first <= at

    def defined_at(self, at: int) -> Mapping[str, ServicePolicy]:
        """The services of the version in force at `at`."""
        return self.terms.of(self.terms.at(at))

    def reported_from(self, service_id: str, instant: int) -> int | None:
        """The start of the service's first reported period from the one containing
        `instant` on (docs/availability.md: Quiet services): a period is the service's when
        the version in force at its start defines it, so a service a version adds is
        reported from its first period that begins at or after the version's P. None: no
        version defines it then or later."""
        terms = self.terms
        candidates = [instant]
        if terms.versions is not None:
            candidates += [v.effective for v in terms.versions.changes() if v.effective > instant]
        for candidate in candidates:
            services = terms.of(terms.at(candidate))
            if service_id not in services:
                continue
            start, end, _label = period_of(services[service_id].zone, candidate)
            if candidate != instant and start < candidate:
                start = end  # a version's P inside a period: the next one is the first
            for first in (start, end):
                if service_id in terms.of(terms.at(first)):
                    return first
        return None

    # -- lifecycle ------------------------------------------------------------------------

    def new_state(self, service_id: str, at: int) -> ServiceState:
        """A service reported from its period containing `at` (or, for a service a later
        version adds, its first period from then on: `reported_from`): operational since
        the start of that period, under the terms in force when the period began."""
        first = self.reported_from(service_id, at)
        if first is None:
            raise KeyError(f"service {service_id!r} is defined by no policy version from then on")
        version = self.terms.at(first)
        policy = self.terms.of(version)[service_id]
        start, end, label = period_of(policy.zone, first)
        state = ServiceState(
            service_id, start, end, label, policy.calendar.counted_between(start, end)
        )
        state.version = version
        self._refresh_due(policy, state)
        return state

    def quiet_reports(self, state: ServiceState, first: int) -> list[Output]:
        """The reports of the periods from the one containing `first` up to the state's
        origin: a service is operational before its first event, so each is a whole quiet
        period (uptime 100, met). The state's origin moves back to that period's start."""
        if state.origin is None:
            return []
        start = self.reported_from(state.service_id, first)
        if start is None or start >= state.origin:
            return []
        quiet = self.new_state(state.service_id, start)
        if quiet.period_start >= state.origin:
            return []
        outputs = self.fire_due(quiet, state.origin)  # each period ending at or before it
        state.origin = quiet.origin
        return outputs

    def is_duplicate(self, state: ServiceState, event_id: str, occurred_at: int) -> bool:
        """The event id was applied to this service within the horizon before `occurred_at`."""
        applied = state.seen.get(event_fingerprint(event_id))
        return applied is not None and applied >= occurred_at - DEDUP_HORIZON_US

    # -- weights and pieces ------------------------------------------------------------------

    @staticmethod
    def _excused(policy: ServicePolicy, window: list[int]) -> bool:
        starts, _ends, announced = window
        return starts - announced >= policy.notice_us

    def _piece(self, policy: ServicePolicy, state: ServiceState, a: int) -> tuple[int, bool]:
        """From `a`: the end of the piece of constant weight (never past the period end),
        and whether the piece lies inside an excused window."""
        end = state.period_end
        inside = False
        for window in state.windows.values():
            if not self._excused(policy, window):
                continue
            starts, ends, _ = window
            if starts <= a < ends:
                inside = True
                # overlapping excused windows count once: the piece runs while any covers it
            elif a < starts < end:
                end = starts
        if inside:
            # the excused stretch ends where no excused window covers the time any more
            cover_end = a
            changed = True
            while changed:
                changed = False
                for window in state.windows.values():
                    if not self._excused(policy, window):
                        continue
                    starts, ends, _ = window
                    if starts <= cover_end < ends:
                        cover_end = ends
                        changed = True
            end = min(end, cover_end)
        return end, inside

    def advance(self, policy: ServicePolicy, state: ServiceState, t: int) -> None:
        """Account downtime and excused time up to `t` (at most the period end)."""
        t = min(t, state.period_end)
        weight = policy.scaled_weights[state.status]
        calendar = policy.calendar
        while state.accounted_to < t:
            a = state.accounted_to
            end, excused = self._piece(policy, state, a)
            b = min(end, t)
            counted = calendar.counted_between(a, b)
            if excused:
                state.excused += counted
            elif weight:
                state.downtime += weight * counted
            state.accounted_to = b

    # -- crossings ------------------------------------------------------------------------------

    @staticmethod
    def _budget(policy: ServicePolicy, state: ServiceState) -> int:
        """The period's budget, in 1/SCALE microseconds."""
        return policy.budget_factor * state.measured

    @staticmethod
    def _threshold_amount(fraction: Fraction, budget: int) -> int:
        """Downtime that reaches `fraction` of the budget: the least whole unit at or above
        it (downtime is a whole number of units)."""
        return -(-(budget * fraction.numerator) // fraction.denominator)

    def reaching(
        self, policy: ServicePolicy, state: ServiceState, amount: int, exceed: bool
    ) -> int | None:
        """With the current status kept: the first whole microsecond (from `accounted_to`,
        within the period) at which downtime reaches `amount`, or with `exceed`, the first
        instant downtime exceeds it (reached and still accruing right after, else the
        instant accrual next resumes). None if that does not happen in the period."""
        calendar = policy.calendar
        weight = policy.scaled_weights[state.status]
        a = state.accounted_to
        downtime = state.downtime
        end_of_period = state.period_end
        while a < end_of_period:
            b, excused = self._piece(policy, state, a)
            if not excused and weight:
                if downtime < amount:
                    need = -((downtime - amount) // weight)  # ceil: working microseconds
                    available = calendar.counted_between(a, b)
                    if need <= available:
                        t = calendar.instant_after(a, need)
                        reached = downtime + weight * need
                        if not exceed or reached > amount:
                            return t
                        resume = self._resume(calendar, t, b)
                        if resume is not None:
                            return resume
                        downtime = reached
                    else:
                        downtime += weight * available
                elif not exceed or downtime > amount:
                    return a
                else:
                    resume = self._resume(calendar, a, b)
                    if resume is not None:
                        return resume
            a = b
        return None

    @staticmethod
    def _resume(calendar: BusinessCalendar, t: int, b: int) -> int | None:
        """The first instant in [t, b) from which working time counts, if any."""
        if calendar.counted_between(t, b) == 0:
            return None
        return calendar.instant_after(t, 1) - 1

    def _refresh_due(self, policy: ServicePolicy, state: ServiceState) -> None:
        due = state.period_end
        if state.measured > 0:
            budget = self._budget(policy, state)
            if state.warned < len(policy.thresholds):
                amount = self._threshold_amount(policy.thresholds[state.warned][1], budget)
                crossing = self.reaching(policy, state, amount, exceed=False)
                if crossing is not None and crossing < due:
                    due = crossing
            if not state.breached:
                crossing = self.reaching(policy, state, budget, exceed=True)
                if crossing is not None and crossing < due:
                    due = crossing
        state.due = due

    # -- timers -----------------------------------------------------------------------------------

    def fire_due(self, state: ServiceState, limit: int) -> list[Output]:
        """Fire every timer due at or before `limit`, in time order."""
        outputs: list[Output] = []
        while state.due <= limit:
            outputs.extend(self._fire_at(self.policy_of(state), state, state.due))
        return outputs

    def _fire_at(self, policy: ServicePolicy, state: ServiceState, at: int) -> list[Output]:
        self.advance(policy, state, at)
        outputs: list[Output] = []
        if state.measured > 0:
            budget = self._budget(policy, state)
            while state.warned < len(policy.thresholds):
                fraction, exact = policy.thresholds[state.warned]
                amount = self._threshold_amount(exact, budget)
                if self.reaching(policy, state, amount, exceed=False) != at:
                    break
                state.warned += 1
                outputs.append(self._warning(policy, state, at, fraction))
            if not state.breached and self.reaching(policy, state, budget, exceed=True) == at:
                state.breached = True
                outputs.append(self._breach(policy, state, at))
        if at == state.period_end:
            outputs.append(self._report(policy, state))
            policy = self._roll_over(policy, state)
        self._refresh_due(policy, state)
        return outputs

    def _roll_over(self, policy: ServicePolicy, state: ServiceState) -> ServicePolicy:
        """The next period, under the terms of the version in force at its start (a
        service the version no longer defines keeps its terms)."""
        previous_start = state.period_start
        version = self.terms.at(state.period_end)
        if version != state.version and state.service_id in self.terms.of(version):
            state.version = version
            policy = self.terms.of(version)[state.service_id]
        start, end, label = period_of(policy.zone, state.period_end)
        state.period_start, state.period_end, state.period = start, end, label
        state.measured = policy.calendar.counted_between(start, end)
        state.accounted_to = start
        state.downtime = 0
        state.excused = 0
        state.warned = 0
        state.breached = False
        # windows that ended before the period just closed began are of no use any more
        state.windows = {
            mid: window for mid, window in state.windows.items() if window[1] > previous_start
        }
        return policy

    # -- events -------------------------------------------------------------------------------------

    def apply(self, state: ServiceState, event: ServiceEvent, at: int) -> bool:
        """Apply an event at `at` (timers due before `at` fired already). False: a cancel of
        an unknown window, ignored."""
        policy = self.policy_of(state)
        self.advance(policy, state, at)
        seen = state.seen
        while seen:  # forget ids applied more than the horizon ago (oldest first)
            oldest = next(iter(seen))
            if seen[oldest] >= at - DEDUP_HORIZON_US:
                break
            del seen[oldest]
        seen[event_fingerprint(event.event_id)] = at
        applied = True
        if isinstance(event, ServiceStatusChanged):
            if event.status.value != state.status:
                state.status = event.status.value
                state.status_since = at
        elif isinstance(event, MaintenanceScheduled):
            starts = to_us(event.starts_at)
            ends = to_us(event.ends_at)
            window = state.windows.get(event.maintenance_id)
            announced = window[2] if window is not None and window[0] == starts else at
            state.windows[event.maintenance_id] = [starts, ends, announced]
        elif isinstance(event, MaintenanceCancelled):
            applied = state.windows.pop(event.maintenance_id, None) is not None
        self._refresh_due(policy, state)
        return applied

    # -- outputs ------------------------------------------------------------------------------------

    def _common(
        self, policy: ServicePolicy, state: ServiceState, kind: str, at: int, *key: object
    ) -> Output:
        return {
            "event_id": output_event_id(kind, state.service_id, state.period, *key),
            "type": kind,
            "service_id": state.service_id,
            "period": state.period,
            "at": format_us(at),
            "target_percent": str(policy.target),
            "budget_seconds": seconds_value(self._budget(policy, state) // SCALE),
            "policy_version": state.version or self.terms.first_id,
        }

    def _warning(
        self, policy: ServicePolicy, state: ServiceState, at: int, fraction: Decimal
    ) -> Output:
        output = self._common(policy, state, WARNING, at, fraction)
        output["threshold"] = float(fraction)
        output["downtime_seconds"] = seconds_value(_ceil(state.downtime))
        return output

    def _breach(self, policy: ServicePolicy, state: ServiceState, at: int) -> Output:
        output = self._common(policy, state, BREACH, at)
        output["downtime_seconds"] = seconds_value(_ceil(state.downtime))
        return output

    def _report(self, policy: ServicePolicy, state: ServiceState) -> Output:
        output = self._common(policy, state, REPORT, state.period_end)
        downtime = Fraction(state.downtime, SCALE)
        uptime = uptime_fraction(downtime, state.measured)
        budget = self._budget(policy, state)
        percent = credit_percent(policy, downtime, state.measured)
        output.update(
            {
                "period_start": format_us(state.period_start),
                "measured_seconds": seconds_value(state.measured),
                "downtime_seconds": seconds_value(_ceil(state.downtime)),
                "excused_seconds": seconds_value(state.excused),
                "uptime_percent": format_percent(uptime),
                "met": state.downtime <= budget,
                "credit_percent": None if percent is None else str(percent),
            }
        )
        return output

    # -- a view for the status endpoint ---------------------------------------------------------

    def view(self, state: ServiceState, now: int) -> dict[str, Any]:
        """Status, downtime so far this period, budget left and the instant the budget runs
        out if nothing changes. Works on a copy; `now` is at or after `accounted_to`."""
        policy = self.policy_of(state)
        copy = state.copy()
        self.advance(policy, copy, max(now, copy.accounted_to))
        budget = self._budget(policy, copy)
        left = budget - copy.downtime
        exhausted = None
        if copy.measured > 0 and left > 0:
            exhausted = self.reaching(policy, copy, budget, exceed=False)
        window_views = [
            {
                "maintenance_id": mid,
                "starts_at": format_us(w[0]),
                "ends_at": format_us(w[1]),
                "excused": self._excused(policy, w),
            }
            for mid, w in sorted(copy.windows.items())
            if w[1] > copy.accounted_to
        ]
        return {
            "service_id": copy.service_id,
            "status": copy.status,
            "period": copy.period,
            "period_start": format_us(copy.period_start),
            "period_end": format_us(copy.period_end),
            "as_of": format_us(copy.accounted_to),
            "target_percent": str(policy.target),
            "measured_seconds": seconds_value(copy.measured),
            "budget_seconds": seconds_value(budget // SCALE),
            "downtime_seconds": seconds_value(_ceil(copy.downtime)),
            "excused_seconds": seconds_value(copy.excused),
            "budget_left_seconds": seconds_value(max(0, left // SCALE)),
            "breached": copy.breached,
            "budget_exhausted_at": None if exhausted is None else format_us(exhausted),
            "maintenance": window_views,
        }


def format_percent(uptime: Fraction) -> str:
    """An uptime percent rounded down to 4 places, so it never overstates: "99.4833"."""
    scaled = (uptime * 10_000).__floor__()
    return str((Decimal(scaled) / 10_000).quantize(_FOUR_PLACES, rounding=ROUND_FLOOR))


def _ceil(downtime: int) -> int:
    """Scaled downtime -> whole microseconds, rounded up."""
    return -(-downtime // SCALE)
