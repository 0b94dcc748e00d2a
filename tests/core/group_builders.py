"""A policy with internal groups (OLAs) and an assignment builder, for the group tests.

tier1: 24x7 (UTC); high: group_response 30m, group_resolution 2h; urgent: 10m / 1h;
pauses group_resolution on pending; warns at 0.5.
engineering: Berlin office hours (Mon-Thu 09-17, Wed lunch 12-13, Fri 09-15, Berlin time);
high: group_response 1h, group_resolution 8h; pauses on pending and on_hold; warns at 0.75.
The customer tiers are those of tests/core/builders.py (acme: enterprise, 24x7).
"""

from __future__ import annotations

from typing import Any

from slaclock.processors.engine.policy import CompiledPolicy
from tests.core.builders import POLICY_YAML, _event, make_policy

GROUPS_YAML = """
groups:
  tier1:
    calendar: always
    targets:
      group_response: {urgent: 10m, high: 30m, normal: 1h}
      group_resolution: {urgent: 1h, high: 2h, normal: 4h}
    pause_on: [pending]
    warnings: [0.5]
  engineering:
    calendar: berlin-office
    targets:
      group_response: {high: 1h, normal: 4h}
      group_resolution: {high: 8h, normal: 2d}
    pause_on: [pending, on_hold]
    warnings: [0.75]
"""

GROUP_POLICY_YAML = POLICY_YAML + GROUPS_YAML


def group_policy() -> CompiledPolicy:
    return make_policy(GROUP_POLICY_YAML)


def assigned(
    at: str, group: str | None, ticket: str = "T1", assignee: str | None = "agent", **kw: Any
) -> dict[str, Any]:
    return _event("ticket.assigned", ticket, at, group=group, assignee=assignee, **kw)
