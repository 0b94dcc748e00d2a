"""Builders for engine tests: named instants, event builders, a policy, and a harness.

The harness drives the real replay adapter (JSON lines in, output dicts out) with time
moved explicitly by the test.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import CompiledPolicy, compile_policy
from slaclock.processors.replay import Rejection, Replayer
from slaclock.schemas.policy import parse_policy
from slaclock.schemas.rejection import Rejected

# Named instants (2026-03-02 is a Monday; Berlin is UTC+1 until 2026-03-29).
MON_0900_UTC = "2026-03-02T09:00:00Z"

POLICY_YAML = """
default_tier: business
calendars:
  always:
    timezone: UTC
    hours: 24x7
  berlin-office:
    timezone: Europe/Berlin
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-17:00"]
      wed: ["09:00-12:00", "13:00-17:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-15:00"]
    holidays: ["2026-12-24", "2026-12-25"]
tiers:
  enterprise:
    calendar: always
    targets:
      first_response: {urgent: 15m, high: 1h, normal: 4h}
      next_response: {urgent: 30m, high: 2h, normal: 8h}
      periodic_update: {urgent: 1h, high: 4h}
      resolution: {urgent: 4h, high: 8h, normal: 1d, low: 5d}
    pause_on: [pending, on_hold]
    warnings: [0.5, 0.75]
    credits:
      per_breach: {first_response: 1.0, resolution: 2.5}
      monthly_cap: 5
  business:
    calendar: berlin-office
    targets:
      first_response: {high: 2h, normal: 8h}
      resolution: {high: 16h, normal: 40h}
    pause_on: [pending]
    warnings: [0.75]
customers:
  acme:
    tier: enterprise
    monthly_fee: "1000.00"
    currency: EUR
    timezone: Europe/Berlin
  globex:
    tier: business
    monthly_fee: "500.00"
    currency: USD
    timezone: America/New_York
"""


def make_policy(yaml_text: str = POLICY_YAML) -> CompiledPolicy:
    return compile_policy(parse_policy(yaml_text, "test-policy.yaml"))


_ids = itertools.count(1)


def _event(kind: str, ticket: str, at: str, **fields: Any) -> dict[str, Any]:
    event_id = fields.pop("event_id", None) or f"e{next(_ids)}"
    return {"event_id": event_id, "type": kind, "ticket_id": ticket, "occurred_at": at, **fields}


def created(
    at: str, ticket: str = "T1", priority: str = "high", customer: str = "acme", **kw: Any
) -> dict[str, Any]:
    return _event("ticket.created", ticket, at, customer_id=customer, priority=priority, **kw)


def agent_reply(at: str, ticket: str = "T1", public: bool = True, **kw: Any) -> dict[str, Any]:
    return _event("ticket.agent_replied", ticket, at, public=public, **kw)


def customer_reply(at: str, ticket: str = "T1", **kw: Any) -> dict[str, Any]:
    return _event("ticket.customer_replied", ticket, at, **kw)


def status(at: str, new_status: str, ticket: str = "T1", **kw: Any) -> dict[str, Any]:
    return _event("ticket.status_changed", ticket, at, status=new_status, **kw)


def priority(at: str, new_priority: str, ticket: str = "T1", **kw: Any) -> dict[str, Any]:
    return _event("ticket.priority_changed", ticket, at, priority=new_priority, **kw)


def breach_record(
    ticket: str, metric: str, decided: str, event_id: str | None = None, customer: str = "acme"
) -> dict[str, Any]:
    """An `sla.breach` as stage 1 emits it, decided (and due) at `decided`."""
    return {
        "event_id": event_id or f"b-{ticket}-{metric}",
        "type": "sla.breach",
        "ticket_id": ticket,
        "customer_id": customer,
        "tier": "enterprise",
        "priority": "high",
        "metric": metric,
        "cycle": 1,
        "at": decided,
        "deadline": decided,
        "decided_at": decided,
        "target_seconds": 3600,
    }


class Harness:
    """Feeds events through the replay adapter and collects what it emits."""

    def __init__(self, policy: CompiledPolicy | None = None) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.rejections: list[Rejection] = []
        self.replayer = Replayer(policy or make_policy(), self.outputs.append)

    def feed(self, *events: dict[str, Any] | bytes) -> Harness:
        for event in events:
            raw = event if isinstance(event, bytes) else orjson.dumps(event)
            try:
                self.replayer.on_line(raw)
            except Rejected as rejected:
                self.rejections.append(Rejection(0, rejected.error_class, rejected.message, ""))
        return self

    def until(self, at: str) -> Harness:
        self.replayer.finish(parse_instant(at))
        return self

    def of(self, kind: str, metric: str | None = None) -> list[dict[str, Any]]:
        short = {
            "warning": "sla.warning",
            "breach": "sla.breach",
            "completed": "sla.completed",
            "cancelled": "sla.cancelled",
            "credit": "sla.credit",
        }
        return [
            o
            for o in self.outputs
            if o["type"] == short.get(kind, kind) and (metric is None or o["metric"] == metric)
        ]

    def one(self, kind: str, metric: str | None = None) -> dict[str, Any]:
        found = self.of(kind, metric)
        assert len(found) == 1, f"expected one {kind} {metric or ''}, got {found}"
        return found[0]
