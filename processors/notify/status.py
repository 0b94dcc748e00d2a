"""Per-target delivery counts, as shown by `/notify/status` (pure bookkeeping)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TargetStatus:
    delivered: int = 0  # acknowledged by the receiver (2xx)
    retrying: int = 0  # notifications waiting for their next attempt now
    failed: int = 0  # dead-lettered
    already_delivered: int = 0  # skipped: acknowledged before a restart
    last_error: str | None = None
    last_error_at: str | None = None  # RFC 3339 UTC

    def as_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "already_delivered": self.already_delivered,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


@dataclass
class NotifyStatus:
    targets: dict[str, TargetStatus] = field(default_factory=dict)
    outputs_read: int = 0
    unreadable: int = 0  # records that are not JSON objects with an event_id: skipped

    def target(self, name: str) -> TargetStatus:
        return self.targets.setdefault(name, TargetStatus())

    def as_json(self) -> dict[str, Any]:
        return {
            "outputs_read": self.outputs_read,
            "unreadable": self.unreadable,
            "targets": {name: t.as_json() for name, t in sorted(self.targets.items())},
        }
