"""Input: service status and maintenance events on `services.events` (key: service_id).

The same wire rules as ticket events (`schemas.events`): `type` picks the model, times are
RFC 3339 with an offset (naive times are refused), unknown fields are ignored.

- `service.status_changed`: the service's status from `occurred_at` on; the five statuses
  are those of an Atlassian Statuspage component.
- `maintenance.scheduled`: announces (or, with the same `maintenance_id`, reschedules) a
  maintenance window `[starts_at, ends_at)`; `ends_at` must be after `starts_at`.
- `maintenance.cancelled`: withdraws a window.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

from slaclock.schemas.events import NonEmptyStr, UtcDatetime, require_type_field

__all__ = [
    "MaintenanceCancelled",
    "MaintenanceScheduled",
    "ServiceEvent",
    "ServiceEventBase",
    "ServiceStatus",
    "ServiceStatusChanged",
    "is_service_event_type",
    "parse_service_event",
    "parse_service_event_obj",
]


class ServiceStatus(StrEnum):
    """Statuspage component statuses, from best to worst (plus maintenance)."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"


class ServiceEventBase(BaseModel):
    """Fields every service event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr
    type: str  # narrowed to a literal by each event class; declared here to come first
    service_id: NonEmptyStr
    occurred_at: UtcDatetime


class ServiceStatusChanged(ServiceEventBase):
    type: Literal["service.status_changed"] = "service.status_changed"
    status: ServiceStatus


class MaintenanceScheduled(ServiceEventBase):
    type: Literal["maintenance.scheduled"] = "maintenance.scheduled"
    maintenance_id: NonEmptyStr
    starts_at: UtcDatetime
    ends_at: UtcDatetime = Field(description="Exclusive end of the window; after starts_at.")

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise PydanticCustomError(
                "window_order",
                "ends_at {ends} is not after starts_at {starts}",
                {"ends": self.ends_at.isoformat(), "starts": self.starts_at.isoformat()},
            )
        return self


class MaintenanceCancelled(ServiceEventBase):
    type: Literal["maintenance.cancelled"] = "maintenance.cancelled"
    maintenance_id: NonEmptyStr


ServiceEvent = Annotated[
    ServiceStatusChanged | MaintenanceScheduled | MaintenanceCancelled,
    Field(discriminator="type"),
]

SERVICE_EVENT_TYPES = frozenset(
    {"service.status_changed", "maintenance.scheduled", "maintenance.cancelled"}
)

_SERVICE_EVENT: TypeAdapter[ServiceEvent] = TypeAdapter(ServiceEvent)


def is_service_event_type(kind: object) -> bool:
    """True for the `type` of a service event (replay dispatches a mixed file on it)."""
    return kind in SERVICE_EVENT_TYPES


def parse_service_event(raw: bytes | str) -> ServiceEvent:
    """Validate one JSON-encoded event. Raises `pydantic.ValidationError` (also for bad JSON)."""
    return _SERVICE_EVENT.validate_json(raw)


def parse_service_event_obj(obj: dict[str, Any]) -> ServiceEvent:
    """Validate an already decoded event with exactly the wire rules of `parse_service_event`."""
    return _SERVICE_EVENT.validate_json(orjson.dumps(obj))
