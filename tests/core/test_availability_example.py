"""The shipped availability example gives the figures the README walks through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slaclock.processors.engine.availability import compile_services
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.services_stage import ServiceStage
from slaclock.processors.services_intake import decode_service_event
from slaclock.schemas.policy import load_policy
from slaclock.schemas.rejection import Rejected

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_services_example_gives_the_documented_month() -> None:
    policy = load_policy(EXAMPLES / "services-policy.yaml")
    stage = ServiceStage(compile_services(policy), {}, 0)
    outputs: list[dict[str, Any]] = []
    rejected = []
    for line in (EXAMPLES / "services-events.jsonl").read_bytes().splitlines():
        try:
            event = decode_service_event(line)
            outputs += stage.on_event(event, parse_instant(event.occurred_at.isoformat()))
        except Rejected as error:
            rejected.append(error.error_class)
    outputs += stage.advance_to(parse_instant("2026-12-01T00:00:00Z"))
    portal = {
        o["type"].rsplit("_", 1)[1] + str(o.get("threshold", "")): o
        for o in outputs
        if o["service_id"] == "portal"
    }
    assert portal["warning0.5"]["at"] == "2026-11-20T11:40:00Z"
    assert portal["warning0.9"]["at"] == "2026-11-20T16:28:00Z"
    assert portal["breach"]["at"] == "2026-11-20T17:40:00Z"
    report = portal["report"]
    assert (report["downtime_seconds"], report["excused_seconds"]) == (16_200, 25_200)
    assert (report["uptime_percent"], report["met"], report["credit_percent"]) == (
        "99.3750",
        False,
        "10",
    )
    office = next(o for o in outputs if o["service_id"] == "back-office" and "met" in o)
    assert (office["uptime_percent"], office["credit_percent"]) == ("97.6190", "5")
    assert rejected == ["UnknownService", "SchemaViolation"]
    assert (stage.counters.duplicates, stage.counters.ignored_cancels) == (1, 1)
