"""The policy as the engine uses it: calendars built, durations in microseconds.

`compile_policy` turns the validated `schemas.policy.Policy` into plain lookup tables
once at start, so the hot path never touches pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from zoneinfo import ZoneInfo

from slaclock.processors.engine.calendar import BusinessCalendar, calendar_from_spec
from slaclock.processors.engine.instants import US_PER_SECOND, to_us
from slaclock.processors.engine.periods import local_start_of_day
from slaclock.schemas.policy import Contract, CreditTerms, GroupSpec, Policy, TierSpec


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


BEGINNING = -(2**62)
"""The instant policy-file contracts take effect from (before any input)."""


@dataclass(frozen=True, slots=True)
class CompiledContract:
    customer_id: str
    tier: str
    monthly_fee: Decimal
    currency: str
    timezone: ZoneInfo
    effective_from: int = BEGINNING  # as written; the book never lets it precede publication
    term_start: int | None = None  # first instant of the term (local midnight of `start`)
    term_end: int | None = None  # first instant after the term (midnight after `end`)
    services: tuple[str, ...] = ()

    def in_term(self, instant: int) -> bool:
        return (self.term_start is None or instant >= self.term_start) and (
            self.term_end is None or instant < self.term_end
        )


@dataclass(frozen=True)
class CompiledPolicy:
    """The policy file, compiled once and never changed (contract changes are input)."""

    default_tier: str
    tiers: Mapping[str, CompiledTier]
    contracts: Mapping[str, CompiledContract] = field(default_factory=lambda: MappingProxyType({}))
    raw: Policy | None = None  # the validated file, for parts compiled by their own modules
    # internal groups (OLAs, docs/semantics.md: Groups), compiled like tiers: the group's
    # calendar, targets of group_response/group_resolution, pause_on, warnings; no credits
    groups: Mapping[str, CompiledTier] = field(default_factory=lambda: MappingProxyType({}))

    def tier_for(self, event_tier: str | None, customer_id: str) -> str:
        """The event's tier, else the policy file's contract tier, else the default.

        Only for callers without a contract book; the engine asks its `ContractBook`.
        """
        if event_tier is not None:
            return event_tier
        contract = self.contracts.get(customer_id)
        return contract.tier if contract is not None else self.default_tier


def compile_contract(customer_id: str, contract: Contract) -> CompiledContract:
    zone = ZoneInfo(contract.timezone)
    effective = BEGINNING if contract.effective_at is None else to_us(contract.effective_at)
    term_start = None if contract.start is None else local_start_of_day(contract.start, zone)
    term_end = (
        None if contract.end is None else local_start_of_day(contract.end + timedelta(days=1), zone)
    )
    return CompiledContract(
        customer_id=customer_id,
        tier=contract.tier,
        monthly_fee=contract.monthly_fee,
        currency=contract.currency,
        timezone=zone,
        effective_from=effective,
        term_start=term_start,
        term_end=term_end,
        services=tuple(getattr(contract, "services", None) or ()),
    )


def compile_policy(policy: Policy) -> CompiledPolicy:
    calendars = {name: calendar_from_spec(spec) for name, spec in policy.calendars.items()}
    tiers: dict[str, CompiledTier] = {}
    for name, tier in policy.tiers.items():
        tiers[name] = _compile_terms(name, tier, calendars[tier.calendar], tier.credits)
    groups: dict[str, CompiledTier] = {}
    for name, group in policy.groups.items():
        groups[name] = _compile_terms(name, group, calendars[group.calendar], None)
    contracts = {cid: compile_contract(cid, c) for cid, c in policy.customers.items()}
    return CompiledPolicy(
        default_tier=policy.default_tier,
        tiers=MappingProxyType(tiers),
        contracts=MappingProxyType(contracts),
        raw=policy,
        groups=MappingProxyType(groups),
    )


def _compile_terms(
    name: str,
    spec: TierSpec | GroupSpec,
    calendar: BusinessCalendar,
    credits: CreditTerms | None,
) -> CompiledTier:
    thresholds = []
    for fraction in spec.warnings:
        ratio = Fraction(fraction)
        thresholds.append(Threshold(fraction, ratio.numerator, ratio.denominator))
    return CompiledTier(
        name=name,
        calendar=calendar,
        targets={
            str(metric): {str(p): seconds * US_PER_SECOND for p, seconds in by_p.items()}
            for metric, by_p in spec.targets.items()
        },
        pause_on=frozenset(str(s) for s in spec.pause_on),
        thresholds=tuple(sorted(thresholds, key=lambda t: t.fraction)),
        credits=credits,
    )
