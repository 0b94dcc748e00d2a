"""A policy version as an input record: `policy.changed` in a replay file.

Live, a version is a record of the compacted topic `sla.policies` (key = the version id,
value = a `PolicyPublication`), written by `slaclock policy publish` and published at the
record's timestamp. In a replay file the same publication is one line, so replay applies it
at the same place in time:

    {"type": "policy.changed", "event_id": "p2", "occurred_at": "2026-11-20T10:00:00Z",
     "version": "2", "effective_at": "2026-11-21T00:00:00Z", "applies_to": "open",
     "policy": {"default_tier": "standard", "calendars": {...}, "tiers": {...}}}

The version takes effect at P = max(`effective_at`, the publish instant), never earlier
(docs/semantics.md: Policy changes). The document is a whole policy (its `customers:` are
ignored: contracts change through their own feed).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slaclock.schemas.events import NonEmptyStr, UtcDatetime

__all__ = ["AppliesTo", "PolicyChanged", "PolicyPublication", "parse_policy_changed"]

AppliesTo = Literal["open", "new"]


class PolicyPublication(BaseModel):
    """The value of a `sla.policies` record: the document and when and to what it applies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: NonEmptyStr = Field(description="The version id (unique; also the record key).")
    effective_at: UtcDatetime | None = Field(
        default=None,
        description="When the version takes effect; never before it was published.",
    )
    applies_to: AppliesTo = Field(
        default="open",
        description=(
            "`open`: open tickets too (recomputed at P); `new`: only tickets created at or "
            "after P (tickets already open keep the version they had)."
        ),
    )
    policy: dict[str, Any] = Field(description="The whole policy document (as in the file).")
    first: bool = Field(
        default=False,
        description=(
            "The first version: in force from the beginning (the policy file the first "
            "worker started with; its `customers:` are the first contracts)."
        ),
    )


class PolicyChanged(PolicyPublication):
    """A `policy.changed` line of a replay file: a publication at `occurred_at`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["policy.changed"] = "policy.changed"
    event_id: str | None = None
    occurred_at: UtcDatetime = Field(description="When the version was published.")


def parse_policy_changed(raw: bytes | str) -> PolicyChanged:
    """Raises `pydantic.ValidationError`."""
    return PolicyChanged.model_validate_json(raw)
