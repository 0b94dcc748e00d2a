"""Builders for availability tests: a policy with services, events, named instants, a harness.

The harness drives the real `ServiceStage` (the object replay and the Kafka worker use)
with JSON events in and output dicts out; time moves only when the test says so.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import orjson

from slaclock.processors.engine.availability import ServicePolicy, compile_services
from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant
from slaclock.processors.engine.services_stage import ServiceStage
from slaclock.processors.services_intake import decode_service_event
from slaclock.schemas.policy import parse_policy
from slaclock.schemas.rejection import Rejected

# April 2026 in UTC: 30 days = 2,592,000 s; a 99.5 % target leaves a 12,960 s (3h36m) budget.
APR_1 = "2026-04-01T00:00:00Z"
MAY_1 = "2026-05-01T00:00:00Z"
JUN_1 = "2026-06-01T00:00:00Z"
APR_MEASURED_S = 30 * 86_400
APR_BUDGET_S = 12_960
T = "2026-04-10T08:00:00Z"  # an outage starts
HOUR = 3_600 * US_PER_SECOND


def _all_days(year: int, month: int) -> list[str]:
    day = date(year, month, 1)
    days = []
    while day.month == month:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


SERVICES_YAML = f"""
default_tier: standard
calendars:
  always:
    timezone: UTC
    hours: 24x7
  berlin-office:
    timezone: Europe/Berlin
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-17:00"]
      wed: ["09:00-17:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-17:00"]
  closed-in-february:
    timezone: UTC
    hours: 24x7
    holidays: {_all_days(2026, 2)}
tiers:
  standard:
    calendar: always
    targets:
      first_response: {{high: 1h}}
services:
  portal:
    timezone: UTC
    target: "99.5"
    down_on:
      partial_outage: "0.3"
    maintenance_notice: 2d
    warnings: [0.5, 0.9]
    credits:
      - {{below: "99.5", percent: 10}}
      - {{below: "99.0", percent: 25}}
      - {{below: "95.0", percent: 100}}
  office-app:
    timezone: Europe/Berlin
    calendar: berlin-office
    target: "99"
  seasonal:
    timezone: UTC
    calendar: closed-in-february
    target: "99.9"
    credits:
      - {{below: "99.9", percent: 5}}
customers:
  acme:
    tier: standard
    monthly_fee: "1000.00"
    currency: EUR
    services: [portal]
"""


def make_services(yaml_text: str = SERVICES_YAML) -> dict[str, ServicePolicy]:
    return compile_services(parse_policy(yaml_text, "services-policy.yaml"))


_ids = itertools.count(1)


def _event(kind: str, service: str, at: str, **fields: Any) -> dict[str, Any]:
    event_id = fields.pop("event_id", None) or f"s{next(_ids)}"
    return {"event_id": event_id, "type": kind, "service_id": service, "occurred_at": at, **fields}


def status_changed(at: str, new_status: str, service: str = "portal", **kw: Any) -> dict[str, Any]:
    return _event("service.status_changed", service, at, status=new_status, **kw)


def scheduled(
    at: str, maintenance: str, starts: str, ends: str, service: str = "portal", **kw: Any
) -> dict[str, Any]:
    return _event(
        "maintenance.scheduled",
        service,
        at,
        maintenance_id=maintenance,
        starts_at=starts,
        ends_at=ends,
        **kw,
    )


def cancelled(at: str, maintenance: str, service: str = "portal", **kw: Any) -> dict[str, Any]:
    return _event("maintenance.cancelled", service, at, maintenance_id=maintenance, **kw)


def plus(at: str, us: int) -> str:
    """`at` moved by `us` microseconds, as RFC 3339 UTC."""
    return format_us(parse_instant(at) + us)


class ServiceHarness:
    """Feeds events to a `ServiceStage` and collects its outputs and rejections."""

    def __init__(self, grace_us: int = 0, yaml_text: str = SERVICES_YAML) -> None:
        self.stage = ServiceStage(make_services(yaml_text), {}, grace_us)
        self.outputs: list[dict[str, Any]] = []
        self.rejected: list[Rejected] = []

    def feed(self, *events: dict[str, Any] | bytes) -> ServiceHarness:
        for event in events:
            raw = event if isinstance(event, bytes) else orjson.dumps(event)
            try:
                parsed = decode_service_event(raw)
                self.outputs += self.stage.on_event(
                    parsed, parse_instant(parsed.occurred_at.isoformat())
                )
            except Rejected as rejected:
                self.rejected.append(rejected)
        return self

    def until(self, at: str) -> ServiceHarness:
        self.outputs += self.stage.advance_to(parse_instant(at))
        return self

    def of(self, kind: str, service: str | None = None) -> list[dict[str, Any]]:
        return [
            o
            for o in self.outputs
            if o["type"] == f"sla.availability_{kind}"
            and (service is None or o["service_id"] == service)
        ]

    def one(self, kind: str, service: str = "portal", period: str | None = None) -> dict[str, Any]:
        """The one output of `kind` for `service` (default: portal, the builders' default
        service; every service the policy defines is reported, quiet ones too)."""
        found = [o for o in self.of(kind, service) if period is None or o["period"] == period]
        assert len(found) == 1, f"expected one {kind}, got {found}"
        return found[0]
