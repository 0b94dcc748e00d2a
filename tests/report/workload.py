"""A workload with known properties for the report and what-if tests, and its replay.

Tier `gold` runs 24x7 and tracks only first_response and resolution (no customer replies,
so no next_response; no periodic_update target), so every outcome is decided by when the
test puts the reply and the solve:
- ticket i is first answered at half its target (met), or at twice it when i % 3 == 0;
- it is solved at half its resolution target (met), or at 1.5 times it when i % 5 == 0.
Customers rotate every four tickets: acme (Berlin), beta (New York, no cap), walk-in (no
contract). Plus boundary tickets around the end of September.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from slaclock.processors.engine.instants import format_us, parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.replay import Rejection, replay
from slaclock.schemas.policy import parse_policy

POLICY_YAML = """
default_tier: gold
calendars:
  always: {timezone: UTC, hours: 24x7}
tiers:
  gold:
    calendar: always
    targets:
      first_response: {urgent: 15m, high: 1h, normal: 4h, low: 8h}
      resolution: {urgent: 4h, high: 1d, normal: 2d, low: 3d}
    warnings: [0.5]
    credits:
      per_breach: {first_response: 1.0, resolution: 2.5}
      monthly_cap: 15
      earn_back: {months: 2, min_compliance: 0.9}
  silver:
    calendar: always
    targets:
      first_response: {urgent: 15m, high: 1h, normal: 4h, low: 8h}
      resolution: {urgent: 4h, high: 1d, normal: 2d, low: 3d}
    credits:
      per_breach: {first_response: 0.5}
customers:
  acme: {tier: gold, monthly_fee: "10000.00", currency: EUR, timezone: Europe/Berlin}
  beta: {tier: silver, monthly_fee: "3000.00", currency: USD, timezone: America/New_York}
"""

PRIORITIES = ("urgent", "high", "normal", "low")
FR_SECONDS = {"urgent": 900, "high": 3600, "normal": 14_400, "low": 28_800}
RES_SECONDS = {"urgent": 14_400, "high": 86_400, "normal": 172_800, "low": 259_200}
CUSTOMERS = ("acme", "beta", "walk-in")
TIMEZONES = {"acme": "Europe/Berlin", "beta": "America/New_York", "walk-in": "UTC"}
TICKETS = 48
START = parse_instant("2026-10-02T10:00:00Z")
STEP_US = 8 * 3600 * 1_000_000
S = 1_000_000


def policy_yaml(first_response_urgent: str = "15m") -> str:
    return POLICY_YAML.replace(
        "first_response: {urgent: 15m, high: 1h, normal: 4h, low: 8h}\n      resolution: {urgent: 4h, high: 1d, normal: 2d, low: 3d}\n    warnings",
        f"first_response: {{urgent: {first_response_urgent}, high: 1h, normal: 4h, low: 8h}}\n      resolution: {{urgent: 4h, high: 1d, normal: 2d, low: 3d}}\n    warnings",
    )


def _ticket(
    ticket: str, customer: str, priority: str, created: int, reply: int, solve: int
) -> list[tuple[int, dict[str, Any]]]:
    base = {"ticket_id": ticket}
    return [
        (
            created,
            {
                **base,
                "event_id": f"{ticket}-1",
                "type": "ticket.created",
                "occurred_at": format_us(created),
                "customer_id": customer,
                "priority": priority,
            },
        ),
        (
            reply,
            {
                **base,
                "event_id": f"{ticket}-2",
                "type": "ticket.agent_replied",
                "occurred_at": format_us(reply),
            },
        ),
        (
            solve,
            {
                **base,
                "event_id": f"{ticket}-3",
                "type": "ticket.status_changed",
                "occurred_at": format_us(solve),
                "status": "solved",
            },
        ),
        (
            solve + 3600 * S,
            {
                **base,
                "event_id": f"{ticket}-4",
                "type": "ticket.status_changed",
                "occurred_at": format_us(solve + 3600 * S),
                "status": "closed",
            },
        ),
    ]


def known_events() -> list[dict[str, Any]]:
    timed: list[tuple[int, dict[str, Any]]] = []
    for i in range(TICKETS):
        priority = PRIORITIES[i % 4]
        customer = CUSTOMERS[(i // 4) % 3]
        created = START + i * STEP_US
        fr = FR_SECONDS[priority] * S
        res = RES_SECONDS[priority] * S
        reply = created + (2 * fr if i % 3 == 0 else fr // 2)
        solve = created + (res * 3 // 2 if i % 5 == 0 else res // 2)
        timed += _ticket(f"K{i:03d}", customer, priority, created, reply, max(solve, reply + S))
    # boundary: 22:30Z on 30 September is 00:30 on 1 October in Berlin: acme's breach at
    # 22:45Z counts in October for acme; the same for walk-in (UTC) counts in September.
    edge = parse_instant("2026-09-30T22:30:00Z")
    timed += _ticket("E-acme", "acme", "urgent", edge, edge + 1800 * S, edge + 7200 * S)
    timed += _ticket("E-walk", "walk-in", "urgent", edge, edge + 1800 * S, edge + 7200 * S)
    timed.sort(key=lambda item: item[0])
    return [event for _, event in timed]


def replay_outputs(
    events: Iterable[dict[str, Any]],
    yaml_text: str = POLICY_YAML,
    until: str | None = "2026-12-01T00:00:00Z",
) -> list[dict[str, Any]]:
    policy = compile_policy(parse_policy(yaml_text, "test-policy.yaml"))
    outputs: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    lines = [orjson.dumps(e) for e in events]
    replay(
        policy,
        lines,
        lambda o: outputs.append(orjson.loads(orjson.dumps(o))),
        rejected.append,
        parse_instant(until) if until else None,
    )
    assert not rejected, rejected
    return outputs


def write_jsonl(path: Any, items: Iterable[dict[str, Any]]) -> None:
    with open(path, "wb") as sink:
        for item in items:
            sink.write(orjson.dumps(item) + b"\n")
