"""Statuspage webhook payloads (shaped like the documented ones) -> service events."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from slaclock.cli import app
from slaclock.processors.services_intake import decode_service_event
from slaclock.statuspage import StatuspageError, convert_payload

COMPONENT_UPDATE: dict[str, Any] = {
    "meta": {
        "unsubscribe": "http://mycompany.statuspage.io/?unsubscribe=zjcdb6727vmj",
        "documentation": "http://doers.statuspage.io/customer-notifications/webhooks/",
        "generated_at": "2026-04-10T08:00:00.498Z",
    },
    "page": {
        "id": "jb7j80lkgqvb",
        "status_indicator": "major",
        "status_description": "Partial System Outage",
    },
    "component": {
        "status": "partial_outage",
        "name": "Customer portal",
        "created_at": "2025-12-26T07:57:28.743Z",
        "updated_at": "2026-04-10T08:00:00.371Z",
        "position": 3,
        "description": None,
        "showcase": True,
        "id": "sqm6pl84wzjc",
        "page_id": "jb7j80lkgqvb",
        "group_id": None,
    },
    "component_update": {
        "old_status": "operational",
        "new_status": "partial_outage",
        "created_at": "2026-04-10T08:00:00.379Z",
        "component_type": "Component",
        "id": "nd963wv4j30b",
        "component_id": "sqm6pl84wzjc",
    },
}

SCHEDULED_MAINTENANCE: dict[str, Any] = {
    "meta": {
        "unsubscribe": "http://mycompany.statuspage.io/?unsubscribe=zjcdb6727vmj",
        "documentation": "http://doers.statuspage.io/customer-notifications/webhooks/",
    },
    "page": {
        "id": "jb7j80lkgqvb",
        "status_indicator": "none",
        "status_description": "All Systems Operational",
    },
    "incident": {
        "name": "Database upgrade",
        "status": "scheduled",
        "created_at": "2026-04-01T09:00:00.000Z",
        "updated_at": "2026-04-01T09:00:00.120Z",
        "monitoring_at": None,
        "resolved_at": None,
        "impact": "maintenance",
        "shortlink": "http://stspg.io/abc",
        "backfilled": False,
        "scheduled_for": "2026-04-15T02:00:00.000Z",
        "scheduled_until": "2026-04-15T04:00:00.000Z",
        "scheduled_remind_prior": True,
        "scheduled_auto_in_progress": True,
        "scheduled_auto_completed": True,
        "impact_override": None,
        "id": "p31zjtct2jer",
        "page_id": "jb7j80lkgqvb",
        "incident_updates": [
            {
                "status": "scheduled",
                "body": "We will upgrade the database.",
                "created_at": "2026-04-01T09:00:00.100Z",
                "affected_components": [
                    {
                        "code": "sqm6pl84wzjc",
                        "name": "Customer portal",
                        "old_status": "operational",
                        "new_status": "operational",
                    }
                ],
                "id": "upd1",
                "incident_id": "p31zjtct2jer",
            }
        ],
        "components": [
            {
                "status": "operational",
                "name": "Customer portal",
                "id": "sqm6pl84wzjc",
                "page_id": "jb7j80lkgqvb",
            },
            {"status": "operational", "name": "Status API", "id": "zvdm6f7gf76j"},
        ],
    },
}


def test_a_component_update_becomes_a_status_change_at_its_instant() -> None:
    events = convert_payload(COMPONENT_UPDATE, {"sqm6pl84wzjc": "portal"}).events
    assert events == [
        {
            "event_id": "statuspage:nd963wv4j30b",
            "type": "service.status_changed",
            "service_id": "portal",
            "occurred_at": "2026-04-10T08:00:00.379Z",
            "status": "partial_outage",
        }
    ]
    decode_service_event(orjson.dumps(events[0]))  # a valid service event


def test_without_a_mapping_the_component_id_is_the_service_id() -> None:
    [event] = convert_payload(COMPONENT_UPDATE).events
    assert event["service_id"] == "sqm6pl84wzjc"


def test_a_scheduled_maintenance_announces_a_window_for_each_mapped_component() -> None:
    conversion = convert_payload(SCHEDULED_MAINTENANCE, {"Customer portal": "portal"})
    assert conversion.events == [
        {
            "event_id": "statuspage:p31zjtct2jer:2026-04-01T09:00:00.120Z:portal",
            "type": "maintenance.scheduled",
            "service_id": "portal",
            "occurred_at": "2026-04-01T09:00:00.120Z",
            "maintenance_id": "p31zjtct2jer",
            "starts_at": "2026-04-15T02:00:00.000Z",
            "ends_at": "2026-04-15T04:00:00.000Z",
        }
    ]
    assert conversion.skipped == ["component Status API"]


def test_a_rescheduled_maintenance_keeps_its_id_so_it_reschedules_the_window() -> None:
    moved = copy.deepcopy(SCHEDULED_MAINTENANCE)
    moved["incident"]["updated_at"] = "2026-04-05T10:00:00Z"
    moved["incident"]["scheduled_until"] = "2026-04-15T05:00:00Z"
    first = convert_payload(SCHEDULED_MAINTENANCE, {"sqm6pl84wzjc": "portal"}).events[0]
    second = convert_payload(moved, {"sqm6pl84wzjc": "portal"}).events[0]
    assert first["maintenance_id"] == second["maintenance_id"]
    assert first["event_id"] != second["event_id"]
    assert second["ends_at"] == "2026-04-15T05:00:00Z"


def test_an_ordinary_incident_gives_no_event() -> None:
    incident = copy.deepcopy(SCHEDULED_MAINTENANCE)
    incident["incident"]["scheduled_for"] = incident["incident"]["scheduled_until"] = None
    conversion = convert_payload(incident)
    assert conversion.events == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["component_update"].update(new_status="down"), "not a Statuspage"),
        (lambda p: p.pop("component_update"), "neither a component update"),
        (lambda p: p["component_update"].update(created_at="2026-04-10T08:00:00"), "timezone"),
    ],
)
def test_payloads_that_cannot_be_converted_say_why(change: Any, message: str) -> None:
    payload = copy.deepcopy(COMPONENT_UPDATE)
    change(payload)
    with pytest.raises(StatuspageError, match=message):
        convert_payload(payload)


def test_a_maintenance_ending_before_it_starts_is_refused() -> None:
    payload = copy.deepcopy(SCHEDULED_MAINTENANCE)
    payload["incident"]["scheduled_until"] = "2026-04-15T01:00:00Z"
    with pytest.raises(StatuspageError, match="ends_at"):
        convert_payload(payload)


def test_the_command_converts_files_and_names_each_bad_payload(tmp_path: Path) -> None:
    good = tmp_path / "update.json"
    good.write_bytes(orjson.dumps(COMPONENT_UPDATE, option=orjson.OPT_INDENT_2))
    lines = tmp_path / "more.jsonl"
    lines.write_bytes(orjson.dumps(SCHEDULED_MAINTENANCE) + b"\n" + b'{"page": {}}\n')
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "services",
            "ingest-statuspage",
            str(good),
            str(lines),
            "-c",
            "sqm6pl84wzjc=portal",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1
    assert f"{lines}:2: neither a component update" in result.output
    assert "1 payload not understood" in result.output
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [e["type"] for e in events] == ["service.status_changed", "maintenance.scheduled"]


def test_a_malformed_component_mapping_is_a_usage_error(tmp_path: Path) -> None:
    good = tmp_path / "update.json"
    good.write_bytes(orjson.dumps(COMPONENT_UPDATE))
    result = CliRunner().invoke(
        app, ["services", "ingest-statuspage", str(good), "--component", "portal"]
    )
    assert result.exit_code == 2
    assert "COMPONENT=SERVICE" in result.output
