"""JSON Schemas of the wire formats, for publishers, subscribers and editors.

The exported files are committed under `schemas/json/`; a unit test fails when they
drift from the models (regenerate with `slaclock schemas export schemas/json`).
Output is deterministic: sorted keys, two-space indent, trailing newline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from slaclock.schemas.availability import AvailabilityEvent
from slaclock.schemas.events import TicketEvent
from slaclock.schemas.outputs import OutputEvent
from slaclock.schemas.policy import Contract, Policy
from slaclock.schemas.policy_versions import PolicyPublication
from slaclock.schemas.services import ServiceEvent

__all__ = ["SCHEMA_FILES", "export_json_schemas", "json_schemas", "render_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document, in export order."""
    documents: dict[str, tuple[str, str, dict[str, Any]]] = {
        "ticket-event.schema.json": (
            "Ticket event",
            "An input record value on topic tickets.events (key: ticket_id).",
            TypeAdapter(TicketEvent).json_schema(),
        ),
        "output-event.schema.json": (
            "SLA output event",
            "A record value on sla.warnings, sla.breaches, sla.completions or sla.credits.",
            TypeAdapter(OutputEvent).json_schema(),
        ),
        "policy.schema.json": (
            "slaclock policy",
            "The policy file (YAML): calendars, tiers and customer contracts.",
            Policy.model_json_schema(),
        ),
        "contract.schema.json": (
            "Customer contract",
            "A record value on topic sla.contracts (key: customer_id).",
            Contract.model_json_schema(),
        ),
        "policy-version.schema.json": (
            "Policy version",
            "A record value on topic sla.policies (key: the version id), written by "
            "`slaclock policy publish`; in a replay file the same fields with "
            '`"type": "policy.changed"` and `occurred_at`.',
            PolicyPublication.model_json_schema(),
        ),
        "service-event.schema.json": (
            "Service event",
            "An input record value on topic services.events (key: service_id).",
            TypeAdapter(ServiceEvent).json_schema(),
        ),
        "availability-event.schema.json": (
            "Availability output event",
            "A record value on topic sla.availability (key: service_id).",
            TypeAdapter(AvailabilityEvent).json_schema(),
        ),
    }
    result: dict[str, dict[str, Any]] = {}
    for name, (title, description, schema) in documents.items():
        result[name] = {
            "$schema": _DIALECT,
            **schema,
            "title": title,
            "description": description,
        }
    return result


SCHEMA_FILES: tuple[str, ...] = (
    "ticket-event.schema.json",
    "output-event.schema.json",
    "policy.schema.json",
    "contract.schema.json",
    "policy-version.schema.json",
    "service-event.schema.json",
    "availability-event.schema.json",
)


def render_schema(schema: dict[str, Any]) -> str:
    """The exact text written for a schema (also used to compare committed files)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_json_schemas(directory: Path) -> list[Path]:
    """Write every schema into `directory` (created if needed); return the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(render_schema(schema), encoding="utf-8")
        written.append(path)
    return written
