"""Availability outputs as the engine builds them validate against their pydantic models."""

from __future__ import annotations

import orjson

from slaclock.schemas.availability import (
    AvailabilityBreach,
    AvailabilityReport,
    AvailabilityWarning,
    parse_availability_event,
)
from slaclock.schemas.export import json_schemas
from tests.core.service_builders import MAY_1, ServiceHarness, T, plus, status_changed

MODELS = {
    "sla.availability_warning": AvailabilityWarning,
    "sla.availability_breach": AvailabilityBreach,
    "sla.availability_report": AvailabilityReport,
}


def test_every_engine_output_parses_into_its_model_and_back_unchanged() -> None:
    h = ServiceHarness().feed(
        status_changed(T, "major_outage"),
        status_changed(plus(T, 1), "partial_outage"),
        status_changed(plus(T, 60 * 3_600_000_000), "operational"),
    )
    outputs = h.until(MAY_1).outputs
    assert {o["type"] for o in outputs} == set(MODELS)
    for output in outputs:
        parsed = parse_availability_event(orjson.dumps(output))
        assert isinstance(parsed, MODELS[output["type"]])
        assert orjson.loads(parsed.model_dump_json()) == output


def test_the_exported_schemas_list_the_service_events_and_availability_outputs() -> None:
    schemas = json_schemas()
    inputs = schemas["service-event.schema.json"]["discriminator"]["mapping"]
    assert set(inputs) == {
        "service.status_changed",
        "maintenance.scheduled",
        "maintenance.cancelled",
    }
    outputs = schemas["availability-event.schema.json"]["discriminator"]["mapping"]
    assert set(outputs) == set(MODELS)
