"""Policy versions in time: which rules are in force at an instant (docs/semantics.md: Policy changes).

Like contracts, the rules are input. The policy file a worker or replay starts with is the
first version, in force from the beginning; every later version arrives in the log (a
`sla.policies` record live, a `policy.changed` line in replay) and takes effect at
P = max(`effective_at`, the instant it was published), so it is never retroactive. At one P
the later record wins. Every decision asks the book for the version in force at its own
instant; a ticket remembers the id of the version it runs under (not its rules), so a
ticket pinned by an `applies_to: new` version keeps finding its own rules here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from slaclock.processors.engine.policy import BEGINNING, CompiledPolicy
from slaclock.schemas.rejection import Rejected

OPEN = "open"
NEW = "new"


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version_id: str
    effective: int  # P: the instant it takes effect (BEGINNING for the first version)
    policy: CompiledPolicy
    applies_to: str  # OPEN or NEW
    sequence: int  # record order: at one P the later record wins


class PolicyBook:
    """Every policy version, ordered by (P, record order)."""

    __slots__ = ("_by_id", "_sequence", "versions")

    def __init__(self, first: CompiledPolicy, first_id: str | None = None) -> None:
        if first_id is None:
            first_id = first.raw.version if first.raw is not None else "1"
        version = PolicyVersion(first_id, BEGINNING, first, OPEN, 0)
        self.versions: list[PolicyVersion] = [version]
        self._by_id: dict[str, PolicyVersion] = {first_id: version}
        self._sequence = 0

    @property
    def first(self) -> PolicyVersion:
        return self.versions[0]

    def add(
        self,
        version_id: str,
        policy: CompiledPolicy,
        published_at: int,
        effective_at: int | None = None,
        applies_to: str = OPEN,
    ) -> PolicyVersion:
        """Record a version; it takes effect at max(effective_at, published_at).

        Raises `Rejected` for a version id used before (versions are never edited: publish
        a new one).
        """
        if version_id in self._by_id:
            raise Rejected(
                "DuplicateVersion",
                f"policy version {version_id!r} exists already; versions are never edited, "
                "publish the change under a new version id",
            )
        effective = published_at if effective_at is None else max(effective_at, published_at)
        self._sequence += 1
        version = PolicyVersion(version_id, effective, policy, applies_to, self._sequence)
        key = (effective, self._sequence)
        index = len(self.versions)
        while (
            index > 0
            and (self.versions[index - 1].effective, self.versions[index - 1].sequence) > key
        ):
            index -= 1
        self.versions.insert(index, version)
        self._by_id[version_id] = version
        return version

    # -- queries ------------------------------------------------------------------------

    def get(self, version_id: str) -> PolicyVersion:
        """The version with this id (a ticket's own version)."""
        return self._by_id[version_id]

    def find(self, version_id: str | None) -> PolicyVersion | None:
        return None if version_id is None else self._by_id.get(version_id)

    def in_force(self, instant: int) -> PolicyVersion:
        """The version in force at `instant`: the last one (by P, then record order) with
        P <= instant."""
        versions = self.versions
        for index in range(len(versions) - 1, 0, -1):
            if versions[index].effective <= instant:
                return versions[index]
        return versions[0]

    def winning(self, version: PolicyVersion) -> bool:
        """Whether `version` is in force at its own P (no later record at the same P)."""
        return self.in_force(version.effective) is version

    def changes(self) -> Iterator[PolicyVersion]:
        """Every version after the first, in (P, record order)."""
        return iter(self.versions[1:])

    def ids(self) -> list[str]:
        return [v.version_id for v in self.versions]

    def __len__(self) -> int:
        return len(self.versions)
