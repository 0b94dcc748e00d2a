"""The policy as the engine uses it: calendars built, durations in microseconds.

`compile_policy` turns the validated `schemas.policy.Policy` into plain lookup tables
once at start, so the hot path never touches pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from processors.engine.calendar import BusinessCalendar, calendar_from_spec
from processors.engine.instants import US_PER_SECOND
from schemas.policy import Contract, CreditTerms, Policy


@dataclass(frozen=True, slots=True)
class Threshold:
    """A warning threshold: the fraction as written, and as an exact ratio."""

    fraction: Decimal
    numerator: int
    denominator: int

    def point(self, target_us: int) -> int:
        """Counted time at which the threshold is crossed: ceil(fraction x target)."""
        return -(-(target_us * self.numerator) // self.denominator)


@dataclass(frozen=True, slots=True)
class CompiledTier:
    name: str
    calendar: BusinessCalendar
    targets: Mapping[str, Mapping[str, int]]  # metric -> priority -> target in microseconds
    pause_on: frozenset[str]
    thresholds: tuple[Threshold, ...]
    credits: CreditTerms | None

    def target(self, metric: str, priority: str) -> int | None:
        by_priority = self.targets.get(metric)
        return None if by_priority is None else by_priority.get(priority)


@dataclass(frozen=True, slots=True)
class CompiledContract:
    customer_id: str
    tier: str
    monthly_fee: Decimal
    currency: str
    timezone: ZoneInfo


@dataclass(frozen=True)
class CompiledPolicy:
    default_tier: str
    tiers: Mapping[str, CompiledTier]
    contracts: dict[str, CompiledContract] = field(default_factory=dict)

    def with_contract(self, customer_id: str, contract: Contract) -> None:
        """Add or replace a contract (the live ledger also learns them from a topic)."""
        self.contracts[customer_id] = compile_contract(customer_id, contract)

    def tier_for(self, event_tier: str | None, customer_id: str) -> str:
        """SPEC 2: the event's tier, else the customer's contract tier, else the default."""
        if event_tier is not None:
            return event_tier
        contract = self.contracts.get(customer_id)
        return contract.tier if contract is not None else self.default_tier


def compile_contract(customer_id: str, contract: Contract) -> CompiledContract:
    return CompiledContract(
        customer_id=customer_id,
        tier=contract.tier,
        monthly_fee=contract.monthly_fee,
        currency=contract.currency,
        timezone=ZoneInfo(contract.timezone),
    )


def compile_policy(policy: Policy) -> CompiledPolicy:
    calendars = {name: calendar_from_spec(spec) for name, spec in policy.calendars.items()}
    tiers: dict[str, CompiledTier] = {}
    for name, tier in policy.tiers.items():
        thresholds = []
        for fraction in tier.warnings:
            ratio = Fraction(fraction)
            thresholds.append(Threshold(fraction, ratio.numerator, ratio.denominator))
        tiers[name] = CompiledTier(
            name=name,
            calendar=calendars[tier.calendar],
            targets={
                str(metric): {str(p): seconds * US_PER_SECOND for p, seconds in by_p.items()}
                for metric, by_p in tier.targets.items()
            },
            pause_on=frozenset(str(s) for s in tier.pause_on),
            thresholds=tuple(sorted(thresholds, key=lambda t: t.fraction)),
            credits=tier.credits,
        )
    contracts = {cid: compile_contract(cid, c) for cid, c in policy.customers.items()}
    return CompiledPolicy(default_tier=policy.default_tier, tiers=tiers, contracts=contracts)
