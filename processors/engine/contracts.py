"""Contracts as versions in time: which contract is in force for a customer at an instant.

Contracts are input, not configuration read on the side: the policy file's `customers:`
are the first versions (in force from the beginning), and every later change arrives in the
log (a `sla.contracts` record live, a `contract.changed` line in replay) and takes effect
from an instant: its `effective_at`, never earlier than the moment it was published, so a
change is never retroactive. Every decision that depends on a contract asks the book for
the version in force at the decision's own instant (a ticket's creation, a breach's
`decided_at`, a period end), so the outcome does not depend on when a thread happened to
read the record, and replay reproduces it.

A contract's time zone cannot change (its periods would overlap); such a change is
refused.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from slaclock.processors.engine.policy import (
    CompiledContract,
    CompiledPolicy,
    compile_contract,
)
from slaclock.processors.engine.versions import PolicyBook
from slaclock.schemas.policy import Contract
from slaclock.schemas.rejection import Rejected


@dataclass(frozen=True, slots=True)
class ContractVersion:
    effective_from: int
    contract: CompiledContract | None  # None: the customer's contract was withdrawn


@dataclass
class ContractBook:
    """Every customer's contract versions, ordered by the instant they take effect."""

    policy: CompiledPolicy
    versions: dict[str, list[ContractVersion]] = field(default_factory=dict)
    # the policy versions whose tiers and services contracts must name (None: `policy` only)
    policies: PolicyBook | None = None

    @classmethod
    def from_policy(
        cls, policy: CompiledPolicy, policies: PolicyBook | None = None
    ) -> ContractBook:
        book = cls(policy, policies=policies)
        for customer, contract in sorted(policy.contracts.items()):
            book.versions[customer] = [ContractVersion(contract.effective_from, contract)]
        return book

    # -- changes ------------------------------------------------------------------------

    def change(
        self, customer_id: str, contract: Contract | None, published_at: int
    ) -> ContractVersion:
        """Record a new version; it takes effect at max(effective_at, published_at).

        Raises `Rejected` for a contract naming an unknown tier or service, or changing
        its time zone.
        A version at the same instant as an earlier one replaces it.
        """
        compiled = None if contract is None else compile_contract(customer_id, contract)
        effective = published_at
        if compiled is not None and compiled.effective_from > effective:
            effective = compiled.effective_from
        if contract is not None:
            for policy in self._policies_from(effective):
                if contract.tier not in policy.tiers:
                    raise Rejected(
                        "UnknownTier",
                        f"contract for {customer_id!r} names tier {contract.tier!r}, "
                        f"which the policy{_version_name(policy)} does not define",
                    )
                defined = set(policy.raw.services) if policy.raw is not None else set()
                unknown = sorted(set(contract.services) - defined)
                if unknown:
                    raise Rejected(
                        "UnknownService",
                        f"contract for {customer_id!r} names service(s) {', '.join(unknown)} "
                        f"that the policy{_version_name(policy)} does not define",
                    )
        versions = self.versions.setdefault(customer_id, [])
        if compiled is not None:
            for version in versions:
                known = version.contract
                if known is not None and known.timezone.key != compiled.timezone.key:
                    raise Rejected(
                        "ContractTimezoneChange",
                        f"contract for {customer_id!r} changes timezone from "
                        f"{known.timezone.key} to {compiled.timezone.key}; a contract's "
                        "periods cannot move: use a new customer id",
                    )
        version = ContractVersion(effective, compiled)
        starts = [v.effective_from for v in versions]
        index = bisect.bisect_left(starts, effective)
        if index < len(versions) and versions[index].effective_from == effective:
            versions[index] = version
        else:
            versions.insert(index, version)
        return version

    def _policies_from(self, instant: int) -> list[CompiledPolicy]:
        """The policy versions in force at `instant` or later (a contract must fit each)."""
        if self.policies is None:
            return [self.policy]
        found = [self.policies.in_force(instant).policy]
        found += [v.policy for v in self.policies.changes() if v.effective > instant]
        return found

    def names_missing_from(self, policy: CompiledPolicy, instant: int) -> list[str]:
        """What contracts in force at `instant` or later name that `policy` lacks: one line
        per problem (a policy version effective at `instant` must define them all)."""
        problems: list[str] = []
        services = set(policy.raw.services) if policy.raw is not None else set()
        for customer in self.customers():
            versions = self.versions[customer]
            relevant = [v for v in versions if v.effective_from > instant]
            current = self.in_force(customer, instant)
            contracts = [current] if current is not None else []
            contracts += [v.contract for v in relevant if v.contract is not None]
            for contract in contracts:
                if contract is None:
                    continue
                if contract.tier not in policy.tiers:
                    problems.append(
                        f"tiers: the contract of {customer!r} names tier {contract.tier!r}, "
                        "which this version does not define"
                    )
                for service in contract.services:
                    if service not in services:
                        problems.append(
                            f"services: the contract of {customer!r} names service "
                            f"{service!r}, which this version does not define"
                        )
        return list(dict.fromkeys(problems))

    # -- queries ------------------------------------------------------------------------

    def in_force(self, customer_id: str, instant: int) -> CompiledContract | None:
        versions = self.versions.get(customer_id)
        if not versions:
            return None
        found: CompiledContract | None = None
        for version in versions:
            if version.effective_from > instant:
                break
            found = version.contract
        return found

    def covering(self, customer_id: str, instant: int) -> CompiledContract | None:
        """The contract in force at `instant` if `instant` is inside its term, else None."""
        contract = self.in_force(customer_id, instant)
        if contract is None or not contract.in_term(instant):
            return None
        return contract

    def tier_for(self, event_tier: str | None, customer_id: str, instant: int) -> str:
        """The event's tier, else the customer's contract tier at `instant`, else the default."""
        if event_tier is not None:
            return event_tier
        contract = self.in_force(customer_id, instant)
        if contract is not None:
            return contract.tier
        if self.policies is not None:
            return self.policies.in_force(instant).policy.default_tier
        return self.policy.default_tier

    def customers(self) -> list[str]:
        return sorted(self.versions)

    def timezone_of(self, customer_id: str) -> Any:
        for version in self.versions.get(customer_id, ()):
            if version.contract is not None:
                return version.contract.timezone
        return None

    def first_effective(self, customer_id: str) -> int | None:
        """When the customer's first contract took effect (None: never had one)."""
        for version in self.versions.get(customer_id, ()):
            if version.contract is not None:
                return version.effective_from
        return None

    def __iter__(self) -> Iterator[str]:
        return iter(self.customers())


def _version_name(policy: CompiledPolicy) -> str:
    return f" (version {policy.raw.version!r})" if policy.raw is not None else ""
