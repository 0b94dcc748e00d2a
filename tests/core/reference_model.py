"""A brute-force reference model of docs/semantics.md: Metrics; Warnings, breaches and time order; Credits, and random scenarios to feed it.

The model is deliberately slow and independent of `processors.engine`: it reads the policy
YAML with pyyaml, steps time one minute at a time and decides whether a minute is working
time by converting it to local time with `zoneinfo` and looking at the weekday's intervals
and the holidays directly. Metrics count minutes; a warning or breach is the instant the
counted minutes reach ceil(f x target) or the target. That only gives exact answers when
every instant of interest is on a minute boundary, so the policy used with it
(`REF_POLICY_YAML`) has minute-granular targets, thresholds and working intervals, and all
events happen on minute boundaries.

Readings of the rules where it needs a decision (each one is the reading that keeps every sentence
of those rules true at once):
- "running" means started and without an outcome yet (not completed, not cancelled) and
  not stopped; a metric paused by `pause_on` is still running. So a threshold or deadline
  reached at the very instant the metric pauses is still warned / breached at that instant
  (events at t come first, but the counted time did reach the value at t), and a
  completion after that instant is `breached`.
- Stopped is not running: a `first_response` stopped by `solved` is not warned or breached
  while stopped (even at a crossing reached at the very instant it stopped) and a priority
  change leaves it alone; a public reply while solved completes it with the counted time
  and target it had.
- A completed or cancelled metric emits nothing more (until a reopen resumes it); a cancel
  emits `sla.cancelled` with the counted time and the target the cycle had.
- On reopen, `resolution` (if it had completed) and a stopped `first_response` are
  recomputed for the current priority as a priority change at the reopen instant would be.

Time is integer minutes since the Unix epoch throughout.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import yaml

MINUTE = timedelta(minutes=1)
METRICS = ("first_response", "next_response", "periodic_update", "resolution")
METRIC_RANK = {metric: rank for rank, metric in enumerate(METRICS)}
PAUSABLE = ("periodic_update", "resolution")
CENT = Decimal("0.01")

# Minute-granular test policy: every target is a multiple of 20 minutes, so 0.5, 0.75 and
# 0.9 of it are whole minutes. The Berlin calendar has a lunch break, a holiday on a
# Wednesday, a `24:00` end, and Sunday intervals around the DST changes of 2026 (03-29:
# 02:00 -> 03:00; 10-25: 03:00 -> 02:00): `00:30-02:30` ends in the spring gap / at the
# first 02:30 in autumn, `02:40-02:50` lies inside the gap in spring and is ambiguous in
# autumn.
REF_POLICY_YAML = """
default_tier: office
calendars:
  always:
    timezone: UTC
    hours: 24x7
  berlin:
    timezone: Europe/Berlin
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-12:00", "13:00-17:00"]
      wed: ["08:30-12:30", "13:15-18:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-15:00"]
      sat: ["22:00-24:00"]
      sun: ["00:30-02:30", "02:40-02:50", "03:30-06:00", "20:00-24:00"]
    holidays: ["2026-03-04", "2026-10-28", "2026-12-24"]
tiers:
  ent:
    calendar: always
    targets:
      first_response: {urgent: 20m, high: 40m, normal: 2h}
      next_response: {urgent: 40m, high: 1h}
      periodic_update: {urgent: 1h, high: 2h}
      resolution: {urgent: 2h, high: 3h, normal: 6h, low: 1d}
    pause_on: [pending, on_hold]
    warnings: [0.5, 0.75, 0.9]
    credits:
      per_breach: {first_response: 1.0, next_response: 0.5, resolution: 2.5}
      monthly_cap: 6
  office:
    calendar: berlin
    targets:
      first_response: {urgent: 20m, high: 1h, normal: 3h}
      next_response: {urgent: 1h, high: 2h, normal: 4h}
      periodic_update: {urgent: 2h}
      resolution: {urgent: 3h, high: 4h, normal: 8h, low: 16h}
    pause_on: [pending]
    warnings: [0.75]
    credits:
      per_breach: {first_response: 2, resolution: 3}
      monthly_cap: 4
customers:
  acme: {tier: ent, monthly_fee: "1000.00", currency: EUR, timezone: Europe/Berlin}
  globex: {tier: office, monthly_fee: "333.33", currency: USD, timezone: America/New_York}
"""

Row = tuple[Any, ...]
"""An output reduced to the fields the model decides (see `engine_rows`)."""


# -- time helpers -------------------------------------------------------------------------


def minute_of(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    seconds = int(moment.timestamp())
    assert seconds % 60 == 0, f"{text} is not on a minute boundary"
    return seconds // 60


def minute_text(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration_minutes(text: str) -> int:
    units = {"d": 1440 * 60, "h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([dhms])", text)
    assert "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    seconds = sum(int(n) * units[u] for n, u in parts)
    assert seconds % 60 == 0, f"duration {text!r} is not whole minutes"
    return seconds // 60


def _clock_minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


# -- calendar -----------------------------------------------------------------------------


class RefCalendar:
    """Working minutes, decided one minute at a time from local wall time."""

    WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.tz = ZoneInfo(spec["timezone"])
        hours = spec["hours"]
        self.always = hours == "24x7" and not spec.get("holidays")
        self.week: dict[int, list[tuple[int, int]]] = {}
        for number, name in enumerate(self.WEEKDAYS):
            if hours == "24x7":
                self.week[number] = [(0, 1440)]
            else:
                self.week[number] = [
                    (_clock_minutes(a), _clock_minutes(b))
                    for a, b in (iv.split("-") for iv in hours.get(name, []))
                ]
        self.holidays = {date.fromisoformat(str(d)) for d in spec.get("holidays", [])}
        self._day_cache: dict[date, list[tuple[int, int]]] = {}
        self._minute_cache: dict[int, bool] = {}

    def _wall(self, minute: int) -> datetime:
        """Local wall time (naive) of an instant."""
        return datetime.fromtimestamp(minute * 60, UTC).astimezone(self.tz).replace(tzinfo=None)

    def first_instant_at_or_after(self, day: date, wall_minute: int) -> int:
        """docs/semantics.md: Policies: local time -> instant, as the first instant whose wall time is >= it.

        That one rule gives an ordinary time its only instant, a time in a spring-forward
        gap the instant the gap ends, and an ambiguous time its first occurrence. Found by
        scanning minutes from safely before it.
        """
        wall_as_utc = datetime(day.year, day.month, day.day, tzinfo=UTC) + wall_minute * MINUTE
        wall = wall_as_utc.replace(tzinfo=None)  # naive local wall time
        naive_utc_minute = int(wall_as_utc.timestamp()) // 60
        offsets = [
            self.tz.utcoffset(datetime.fromtimestamp((naive_utc_minute + h * 60) * 60, UTC))
            for h in range(-36, 37)
        ]
        largest = max(o for o in offsets if o is not None)
        minute = naive_utc_minute - int(largest.total_seconds()) // 60 - 60
        assert self._wall(minute) < wall
        while self._wall(minute) < wall:
            minute += 1
        return minute

    def day_intervals(self, day: date) -> list[tuple[int, int]]:
        """The working intervals of a local date as instants (minutes), [start, end)."""
        cached = self._day_cache.get(day)
        if cached is None:
            cached = []
            if day not in self.holidays:
                for start, end in self.week[day.weekday()]:
                    a = self.first_instant_at_or_after(day, start)
                    b = self.first_instant_at_or_after(day, end)
                    if a < b:
                        cached.append((a, b))
            self._day_cache[day] = cached
        return cached

    def is_working(self, minute: int) -> bool:
        """Is the minute [minute, minute + 1) working time?"""
        if self.always:
            return True
        known = self._minute_cache.get(minute)
        if known is None:
            today = self._wall(minute).date()
            known = any(
                a <= minute < b
                for day in (today - timedelta(days=1), today, today + timedelta(days=1))
                for a, b in self.day_intervals(day)
            )
            self._minute_cache[minute] = known
        return known


# -- policy -------------------------------------------------------------------------------


@dataclass
class RefTier:
    name: str
    calendar: RefCalendar
    targets: dict[str, dict[str, int]]  # metric -> priority -> minutes
    pause_on: frozenset[str]
    warnings: list[Fraction]
    per_breach: dict[str, Decimal]
    monthly_cap: Decimal | None
    _points: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def target(self, metric: str, priority: str) -> int | None:
        return self.targets.get(metric, {}).get(priority)

    def points(self, target: int) -> tuple[int, ...]:
        """Counted minutes at which each threshold is crossed: ceil(f x target)."""
        cached = self._points.get(target)
        if cached is None:
            exact = [f * target for f in self.warnings]
            assert all(x.denominator == 1 for x in exact), f"{target} min: not whole minutes"
            cached = self._points[target] = tuple(math.ceil(x) for x in exact)
        return cached


@dataclass
class RefContract:
    tier: str
    fee: Decimal
    currency: str
    tz: ZoneInfo


class RefPolicy:
    def __init__(self, text: str) -> None:
        raw = yaml.safe_load(text)
        calendars = {name: RefCalendar(spec) for name, spec in raw["calendars"].items()}
        self.default_tier: str = raw["default_tier"]
        self.tiers: dict[str, RefTier] = {}
        for name, spec in raw["tiers"].items():
            credits = spec.get("credits") or {}
            cap = credits.get("monthly_cap")
            self.tiers[name] = RefTier(
                name=name,
                calendar=calendars[spec["calendar"]],
                targets={
                    metric: {p: _duration_minutes(str(d)) for p, d in by_priority.items()}
                    for metric, by_priority in spec["targets"].items()
                },
                pause_on=frozenset(spec.get("pause_on", [])),
                warnings=sorted(Fraction(str(f)) for f in spec.get("warnings", [])),
                per_breach={m: Decimal(str(p)) for m, p in credits.get("per_breach", {}).items()},
                monthly_cap=None if cap is None else Decimal(str(cap)),
            )
        self.contracts = {
            cid: RefContract(
                c["tier"], Decimal(c["monthly_fee"]), c["currency"], ZoneInfo(c["timezone"])
            )
            for cid, c in (raw.get("customers") or {}).items()
        }


# -- tickets ------------------------------------------------------------------------------


@dataclass
class RefClock:
    metric: str
    cycle: int
    target: int
    counting: bool  # not paused / stopped
    stopped: bool = False  # a first_response stopped by solved: not running
    phase: str = "active"  # active | completed | cancelled
    counted: int = 0
    reach: list[int] = field(default_factory=list)  # reach[k]: instant counted became k + 1
    breached: bool = False
    handled: int = 0  # thresholds warned or skipped, in order

    def reached_at(self, value: int) -> int | None:
        return self.reach[value - 1] if len(self.reach) >= value else None


@dataclass
class RefBreach:
    ticket_id: str
    customer_id: str
    tier: str
    metric: str
    cycle: int
    at: int
    decided_at: int


@dataclass
class RefTicket:
    ticket_id: str
    customer_id: str
    tier: RefTier
    priority: str
    status: str = "new"
    replied: bool = False
    closed: bool = False
    nr_cycles: int = 0
    pu_cycles: int = 0
    clocks: dict[str, RefClock] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


_DEFAULT_POLICY: list[RefPolicy] = []


def default_ref_policy() -> RefPolicy:
    """The model's reading of `REF_POLICY_YAML`, built once (its calendars cache minutes)."""
    if not _DEFAULT_POLICY:
        _DEFAULT_POLICY.append(RefPolicy(REF_POLICY_YAML))
    return _DEFAULT_POLICY[0]


class ReferenceModel:
    """Runs a list of events (time-ordered dicts, minute instants) up to `until`."""

    def __init__(self, policy: RefPolicy | None = None) -> None:
        self.policy = policy or default_ref_policy()
        self.rows: list[Row] = []
        self.breaches: list[RefBreach] = []
        # Tickets in which a threshold or deadline was reached at the very instant the
        # metric stopped counting (a fact about the run, not an output).
        self.crossings_while_not_counting: set[str] = set()

    # -- driver ---------------------------------------------------------------------------

    def run(self, events: Sequence[dict[str, Any]], until: str) -> list[Row]:
        """All outputs of the events (in time order) with the clock advanced to `until`."""
        end = minute_of(until)
        by_ticket: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for event in events:
            minute = minute_of(event["occurred_at"])
            by_ticket.setdefault(event["ticket_id"], []).append((minute, event))
        for ticket_events in by_ticket.values():
            self._run_ticket(ticket_events, end)
        self.rows.extend(self._credits())
        return self.rows

    def _run_ticket(self, events: list[tuple[int, dict[str, Any]]], end: int) -> None:
        """Step one ticket minute by minute: events at t, then timers at t, then [t, t+1)."""
        creations = [i for i, (_, e) in enumerate(events) if e["type"] == "ticket.created"]
        if not creations:
            return  # never created: every event is rejected
        events = events[creations[0] :]  # events before the creation are rejected
        at_minute: dict[int, list[dict[str, Any]]] = {}
        for minute, event in events:
            at_minute.setdefault(minute, []).append(event)
        event_minutes = sorted(at_minute)
        t = event_minutes[0]
        ticket = self._create(at_minute[t][0], t)
        for event in at_minute[t][1:]:
            self._apply(ticket, event, t)
        counting: list[RefClock] = []
        changed = applied = True  # timers may be due / the set of counting clocks changed
        while True:
            if ticket.closed:
                return
            if changed:
                self._fire_timers(ticket, t)
            if applied:
                counting = [c for c in ticket.clocks.values() if c.phase == "active" and c.counting]
            if t >= end:
                return
            later = event_minutes[-1] > t
            if not later and all(c.breached for c in counting):
                return  # nothing left to warn or breach, and nothing will complete
            changed = applied = False
            if counting and ticket.tier.calendar.is_working(t):
                for clock in counting:
                    clock.counted += 1
                    clock.reach.append(t + 1)
                changed = True
            if counting:
                t += 1
            else:  # nothing counts: no timer can become due before the next event
                t = min(next(m for m in event_minutes if m > t), end) if later else end
            for event in at_minute.get(t, ()):
                self._apply(ticket, event, t)
                changed = applied = True

    # -- outputs --------------------------------------------------------------------------

    def _warn(self, ticket: RefTicket, clock: RefClock, fraction: Fraction, at: int) -> None:
        self.rows.append(
            (
                "sla.warning",
                ticket.ticket_id,
                clock.metric,
                clock.cycle,
                minute_text(at),
                float(fraction),
            )
        )

    def _breach(self, ticket: RefTicket, clock: RefClock, at: int, decided_at: int) -> None:
        clock.breached = True
        self.rows.append(
            (
                "sla.breach",
                ticket.ticket_id,
                clock.metric,
                clock.cycle,
                minute_text(at),
                minute_text(at),
                minute_text(decided_at),
            )
        )
        self.breaches.append(
            RefBreach(
                ticket.ticket_id,
                ticket.customer_id,
                ticket.tier.name,
                clock.metric,
                clock.cycle,
                at,
                decided_at,
            )
        )

    def _complete(self, ticket: RefTicket, clock: RefClock | None, at: int) -> None:
        if clock is None or clock.phase != "active":
            return
        clock.phase = "completed"
        outcome = "breached" if clock.breached else "met"
        self.rows.append(
            (
                "sla.completed",
                ticket.ticket_id,
                clock.metric,
                clock.cycle,
                minute_text(at),
                outcome,
                clock.counted * 60,
            )
        )

    # -- timers (after every event at t) --------------------------------------------------

    def _fire_timers(self, ticket: RefTicket, t: int) -> None:
        """Warn / breach every active metric whose counted time reached a value at t."""
        for clock in ticket.clocks.values():
            if clock.phase != "active" or clock.breached or clock.stopped:
                continue
            points = ticket.tier.points(clock.target)
            while clock.handled < len(points) and clock.counted >= points[clock.handled]:
                at = clock.reached_at(points[clock.handled])
                assert at == t, "a crossing is always seen at its own instant"
                self._note_crossing(ticket, clock)
                self._warn(ticket, clock, ticket.tier.warnings[clock.handled], t)
                clock.handled += 1
            if clock.counted >= clock.target:
                assert clock.reached_at(clock.target) == t
                self._note_crossing(ticket, clock)
                self._breach(ticket, clock, t, t)

    def _note_crossing(self, ticket: RefTicket, clock: RefClock) -> None:
        if not clock.counting:
            self.crossings_while_not_counting.add(ticket.ticket_id)

    # -- events ---------------------------------------------------------------------------

    def _create(self, event: dict[str, Any], t: int) -> RefTicket:
        customer = event["customer_id"]
        tier_name = event.get("tier")
        if tier_name is None:
            contract = self.policy.contracts.get(customer)
            tier_name = contract.tier if contract is not None else self.policy.default_tier
        ticket = RefTicket(
            event["ticket_id"], customer, self.policy.tiers[tier_name], event["priority"]
        )
        ticket.seen.add(event["event_id"])
        for metric in ("first_response", "resolution"):
            self._start(ticket, metric, 1)
        initial = event.get("status", "new")
        if initial != "new":
            self._set_status(ticket, initial, t)
        return ticket

    def _apply(self, ticket: RefTicket, event: dict[str, Any], t: int) -> None:
        if event["event_id"] in ticket.seen:
            return  # a repeated event_id is dropped
        if ticket.closed or event["type"] == "ticket.created":
            return  # closed is terminal; a second creation is rejected
        ticket.seen.add(event["event_id"])
        kind = event["type"]
        if kind == "ticket.agent_replied":
            if event.get("public", True):
                ticket.replied = True
                for metric in ("first_response", "next_response", "periodic_update"):
                    self._complete(ticket, ticket.clocks.get(metric), t)
                if ticket.status != "solved":
                    self._next_cycle(ticket, "periodic_update")
        elif kind == "ticket.customer_replied":
            if ticket.status in ("pending", "solved"):
                self._set_status(ticket, "open", t)
            running = ticket.clocks.get("next_response")
            if ticket.replied and (running is None or running.phase != "active"):
                self._next_cycle(ticket, "next_response")
        elif kind == "ticket.status_changed":
            self._set_status(ticket, event["status"], t)
        elif kind == "ticket.priority_changed" and event["priority"] != ticket.priority:
            ticket.priority = event["priority"]
            for clock in list(ticket.clocks.values()):
                if clock.phase == "active" and not clock.stopped:
                    self._recompute(ticket, clock, t)

    def _start(self, ticket: RefTicket, metric: str, cycle: int) -> bool:
        target = ticket.tier.target(metric, ticket.priority)
        if target is None:
            return False
        paused = metric in PAUSABLE and ticket.status in ticket.tier.pause_on
        ticket.clocks[metric] = RefClock(metric, cycle, target, counting=not paused)
        return True

    def _next_cycle(self, ticket: RefTicket, metric: str) -> None:
        if ticket.tier.target(metric, ticket.priority) is None:
            return  # an untracked cycle is not numbered
        if metric == "next_response":
            ticket.nr_cycles += 1
            self._start(ticket, metric, ticket.nr_cycles)
        else:
            ticket.pu_cycles += 1
            self._start(ticket, metric, ticket.pu_cycles)

    def _cancel(self, ticket: RefTicket, clock: RefClock | None, t: int, reason: str) -> None:
        """A tracked cycle ends without an outcome: an `sla.cancelled` saying why."""
        if clock is not None and clock.phase == "active":
            clock.phase = "cancelled"
            self.rows.append(
                (
                    "sla.cancelled",
                    ticket.ticket_id,
                    clock.metric,
                    clock.cycle,
                    minute_text(t),
                    reason,
                    clock.counted * 60,
                    clock.target * 60,
                    clock.breached,
                )
            )

    def _set_status(self, ticket: RefTicket, status: str, t: int) -> None:
        previous = ticket.status
        if status == previous:
            return
        ticket.status = status
        clocks = ticket.clocks
        if status in ("solved", "closed"):
            self._cancel(ticket, clocks.get("next_response"), t, status)
            self._cancel(ticket, clocks.get("periodic_update"), t, status)
            self._complete(ticket, clocks.get("resolution"), t)
            first = clocks.get("first_response")
            if status == "closed":
                self._cancel(ticket, first, t, "closed")
                ticket.closed = True
            elif first is not None and first.phase == "active":
                first.counting = False  # stops; resumes on reopen
                first.stopped = True
            return
        paused = status in ticket.tier.pause_on
        if previous == "solved":  # reopen
            resolution = clocks.get("resolution")
            if resolution is not None and resolution.phase == "completed":
                resolution.phase = "active"
                resolution.counting = not paused
                self._recompute(ticket, resolution, t)
            first = clocks.get("first_response")
            if first is not None and first.phase == "active":
                first.counting = True
                first.stopped = False
                self._recompute(ticket, first, t)
            self._next_cycle(ticket, "periodic_update")
            return
        for metric in PAUSABLE:
            clock = clocks.get(metric)
            if clock is not None and clock.phase == "active":
                clock.counting = not paused

    def _recompute(self, ticket: RefTicket, clock: RefClock, t: int) -> None:
        """docs/semantics.md: Warnings, breaches and time order at instant t for the ticket's current priority."""
        target = ticket.tier.target(clock.metric, ticket.priority)
        if target is None:
            self._cancel(ticket, clock, t, "no_target")
            return
        clock.target = target
        if clock.breached:
            return
        warnings = ticket.tier.warnings
        while clock.handled < len(warnings):
            at = clock.reached_at(ticket.tier.points(target)[clock.handled])
            if at is None or at >= t:
                break
            clock.handled += 1  # crossed strictly before the change: not warned
        deadline = clock.reached_at(target)
        if deadline is not None and deadline < t:
            self._breach(ticket, clock, deadline, t)

    # -- credits (docs/semantics.md: Credits) -----------------------------------------------------------------

    def _credits(self) -> list[Row]:
        rows: list[Row] = []
        totals: dict[tuple[str, str], Decimal] = {}
        ordered = sorted(
            self.breaches, key=lambda b: (b.decided_at, b.ticket_id, METRIC_RANK[b.metric], b.cycle)
        )
        for breach in ordered:
            tier = self.policy.tiers[breach.tier]
            contract = self.policy.contracts.get(breach.customer_id)
            percent = tier.per_breach.get(breach.metric)
            if contract is None or percent is None:
                continue
            amount = (percent / 100 * contract.fee).quantize(CENT, rounding=ROUND_HALF_UP)
            # the period of the decision, the cap of the contract's own tier
            local = datetime.fromtimestamp(breach.decided_at * 60, UTC).astimezone(contract.tz)
            period = f"{local.year:04d}-{local.month:02d}"
            total = totals.get((breach.customer_id, period), Decimal("0.00"))
            capped = False
            contract_tier = self.policy.tiers[contract.tier]
            if contract_tier.monthly_cap is not None:
                cap = (contract_tier.monthly_cap / 100 * contract.fee).quantize(
                    CENT, rounding=ROUND_HALF_UP
                )
                remaining = max(cap - total, Decimal("0.00"))
                if amount > remaining:
                    amount, capped = remaining, True
            total += amount
            totals[(breach.customer_id, period)] = total
            rows.append(
                (
                    "sla.credit",
                    breach.customer_id,
                    breach.ticket_id,
                    breach.metric,
                    breach.cycle,
                    minute_text(breach.at),
                    period,
                    f"{amount:.2f}",
                    capped,
                    f"{total:.2f}",
                )
            )
        return rows


# -- comparing with the engine ------------------------------------------------------------


def engine_rows(outputs: Iterable[dict[str, Any]]) -> list[Row]:
    """The engine's outputs reduced to the same tuples the model produces."""
    outputs = list(outputs)
    cycle_of_breach = {o["event_id"]: o["cycle"] for o in outputs if o["type"] == "sla.breach"}
    rows: list[Row] = []
    for o in outputs:
        kind = o["type"]
        if kind in ("sla.statement", "sla.credit_earned_back"):
            continue  # monthly accounting is checked by its own tests, not modelled here
        key = (kind, o["ticket_id"], o["metric"])
        if kind == "sla.warning":
            rows.append((*key, o["cycle"], o["at"], o["threshold"]))
        elif kind == "sla.breach":
            rows.append((*key, o["cycle"], o["at"], o["deadline"], o["decided_at"]))
        elif kind == "sla.completed":
            rows.append((*key, o["cycle"], o["at"], o["outcome"], o["elapsed_seconds"]))
        elif kind == "sla.cancelled":
            rows.append(
                (
                    *key,
                    o["cycle"],
                    o["at"],
                    o["reason"],
                    o["elapsed_seconds"],
                    o["target_seconds"],
                    o["breached"],
                )
            )
        elif kind == "sla.credit":
            rows.append(
                (
                    kind,
                    o["customer_id"],
                    o["ticket_id"],
                    o["metric"],
                    cycle_of_breach.get(o["breach_event_id"]),
                    o["at"],
                    o["period"],
                    o["amount"],
                    o["capped"],
                    o["period_total"],
                )
            )
        else:
            raise AssertionError(f"unexpected output type {kind}")
    return rows


def multiset_diff(engine: Sequence[Row], reference: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    """(rows only the engine produced, rows only the reference produced), sorted."""
    e, r = Counter(engine), Counter(reference)
    return sorted((e - r).elements(), key=repr), sorted((r - e).elements(), key=repr)


# -- random scenarios ---------------------------------------------------------------------

# Local weeks worth testing: an ordinary week with a holiday (03-04), the spring DST change
# (Sun 03-29) and the month end after it, the autumn DST change (Sun 10-25) with a holiday
# (10-28), and the end of December (12-24 holiday, year end).
BASE_DAYS = ("2026-03-02", "2026-03-27", "2026-03-30", "2026-10-23", "2026-10-29", "2026-12-22")
PRIORITIES = ("urgent", "high", "normal", "low")
STATUSES = ("new", "open", "pending", "on_hold", "solved")


@dataclass
class Scenario:
    events: list[dict[str, Any]]
    until: str

    def lines(self) -> list[bytes]:
        """The events as JSONL lines (without the newlines)."""
        return [orjson.dumps(event) for event in self.events]


def _gap(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.15:
        return 0
    if roll < 0.45:
        return 20 * rng.randint(1, 9)  # on the 20-minute grid of the targets
    if roll < 0.75:
        return rng.randint(1, 60)
    if roll < 0.95:
        return rng.randint(60, 600)
    return rng.randint(600, 2400)


def random_ticket_events(
    rng: random.Random, ticket_id: str, start: int, serial: Iterable[int]
) -> list[tuple[int, dict[str, Any]]]:
    """One ticket's events as (minute, event), in time order."""
    ids = iter(serial)

    def event(kind: str, t: int, **fields: Any) -> tuple[int, dict[str, Any]]:
        body = {"event_id": f"{ticket_id}-{next(ids)}", "type": kind, "ticket_id": ticket_id}
        return t, {**body, "occurred_at": minute_text(t), **fields}

    customer = rng.choice(("acme", "acme", "globex", "initech"))
    extra: dict[str, Any] = {}
    if rng.random() < 0.2:
        extra["tier"] = rng.choice(("ent", "office"))
    if rng.random() < 0.1:
        extra["status"] = rng.choice(("open", "pending", "on_hold", "solved", "closed"))
    t = start
    out = [
        event("ticket.created", t, customer_id=customer, priority=rng.choice(PRIORITIES), **extra)
    ]
    for _ in range(rng.randint(0, 12)):
        t += _gap(rng)
        roll = rng.random()
        if roll < 0.25:
            out.append(event("ticket.agent_replied", t, public=rng.random() < 0.85))
        elif roll < 0.45:
            out.append(event("ticket.customer_replied", t))
        elif roll < 0.72:
            out.append(event("ticket.status_changed", t, status=rng.choice(STATUSES)))
        elif roll < 0.75:
            out.append(event("ticket.status_changed", t, status="closed"))
        elif roll < 0.92:
            out.append(event("ticket.priority_changed", t, priority=rng.choice(PRIORITIES)))
        elif roll < 0.96:
            out.append(
                event("ticket.assigned", t, assignee=f"agent{rng.randint(1, 3)}", group="l1")
            )
        elif len(out) > 1:  # a repeated event_id with a different body: dropped
            _, again = rng.choice(out[1:])
            out.append((t, {**again, "occurred_at": minute_text(t)}))
    return out


def random_scenario(rng: random.Random, tickets: int, prefix: str = "T") -> Scenario:
    """Several tickets around one base day, interleaved in time order."""
    base = minute_of(rng.choice(BASE_DAYS) + "T00:00:00Z")
    merged: list[tuple[int, int, int, dict[str, Any]]] = []
    for number in range(tickets):
        start = base + rng.randint(0, 3 * 1440 - 1)
        events = random_ticket_events(rng, f"{prefix}{number}", start, range(1, 10_000))
        merged.extend((t, number, i, e) for i, (t, e) in enumerate(events))
    merged.sort(key=lambda item: item[:3])
    last = merged[-1][0]
    until = last + rng.choice((0, rng.randint(1, 600), rng.randint(600, 3 * 1440)))
    return Scenario([item[3] for item in merged], minute_text(until))
