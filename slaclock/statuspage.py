"""Atlassian Statuspage webhook payloads -> slaclock service events.

Statuspage sends two kinds of webhook notifications (its "Enable webhook notifications"
page documents both shapes):

- a **component update**: `component_update` with `old_status`, `new_status`, `created_at`,
  `id` and `component_id` (plus the whole `component`). It becomes one
  `service.status_changed` at `created_at`, with `event_id` "statuspage:<update id>" so a
  webhook delivered twice is dropped as a duplicate.
- an **incident**; a *scheduled maintenance* is an incident with `scheduled_for` and
  `scheduled_until`. For each affected component it becomes a `maintenance.scheduled`
  (`maintenance_id` = the incident id, announced at the incident's `updated_at`), so a
  rescheduled maintenance (same incident, new times) reschedules the window. Statuspage
  has no "cancelled" status; an incident whose `scheduled_until` is at or before its
  `scheduled_for` is refused. Ordinary incidents give nothing: the status changes they
  make arrive as component updates of their own.

Components map to service ids through `components` (component id or name -> service id);
without a mapping the component id is the service id. Components not in a non-empty
mapping are skipped (a page shows more than a contract covers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from slaclock.schemas.services import ServiceStatus, parse_service_event_obj

__all__ = ["Conversion", "StatuspageError", "convert_payload"]

STATUSES = frozenset(status.value for status in ServiceStatus)


class StatuspageError(ValueError):
    """A payload that is not a Statuspage notification this adapter understands."""


@dataclass
class Conversion:
    events: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why something gave no event


def _service(component: Mapping[str, Any], components: Mapping[str, str]) -> str | None:
    ident = str(component.get("id") or component.get("code") or component.get("component_id"))
    if not components:
        return ident
    return components.get(ident) or components.get(str(component.get("name")))


def _text(mapping: Mapping[str, Any], key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise StatuspageError(f"{where}.{key} is missing or not text")
    return value


def convert_payload(payload: object, components: Mapping[str, str] | None = None) -> Conversion:
    """The service events of one webhook payload (a decoded JSON object)."""
    components = components or {}
    if not isinstance(payload, Mapping):
        raise StatuspageError("a webhook payload is a JSON object")
    result = Conversion()
    update = payload.get("component_update")
    incident = payload.get("incident")
    if isinstance(update, Mapping):
        component = payload.get("component")
        if not isinstance(component, Mapping):
            component = {"id": update.get("component_id")}
        status = _text(update, "new_status", "component_update")
        if status not in STATUSES:
            raise StatuspageError(
                f"component_update.new_status {status!r} is not a Statuspage component status "
                f"({', '.join(sorted(STATUSES))})"
            )
        service = _service(component, components)
        if service is None:
            result.skipped.append(f"component {component.get('name') or component.get('id')}")
            return result
        result.events.append(
            _checked(
                {
                    "event_id": f"statuspage:{_text(update, 'id', 'component_update')}",
                    "type": "service.status_changed",
                    "service_id": service,
                    "occurred_at": _text(update, "created_at", "component_update"),
                    "status": status,
                }
            )
        )
        return result
    if isinstance(incident, Mapping):
        starts, ends = incident.get("scheduled_for"), incident.get("scheduled_until")
        if starts is None and ends is None:
            result.skipped.append("an incident that is not a scheduled maintenance")
            return result
        incident_id = _text(incident, "id", "incident")
        starts = _text(incident, "scheduled_for", "incident")
        ends = _text(incident, "scheduled_until", "incident")
        announced = incident.get("updated_at") or incident.get("created_at")
        if not isinstance(announced, str):
            raise StatuspageError("incident.updated_at is missing or not text")
        affected = incident.get("components")
        if not isinstance(affected, list) or not affected:
            raise StatuspageError("incident.components lists no affected component")
        for component in affected:
            if not isinstance(component, Mapping):
                continue
            service = _service(component, components)
            if service is None:
                result.skipped.append(f"component {component.get('name') or component.get('id')}")
                continue
            result.events.append(
                _checked(
                    {
                        "event_id": f"statuspage:{incident_id}:{announced}:{service}",
                        "type": "maintenance.scheduled",
                        "service_id": service,
                        "occurred_at": announced,
                        "maintenance_id": incident_id,
                        "starts_at": starts,
                        "ends_at": ends,
                    }
                )
            )
        return result
    raise StatuspageError(
        "neither a component update (component_update) nor an incident (incident)"
    )


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    """The event if it is a valid service event, else a `StatuspageError` saying why."""
    try:
        parse_service_event_obj(event)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"][1:]) or event["type"]
        raise StatuspageError(f"{where}: {problem['msg']}") from None
    return event
