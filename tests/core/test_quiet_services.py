"""Every service is reported (docs/availability.md: Quiet services).

A service with no event in a month is the usual case: its report (uptime 100, met) is what
the customer's availability promise needs. Every service the policy defines is reported for
every period whose end is after the earliest input instant F (a ticket or a service event),
in replay and, partition by partition, live: a stage learns F from the other inputs'
progress (`on_watermark`) and reports its services once F is settled.
"""

from __future__ import annotations

from typing import Any

import orjson

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.engine.services_stage import ServiceStage
from slaclock.processors.replay import replay
from slaclock.processors.services_intake import decode_service_event
from slaclock.schemas.policy import parse_policy
from tests.core.service_builders import (
    APR_MEASURED_S,
    JUN_1,
    MAY_1,
    SERVICES_YAML,
    make_services,
    status_changed,
)

SERVICES = ("office-app", "portal", "seasonal")


def ticket_created(at: str, ticket: str = "t1") -> dict[str, Any]:
    return {
        "event_id": f"{ticket}-created",
        "type": "ticket.created",
        "ticket_id": ticket,
        "customer_id": "acme",
        "priority": "high",
        "occurred_at": at,
    }


def replayed(*events: dict[str, Any], until: str) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    policy = compile_policy(parse_policy(SERVICES_YAML, "services-policy.yaml"))
    lines = [orjson.dumps(e) for e in events]
    replay(policy, lines, outputs.append, lambda r: None, parse_instant(until))
    return outputs


def reports(outputs: list[dict[str, Any]], service: str | None = None) -> list[tuple[str, str]]:
    """(service, period) of each availability report, in emission order."""
    return [
        (o["service_id"], o["period"])
        for o in outputs
        if o["type"] == "sla.availability_report" and service in (None, o["service_id"])
    ]


def test_a_month_without_service_events_reports_every_service_met_at_100() -> None:
    outputs = replayed(ticket_created("2026-04-10T09:00:00Z"), until=MAY_1)
    found = [o for o in outputs if o["type"] == "sla.availability_report"]
    assert sorted(reports(outputs)) == [(s, "2026-04") for s in SERVICES]
    for report in found:
        assert (report["uptime_percent"], report["met"], report["downtime_seconds"]) == (
            "100.0000",
            True,
            0,
        )
        assert report["credit_percent"] is None
    portal = next(r for r in found if r["service_id"] == "portal")
    assert (portal["at"], portal["measured_seconds"]) == (MAY_1, APR_MEASURED_S)
    # no warning and no breach comes from a quiet service
    assert {o["type"] for o in outputs if o["type"].startswith("sla.availability")} == {
        "sla.availability_report"
    }


def test_quiet_services_are_reported_every_month_end_from_the_month_of_the_first_input() -> None:
    outputs = replayed(
        ticket_created("2026-03-15T09:00:00Z"),
        status_changed("2026-05-05T10:00:00Z", "major_outage"),
        status_changed("2026-05-05T11:00:00Z", "operational"),
        until="2026-07-01T00:00:00Z",
    )
    months = ["2026-03", "2026-04", "2026-05", "2026-06"]
    # portal had its first event in May: March and April are reported too, whole and quiet
    assert reports(outputs, "portal") == [("portal", m) for m in months]
    assert reports(outputs, "seasonal") == [("seasonal", m) for m in months]
    # office-app is in Berlin: its June ends at 22:00 UTC on June 30, before `until`
    assert reports(outputs, "office-app") == [("office-app", m) for m in months]
    portal = {
        o["period"]: o
        for o in outputs
        if o["type"] == "sla.availability_report" and o["service_id"] == "portal"
    }
    assert (portal["2026-03"]["uptime_percent"], portal["2026-03"]["met"]) == ("100.0000", True)
    assert portal["2026-03"]["period_start"] == "2026-03-01T00:00:00Z"  # the whole month
    assert portal["2026-05"]["downtime_seconds"] == 3600


def test_reports_at_one_instant_come_in_service_order_like_any_timer() -> None:
    outputs = replayed(ticket_created("2026-04-10T09:00:00Z"), until=JUN_1)
    at_may_1 = [
        o["service_id"]
        for o in outputs
        if o["type"] == "sla.availability_report" and o["at"] == "2026-05-01T00:00:00Z"
    ]
    assert at_may_1 == ["portal", "seasonal"]


def test_a_period_that_ends_exactly_at_the_first_input_is_not_reported() -> None:
    # the first input at 00:00 UTC on April 1: March (UTC) ends at that instant, not after it
    outputs = replayed(ticket_created("2026-04-01T00:00:00Z"), until=MAY_1)
    assert sorted(reports(outputs)) == [
        ("office-app", "2026-04"),  # Berlin's April began two hours before
        ("portal", "2026-04"),
        ("seasonal", "2026-04"),
    ]


def test_services_in_two_time_zones_report_their_own_months() -> None:
    # 23:00 UTC on April 30 is already May 1 in Berlin: office-app's April ended before it
    outputs = replayed(ticket_created("2026-04-30T23:00:00Z"), until=JUN_1)
    assert reports(outputs, "portal") == [("portal", "2026-04"), ("portal", "2026-05")]
    assert reports(outputs, "office-app") == [("office-app", "2026-05")]
    berlin = next(o for o in outputs if o.get("service_id") == "office-app")
    assert (berlin["period_start"], berlin["at"]) == (
        "2026-04-30T22:00:00Z",
        "2026-05-31T22:00:00Z",
    )


def test_without_any_input_nothing_is_reported() -> None:
    assert reports(replayed(until=JUN_1)) == []


# -- a stage of one partition, as live ------------------------------------------------------


def partition_stage(*owned: str, sources: tuple[str, ...] = ("tickets/0",)) -> ServiceStage:
    return ServiceStage(make_services(), {}, 0, sources=sources, owns=lambda s: s in owned)


def test_a_partition_without_events_reports_its_services_once_the_first_input_is_settled() -> None:
    stage = partition_stage("seasonal")
    assert stage.advance_to(parse_instant(JUN_1)) == []  # its clock alone proves nothing
    first = parse_instant("2026-04-10T09:00:00Z")
    # a ticket partition applied an input at `first` but has not fired through it yet
    assert stage.on_watermark("tickets/0", first - 2, first) == []
    caught_up = stage.on_watermark("tickets/0", first - 1, first)
    assert reports(caught_up) == [("seasonal", "2026-04"), ("seasonal", "2026-05")]
    expected = replayed(ticket_created("2026-04-10T09:00:00Z"), until=JUN_1)
    assert caught_up == [o for o in expected if o.get("service_id") == "seasonal"]


def test_the_first_input_is_not_settled_while_a_source_has_not_reported() -> None:
    stage = partition_stage("seasonal", sources=("tickets/0", "tickets/1"))
    stage.advance_to(parse_instant(JUN_1))
    first = parse_instant("2026-04-10T09:00:00Z")
    assert stage.on_watermark("tickets/0", parse_instant(JUN_1), first) == []
    assert stage.first_input is None
    assert reports(stage.on_watermark("tickets/1", parse_instant(JUN_1), None)) == [
        ("seasonal", "2026-04"),
        ("seasonal", "2026-05"),
    ]


def test_a_service_seen_before_the_first_input_settled_gets_the_quiet_months_before() -> None:
    stage = partition_stage(*SERVICES)
    event = decode_service_event(
        orjson.dumps(status_changed("2026-05-05T10:00:00Z", "degraded_performance"))
    )
    outputs = stage.on_event(event, parse_instant("2026-05-05T10:00:00Z"))
    assert outputs == []  # the tickets partition has not told it anything yet
    first = parse_instant("2026-03-15T09:00:00Z")
    outputs = stage.on_watermark("tickets/0", parse_instant("2026-05-05T00:00:00Z"), first)
    outputs += stage.advance_to(parse_instant(JUN_1))
    expected = replayed(
        ticket_created("2026-03-15T09:00:00Z"),
        status_changed("2026-05-05T10:00:00Z", "degraded_performance"),
        until=JUN_1,
    )
    for service in SERVICES:
        assert [o for o in outputs if o["service_id"] == service] == [
            o for o in expected if o.get("service_id") == service
        ]


def test_the_settled_instant_and_the_sources_survive_a_restore() -> None:
    stage = partition_stage("seasonal", sources=("tickets/0", "tickets/1"))
    stage.advance_to(parse_instant(MAY_1))
    first = parse_instant("2026-04-10T09:00:00Z")
    stage.on_watermark("tickets/0", parse_instant(MAY_1), first)
    restored = partition_stage("seasonal", sources=("tickets/0", "tickets/1"))
    restored.restore_meta(orjson.loads(orjson.dumps(stage.meta())))
    assert reports(restored.on_watermark("tickets/1", parse_instant(MAY_1), None)) == [
        ("seasonal", "2026-04")
    ]
