"""Output events of the services stage, on `sla.availability` (key: service_id).

- `sla.availability_warning`: downtime reached a fraction of the period's budget;
- `sla.availability_breach`: the first instant downtime exceeded the budget;
- `sla.availability_report`: the period's figures at its end (`at` = the period end).

Durations are JSON numbers of seconds: integers when whole, else with microsecond
precision. Percents are decimal strings. Unknown fields are ignored when parsing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from slaclock.schemas.events import NonEmptyStr, UtcDatetime, require_type_field
from slaclock.schemas.outputs import DecimalString

__all__ = [
    "AvailabilityBreach",
    "AvailabilityEvent",
    "AvailabilityReport",
    "AvailabilityWarning",
    "parse_availability_event",
]

PeriodText = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
Seconds = Annotated[int | float, Field(ge=0)]


class AvailabilityBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr = Field(description="Deterministic from the natural key.")
    type: str  # narrowed to a literal by each event class; declared here to come first
    service_id: NonEmptyStr
    period: PeriodText = Field(description="Month YYYY-MM in the service's time zone.")
    at: UtcDatetime = Field(description="The instant of the fact, not of its detection.")
    target_percent: DecimalString
    budget_seconds: Seconds = Field(description="Downtime the period allows (rounded down).")
    policy_version: NonEmptyStr | None = Field(
        default=None,
        description=(
            "The id of the policy version whose service terms the period runs under "
            "(docs/semantics.md: Policy changes). Every output slaclock writes has it; null "
            "only on records written before policy versions existed."
        ),
    )


class AvailabilityWarning(AvailabilityBase):
    type: Literal["sla.availability_warning"] = "sla.availability_warning"
    threshold: Annotated[float, Field(gt=0, lt=1)] = Field(description="Fraction of the budget.")
    downtime_seconds: Seconds


class AvailabilityBreach(AvailabilityBase):
    type: Literal["sla.availability_breach"] = "sla.availability_breach"
    downtime_seconds: Seconds


class AvailabilityReport(AvailabilityBase):
    type: Literal["sla.availability_report"] = "sla.availability_report"
    period_start: UtcDatetime
    measured_seconds: Seconds = Field(description="Working time of the service's calendar.")
    downtime_seconds: Seconds = Field(description="Weighted downtime (rounded up).")
    excused_seconds: Seconds = Field(description="Working time inside excused maintenance.")
    uptime_percent: DecimalString = Field(description="Rounded down to 4 places.")
    met: bool
    credit_percent: DecimalString | None = Field(
        description="Percent of the monthly fee the period's band credits, null when none."
    )


AvailabilityEvent = Annotated[
    AvailabilityWarning | AvailabilityBreach | AvailabilityReport,
    Field(discriminator="type"),
]

_AVAILABILITY_EVENT: TypeAdapter[AvailabilityEvent] = TypeAdapter(AvailabilityEvent)


def parse_availability_event(raw: bytes | str) -> AvailabilityEvent:
    """Validate one JSON-encoded availability output. Raises `pydantic.ValidationError`."""
    return _AVAILABILITY_EVENT.validate_json(raw)
