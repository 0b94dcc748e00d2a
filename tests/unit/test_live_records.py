"""The live pipeline's record headers: CloudEvents binary mode, built once per source."""

from __future__ import annotations

from typing import Any

from slaclock.processors.live.records import CloudEventsHeaders, cloudevents_headers

BREACH: dict[str, Any] = {
    "event_id": "5f0c1b9e-0000-5000-8000-000000000001",
    "type": "sla.breach",
    "at": "2026-03-02T09:15:00Z",
    "ticket_id": "T1",
}
COMPLETED: dict[str, Any] = {
    **BREACH,
    "event_id": "5f0c1b9e-0000-5000-8000-000000000002",
    "type": "sla.completed",
    "at": "2026-03-02T09:20:00.000001Z",
}


def test_cloudevents_headers_name_the_output_its_type_source_and_time_in_order() -> None:
    headers = CloudEventsHeaders("slaclock/app")
    assert headers(BREACH) == [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"5f0c1b9e-0000-5000-8000-000000000001"),
        ("ce_type", b"sla.breach"),
        ("ce_source", b"slaclock/app"),
        ("ce_time", b"2026-03-02T09:15:00Z"),
        ("content-type", b"application/json"),
    ]


def test_prebuilt_headers_are_those_built_per_record() -> None:
    headers = CloudEventsHeaders("slaclock/app")
    for output in (BREACH, COMPLETED, BREACH, COMPLETED):  # types remembered, not mixed up
        assert headers(output) == cloudevents_headers(output, "slaclock/app")  # type: ignore[arg-type]
