"""What-if: the outcomes of two replays of the same events, compared by natural key.

An outcome is keyed by (ticket, metric, cycle), never by `event_id`: the ids of a changed
outcome's outputs are the same under both policies (they are derived from the natural key),
so matching by id would pair a met completion with a breached one silently. Per key: the
final outcome (`breached` if the cycle was ever breached, else `met` if it completed in
time, else `running`: started, warned, not completed by the end) and the credits its breach
earned. A cycle is filed under the priority it had when it breached, else its latest (a met
one: at its completion), as the report counts them. Availability credits are keyed by (service, "availability", period).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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


class OutcomeCollector:
    """Folds one replay's outputs, in emission order, into outcomes by natural key."""

    def __init__(self) -> None:
        self.outcomes: dict[NaturalKey, list[Any]] = {}
        self._breach_keys: dict[str, NaturalKey] = {}

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
            ]
        if entry[3] != "breached":
            # A breached cycle stays under the priority it had when it breached (as the
            # report counts its breach); others under their latest (a met one: at completion).
            entry[2] = output["priority"]
        if kind == "sla.breach":
            entry[3] = "breached"
            self._breach_keys[output["event_id"]] = key
        elif kind == "sla.completed" and entry[3] != "breached":
            entry[3] = output["outcome"]

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
            ]
        entry[4] = entry[4] + Decimal(str(credit["amount"]))
        entry[5] = credit["currency"]

    def result(self) -> dict[NaturalKey, KeyOutcome]:
        return {key: KeyOutcome(*entry) for key, entry in self.outcomes.items()}


def outcomes_by_key(outputs: Iterable[dict[str, Any]]) -> dict[NaturalKey, KeyOutcome]:
    collector = OutcomeCollector()
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


@dataclass
class Comparison:
    groups: dict[GroupKey, tuple[Side, Side]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    totals: tuple[Side, Side] = field(default_factory=lambda: (Side(), Side()))
    credits_by_currency: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)


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
