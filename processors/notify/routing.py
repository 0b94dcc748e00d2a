"""Which targets an output goes to: the routes of the routing file, applied to one output.

Outputs are routed on their fields generically (`type`, `tier`, ...), so new output types
(statements, availability) are routed as soon as a route names them. One exception: an
`sla.cancelled` (a cycle that ended without an outcome) is routed like a completion, so a
route naming `sla.completed` takes it too and whatever a breach opened can be closed
without changing the routing file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slaclock.processors.notify.config import Match, NotifyConfig

# match field -> output field
_FIELDS = {
    "type": "type",
    "tier": "tier",
    "priority": "priority",
    "metric": "metric",
    "customer": "customer_id",
    "service": "service_id",
}


# output type -> the type a route may name to take it as well
_ROUTED_LIKE = {"sla.cancelled": "sla.completed"}


def matches(match: Match, output: Mapping[str, Any]) -> bool:
    """True when every field the match names agrees with the output."""
    for name, output_field in _FIELDS.items():
        wanted: list[str] | None = getattr(match, name)
        if wanted is None:
            continue
        value = output.get(output_field)
        if value in wanted:
            continue
        if name == "type" and _ROUTED_LIKE.get(str(value)) in wanted:
            continue
        return False
    if match.threshold_at_least is not None:
        threshold = output.get("threshold")
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            return False
        if threshold < match.threshold_at_least:
            return False
    return True


def route(config: NotifyConfig, output: Mapping[str, Any]) -> list[str]:
    """The targets `output` goes to, each once, in the order routes first name them."""
    targets: list[str] = []
    for rule in config.routes:
        if matches(rule.match, output):
            targets.extend(t for t in rule.targets if t not in targets)
    return targets
