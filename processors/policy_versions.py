"""Policy versions as input records: decode, validate, and take one into a `PolicyBook`.

Shared by replay (`policy.changed` lines), the live followers of `sla.policies` and
`slaclock policy publish`, so a version is refused for the same reasons everywhere
(docs/semantics.md: Policy changes): a document that does not validate (every problem
listed), a version id used before, a version that lacks a tier or service that a contract
in force at its P (or later) names, a document whose own `version` key disagrees with the
publication's.
"""

from __future__ import annotations

from pydantic import ValidationError

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import to_us
from slaclock.processors.engine.policy import CompiledPolicy, compile_policy
from slaclock.processors.engine.versions import PolicyBook, PolicyVersion
from slaclock.schemas.policy import PolicyError, validate_policy_data
from slaclock.schemas.policy_versions import (
    PolicyChanged,
    PolicyPublication,
    parse_policy_changed,
)
from slaclock.schemas.rejection import Rejected, classify_validation_error


def decode_policy_change(raw: bytes | str) -> PolicyChanged:
    """A `policy.changed` line; raises `Rejected` like a bad event."""
    try:
        return parse_policy_changed(raw)
    except ValidationError as error:
        raise classify_validation_error(error) from None


def version_problems(publication: PolicyPublication, source: str) -> list[str]:
    """Everything wrong with the document of a publication, one line each (empty: valid)."""
    problems: list[str] = []
    try:
        policy = validate_policy_data(dict(publication.policy), source)
    except PolicyError as error:
        return [f"{p.location}: {p.message}" for p in error.problems]
    if "version" in publication.policy and policy.version != publication.version:
        problems.append(
            f"version: the document says {policy.version!r} but it is published as "
            f"{publication.version!r}; make them agree (or drop the document's key)"
        )
    return problems


def compile_version(publication: PolicyPublication, source: str) -> CompiledPolicy:
    """The compiled document of a publication; raises `Rejected` (`InvalidPolicy`) listing
    every problem."""
    problems = version_problems(publication, source)
    if problems:
        raise Rejected(
            "InvalidPolicy",
            f"policy version {publication.version!r} is invalid: " + "; ".join(problems),
        )
    data = {**publication.policy, "version": publication.version}
    return compile_policy(validate_policy_data(data, source))


def effective_instant(publication: PolicyPublication, published_at: int) -> int:
    """P = max(effective_at, the publish instant)."""
    if publication.effective_at is None:
        return published_at
    return max(to_us(publication.effective_at), published_at)


def contract_problems(contracts: ContractBook, policy: CompiledPolicy, effective: int) -> list[str]:
    """The tiers and services that contracts in force at `effective` or later name and the
    version lacks."""
    return contracts.names_missing_from(policy, effective)


def take_policy_change(
    versions: PolicyBook,
    contracts: ContractBook,
    publication: PolicyPublication,
    published_at: int,
    source: str = "policy.changed",
) -> PolicyVersion:
    """Validate a publication and add it to the book; raises `Rejected` for one to refuse."""
    if versions.find(publication.version) is not None:
        raise Rejected(
            "DuplicateVersion",
            f"policy version {publication.version!r} exists already; versions are never "
            "edited, publish the change under a new version id",
        )
    policy = compile_version(publication, source)
    effective = effective_instant(publication, published_at)
    missing = contract_problems(contracts, policy, effective)
    if missing:
        raise Rejected(
            "IncompatiblePolicy",
            f"policy version {publication.version!r} lacks what contracts name: "
            + "; ".join(missing),
        )
    return versions.add(
        publication.version,
        policy,
        published_at,
        None if publication.effective_at is None else to_us(publication.effective_at),
        publication.applies_to,
    )
