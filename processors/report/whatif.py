"""What-if: the outcomes of two replays of the same events, compared by natural key.

An outcome is keyed by (ticket, metric, cycle), never by `event_id`: the ids of a changed
outcome's outputs are the same under both policies (they are derived from the natural key),
so matching by id would pair a met completion with a breached one silently. Per key: the
final outcome (`breached` if the cycle was ever breached, else `met` if it completed in
time, else `running`: started, warned, not completed by the end) and the credits its breach
earned. A cycle is filed under the priority it had when it breached, else its latest (a met
one: at its completion), as the report counts them. Availability credits are keyed by
(service, "availability", period).

Deadlines moved: per key, the cycle's deadline under each policy, from the outputs alone:
a breach's `deadline`; for a cycle completed in time, the instant its remaining target
would have been used up after the completion (the same projection as a warning's
`deadline`: if nothing pauses), from the tier's calendar; for a cycle still running at the
end, its last warning's `deadline`. A key whose deadline differs under A and B is a
`DeadlineMove`, whether or not its outcome flipped: doubling a target moves deadlines
without necessarily changing any outcome, and the report says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.policy_diff import RuleChange
from slaclock.processors.report.figures import METRICS, PRIORITIES, ZERO, ratio4

NaturalKey = tuple[str, str, int | str]
GroupKey = tuple[str, str, str, str]  # customer, tier, metric, priority


@dataclass(frozen=True)
class KeyOutcome:
    customer_id: str
    tier: str
    priority: str
    outcome: str  # "met" | "breached" | "running"
    credit: Decimal
    currency: str
    deadline: int | None = None  # microseconds UTC; None: not known from the outputs


ProjectDeadline = Callable[[str, int, int], int | None]
"""(tier, completed at, remaining target) -> the instant the remaining target would be used
up after the completion on the tier's calendar (microseconds), None if unknown."""


def calendar_projection(policy: CompiledPolicy) -> ProjectDeadline:
    """`ProjectDeadline` from a compiled policy's tier calendars."""

    def project(tier: str, at: int, remaining: int) -> int | None:
        compiled = policy.tiers.get(tier)
        if compiled is None or remaining < 0:
            return None
        try:
            return compiled.calendar.instant_after(at, remaining)
        except ValueError:
            return None

    return project


def _us(seconds: object) -> int:
    """A JSON number of seconds (microsecond precision) -> integer microseconds."""
    return int((Decimal(str(seconds)) * US_PER_SECOND).to_integral_value())


class OutcomeCollector:
    """Folds one replay's outputs, in emission order, into outcomes by natural key."""

    def __init__(self, project: ProjectDeadline | None = None) -> None:
        self.outcomes: dict[NaturalKey, list[Any]] = {}
        self._breach_keys: dict[str, NaturalKey] = {}
        self._project = project

    def __call__(self, output: dict[str, Any]) -> None:
        kind = output["type"]
        if kind == "sla.credit":
            self._credit(output)
            return
        if kind not in ("sla.warning", "sla.breach", "sla.completed"):
            return
        key = (output["ticket_id"], output["metric"], output["cycle"])
        entry = self.outcomes.get(key)
        if entry is None:
            entry = self.outcomes[key] = [
                output["customer_id"],
                output["tier"],
                output["priority"],
                "running",
                ZERO,
                "",
                None,
            ]
        if entry[3] != "breached":
            # A breached cycle stays under the priority it had when it breached (as the
            # report counts its breach); others under their latest (a met one: at completion).
            entry[2] = output["priority"]
        if kind == "sla.breach":
            entry[3] = "breached"
            entry[6] = parse_instant(output["deadline"])
            self._breach_keys[output["event_id"]] = key
        elif kind == "sla.completed" and entry[3] != "breached":
            entry[3] = output["outcome"]
            if self._project is not None:
                remaining = _us(output["target_seconds"]) - _us(output["elapsed_seconds"])
                at = parse_instant(output["at"])
                entry[6] = self._project(output["tier"], at, remaining)
        elif kind == "sla.warning" and entry[3] == "running":
            entry[6] = parse_instant(output["deadline"])

    def _credit(self, credit: dict[str, Any]) -> None:
        if credit.get("ticket_id"):
            key = self._breach_keys.get(credit["breach_event_id"])
            if key is None:
                return
        else:
            key = (str(credit.get("service_id")), "availability", str(credit["period"]))
        entry = self.outcomes.get(key)
        if entry is None:
            entry = self.outcomes[key] = [
                credit["customer_id"],
                credit["tier"],
                "-",
                "breached",
                ZERO,
                "",
                None,
            ]
        entry[4] = entry[4] + Decimal(str(credit["amount"]))
        entry[5] = credit["currency"]

    def result(self) -> dict[NaturalKey, KeyOutcome]:
        return {key: KeyOutcome(*entry) for key, entry in self.outcomes.items()}


def outcomes_by_key(
    outputs: Iterable[dict[str, Any]], project: ProjectDeadline | None = None
) -> dict[NaturalKey, KeyOutcome]:
    collector = OutcomeCollector(project)
    for output in outputs:
        collector(output)
    return collector.result()


@dataclass
class Side:
    met: int = 0
    breached: int = 0
    running: int = 0
    credits: Decimal = ZERO  # one group's: one customer, its contract's currency
    currency: str = ""  # of `credits`, once a credit was counted

    @property
    def compliance(self) -> Decimal | None:
        return ratio4(self.met, self.met + self.breached)

    def count(self, outcome: KeyOutcome) -> None:
        if outcome.outcome == "met":
            self.met += 1
        elif outcome.outcome == "breached":
            self.breached += 1
        else:
            self.running += 1
        self.credits += outcome.credit
        if outcome.currency:
            self.currency = outcome.currency


@dataclass(frozen=True)
class Change:
    ticket_id: str
    metric: str
    cycle: int | str
    customer_id: str
    tier: str
    priority: str
    outcome_a: str  # "met" | "breached" | "running" | "none" (not tracked under that policy)
    outcome_b: str
    credit_a: Decimal
    credit_b: Decimal
    currency: str

    @property
    def credit_difference(self) -> Decimal:
        return self.credit_b - self.credit_a


@dataclass(frozen=True)
class DeadlineMove:
    """A (ticket, metric, cycle) whose deadline differs under A and B."""

    ticket_id: str
    metric: str
    cycle: int | str
    customer_id: str
    tier: str
    priority: str
    deadline_a: int
    deadline_b: int
    outcome_a: str
    outcome_b: str

    @property
    def shift_us(self) -> int:
        """B's deadline minus A's: positive when B gives more time."""
        return self.deadline_b - self.deadline_a

    @property
    def outcome_changed(self) -> bool:
        return self.outcome_a != self.outcome_b


SHIFT_BUCKETS = (
    "earlier by more than a day",
    "earlier by 1 hour to a day",
    "earlier by up to an hour",
    "later by up to an hour",
    "later by 1 hour to a day",
    "later by more than a day",
)
"""How far a deadline moved, in real time (B's deadline minus A's)."""


def shift_bucket(shift_us: int) -> str:
    """The `SHIFT_BUCKETS` label of a shift: an hour or a day exactly falls in the nearer
    bucket ("later by up to an hour" for +1h)."""
    hour, day = 3_600 * US_PER_SECOND, 86_400 * US_PER_SECOND
    size = abs(shift_us)
    nearest = 0 if size <= hour else 1 if size <= day else 2
    return SHIFT_BUCKETS[2 - nearest] if shift_us < 0 else SHIFT_BUCKETS[3 + nearest]


@dataclass(frozen=True)
class ShiftSummary:
    """How far the deadlines moved: count, the distribution over `SHIFT_BUCKETS`, extremes."""

    count: int
    outcome_unchanged: int
    earlier: int
    later: int
    buckets: tuple[tuple[str, int], ...]
    least_us: int | None  # the smallest shift (most negative: deadline brought forward most)
    median_us: int | None
    greatest_us: int | None


def summarise_shifts(moves: list[DeadlineMove]) -> ShiftSummary:
    counts = dict.fromkeys(SHIFT_BUCKETS, 0)
    for move in moves:
        counts[shift_bucket(move.shift_us)] += 1
    shifts = sorted(move.shift_us for move in moves)
    return ShiftSummary(
        count=len(moves),
        outcome_unchanged=sum(1 for move in moves if not move.outcome_changed),
        earlier=sum(1 for shift in shifts if shift < 0),
        later=sum(1 for shift in shifts if shift > 0),
        buckets=tuple(counts.items()),
        least_us=shifts[0] if shifts else None,
        median_us=shifts[len(shifts) // 2] if shifts else None,
        greatest_us=shifts[-1] if shifts else None,
    )


@dataclass
class Comparison:
    groups: dict[GroupKey, tuple[Side, Side]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    totals: tuple[Side, Side] = field(default_factory=lambda: (Side(), Side()))
    credits_by_currency: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    moves: list[DeadlineMove] = field(default_factory=list)
    rule_changes: list[RuleChange] = field(default_factory=list)  # set by the caller

    def shifts(self) -> ShiftSummary:
        return summarise_shifts(self.moves)


def _metric_rank(metric: str) -> int:
    return METRICS.index(metric) if metric in METRICS else len(METRICS)


def _priority_rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)


def compare(a: dict[NaturalKey, KeyOutcome], b: dict[NaturalKey, KeyOutcome]) -> Comparison:
    """Aggregates per (customer, tier, metric, priority) and every changed key."""
    result = Comparison()
    currencies: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for key in sorted(set(a) | set(b), key=lambda k: (k[0], _metric_rank(k[1]), str(k[2]))):
        left, right = a.get(key), b.get(key)
        ref = left if left is not None else right
        assert ref is not None
        group = (ref.customer_id, ref.tier, key[1], ref.priority)
        sides = result.groups.get(group)
        if sides is None:
            sides = result.groups[group] = (Side(), Side())
        for n, outcome in enumerate((left, right)):
            if outcome is not None:
                sides[n].count(outcome)
                result.totals[n].count(outcome)
                if outcome.currency:
                    currencies[outcome.currency][n] += outcome.credit
        outcome_a = left.outcome if left is not None else "none"
        outcome_b = right.outcome if right is not None else "none"
        credit_a = left.credit if left is not None else ZERO
        credit_b = right.credit if right is not None else ZERO
        if (
            left is not None
            and right is not None
            and left.deadline is not None
            and right.deadline is not None
            and left.deadline != right.deadline
        ):
            result.moves.append(
                DeadlineMove(
                    key[0],
                    key[1],
                    key[2],
                    ref.customer_id,
                    ref.tier,
                    right.priority,
                    left.deadline,
                    right.deadline,
                    outcome_a,
                    outcome_b,
                )
            )
        if outcome_a != outcome_b or credit_a != credit_b:
            result.changes.append(
                Change(
                    key[0],
                    key[1],
                    key[2],
                    ref.customer_id,
                    ref.tier,
                    ref.priority,
                    outcome_a,
                    outcome_b,
                    credit_a,
                    credit_b,
                    (left.currency if left is not None and left.currency else "")
                    or (right.currency if right is not None else ""),
                )
            )
    result.groups = dict(
        sorted(
            result.groups.items(),
            key=lambda item: (
                item[0][0],
                item[0][1],
                _metric_rank(item[0][2]),
                _priority_rank(item[0][3]),
            ),
        )
    )
    result.credits_by_currency = {c: (v[0], v[1]) for c, v in sorted(currencies.items())}
    return result
