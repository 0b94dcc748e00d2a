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
import yaml

from slaclock.processors.engine.availability import ServiceState
from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import parse_instant, to_us
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.engine.services_stage import ServiceStage
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.policy_versions import take_policy_change
from slaclock.processors.replay import replay
from slaclock.processors.services_intake import decode_service_event
from slaclock.schemas.policy import parse_policy
from slaclock.schemas.policy_versions import parse_policy_changed
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


# -- a service a policy version adds (docs/availability.md: Quiet services) -----------------------

STATUS_PAGE = {"timezone": "America/New_York", "target": "99.9"}  # New York months
SEARCH = {"timezone": "UTC", "target": "99"}
JUL_1_NOON = "2026-07-01T12:00:00Z"


def with_services(**added: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SERVICES_YAML)
    doc.pop("customers")
    doc["services"].update(added)
    return doc


def version_line(
    at: str, version: str, doc: dict[str, Any], effective_at: str | None = None
) -> dict[str, Any]:
    line = {"type": "policy.changed", "event_id": f"pv{version}", "occurred_at": at,
            "version": version, "policy": doc}  # fmt: skip
    if effective_at is not None:
        line["effective_at"] = effective_at
    return line


ADDING = (
    ticket_created("2026-04-10T09:00:00Z"),
    # version 2, in force from 2026-04-20T10:00Z, adds status-page: its first New York
    # month that begins at or after that is May (2026-05-01T04:00Z)
    version_line("2026-04-20T10:00:00Z", "2", with_services(**{"status-page": STATUS_PAGE})),
    # version 3 adds search from exactly a UTC month start
    version_line(
        "2026-04-21T00:00:00Z",
        "3",
        with_services(**{"status-page": STATUS_PAGE, "search": SEARCH}),
        effective_at="2026-06-01T00:00:00Z",
    ),
    status_changed("2026-04-25T00:00:00Z", "major_outage", service="status-page"),  # too early
    status_changed("2026-05-10T00:00:00Z", "major_outage", service="status-page"),
    status_changed("2026-05-10T01:00:00Z", "operational", service="status-page"),
)


def replayed_with_rejections(
    *events: dict[str, Any], until: str
) -> tuple[list[dict[str, Any]], list[str]]:
    outputs: list[dict[str, Any]] = []
    rejected: list[str] = []
    policy = compile_policy(parse_policy(SERVICES_YAML, "services-policy.yaml"))
    lines = [orjson.dumps(e) for e in events]
    replay(
        policy,
        lines,
        outputs.append,
        lambda r: rejected.append(f"{r.error_class}: {r.message}"),
        parse_instant(until),
    )
    return outputs, rejected


def test_a_service_a_version_adds_is_reported_from_its_first_period_starting_at_or_after_p() -> (
    None
):
    outputs, rejected = replayed_with_rejections(*ADDING, until=JUL_1_NOON)
    added = [
        (o["service_id"], o["period"], o["policy_version"], o["downtime_seconds"])
        for o in outputs
        if o["type"] == "sla.availability_report" and o["service_id"] in ("status-page", "search")
    ]
    assert added == [
        ("status-page", "2026-05", "2", 3600),  # ends 2026-06-01T04:00Z
        ("search", "2026-06", "3", 0),  # from exactly its P; ends 2026-07-01T00:00Z
        ("status-page", "2026-06", "3", 0),
    ]
    # the services of the first version are reported from April as before
    assert reports(outputs, "portal") == [
        ("portal", "2026-04"),
        ("portal", "2026-05"),
        ("portal", "2026-06"),
    ]
    assert rejected == [
        "UnknownService: service 'status-page' is defined from 2026-05-01T04:00:00Z (the "
        "first period that begins after the policy version adding it took effect); an event "
        "before that has no period to count in"
    ]


def test_a_partition_stage_reports_a_service_a_version_adds_as_replay_does() -> None:
    first = compile_policy(parse_policy(SERVICES_YAML, "services-policy.yaml"))
    book = PolicyBook(first)
    for line in ADDING[1:3]:
        publication = parse_policy_changed(orjson.dumps(line))
        take_policy_change(
            book, ContractBook.from_policy(first, book), publication, to_us(publication.occurred_at)
        )

    def stage(store: dict[str, Any]) -> ServiceStage:
        return ServiceStage(
            make_services(),
            store,
            0,
            sources=("tickets/0",),
            owns=lambda s: s == "status-page",
            versions=book,
        )

    live = stage({})
    ticket_at = parse_instant("2026-04-10T09:00:00Z")
    outputs = live.on_watermark("tickets/0", ticket_at, ticket_at)
    outputs += live.advance_to(parse_instant("2026-04-30T00:00:00Z"))  # past version 2's P
    assert "status-page" in live.store
    # a restart: the partition's meta record and its states
    restored = stage(
        {k: ServiceState.from_record(orjson.loads(orjson.dumps(v.to_record())))
         for k, v in live.store.items()}
    )  # fmt: skip
    restored.restore_meta(orjson.loads(orjson.dumps(live.meta())))
    restored.rebuild_timers()
    assert restored.versions_taken == {"1", "2"}
    outputs += restored.advance_to(parse_instant(JUL_1_NOON))
    expected, _ = replayed_with_rejections(
        *[e for e in ADDING if e.get("service_id") != "status-page"], until=JUL_1_NOON
    )
    assert [o for o in outputs if o.get("service_id") == "status-page"] == [
        o for o in expected if o.get("service_id") == "status-page"
    ]
    assert reports(outputs) == [("status-page", "2026-05"), ("status-page", "2026-06")]
