"""Output events: warnings, breaches, completions and credits (SPEC 6).

These models describe what subscribers receive; the engine builds its outputs as plain
dicts on the hot path, and these models (and the exported JSON Schema) are the contract
those dicts must meet. Field names are fixed by SPEC 6.

- Times are aware instants normalised to UTC and written as RFC 3339 with `Z`.
- Money (`amount`, `period_total`) and `percent` are decimal *strings* on the wire, never
  JSON numbers; a float is refused when parsing.
- Unknown fields are ignored, so subscribers keep working when fields are added.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from schemas.common import Metric, Priority
from schemas.events import NonEmptyStr, UtcDatetime, require_type_field

__all__ = [
    "CENTS_PATTERN",
    "DECIMAL_PATTERN",
    "OutputEvent",
    "SlaBreach",
    "SlaCompleted",
    "SlaCredit",
    "SlaWarning",
    "parse_output_event",
]

CENTS_PATTERN = r"^\d+\.\d{2}$"
DECIMAL_PATTERN = r"^\d+(\.\d+)?$"


def _decimal_string(pattern: str, example: str) -> Any:
    """Validator: a decimal string matching `pattern` (or a Decimal that prints as one)."""
    compiled = re.compile(pattern)

    def check(value: object) -> Decimal:
        text = str(value) if isinstance(value, Decimal) else value
        if not isinstance(text, str):
            raise PydanticCustomError(
                "decimal_string",
                "expected a decimal string such as {example}",
                {"example": example},
            )
        if not compiled.match(text):
            raise PydanticCustomError(
                "decimal_string",
                "invalid decimal string {text!r}, expected e.g. {example}",
                {"text": text, "example": example},
            )
        return Decimal(text)

    return BeforeValidator(check)


Cents = Annotated[
    Decimal,
    _decimal_string(CENTS_PATTERN, '"300.00"'),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": CENTS_PATTERN, "description": 'Money, e.g. "300.00".'}
    ),
]
"""Money with exactly two decimal places, a JSON string."""

DecimalString = Annotated[
    Decimal,
    _decimal_string(DECIMAL_PATTERN, '"2.5"'),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": DECIMAL_PATTERN, "description": 'A decimal, e.g. "2.5".'}
    ),
]

Cycle = Annotated[int, Strict(), Field(ge=1)]
Seconds = Annotated[int, Strict(), Field(ge=1)]


class OutputBase(BaseModel):
    """Fields every output event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr = Field(description="Deterministic from the natural key.")
    type: str  # narrowed to a literal by each event class; declared here to come first
    ticket_id: NonEmptyStr
    customer_id: NonEmptyStr
    tier: str
    metric: Metric
    at: UtcDatetime = Field(description="The instant of the SLA fact, not of its detection.")


class TicketOutputBase(OutputBase):
    """Output events about one metric cycle of one ticket."""

    priority: Priority = Field(description="The ticket's current priority.")
    cycle: Cycle


class SlaWarning(TicketOutputBase):
    type: Literal["sla.warning"] = "sla.warning"
    threshold: Annotated[float, Field(gt=0, lt=1)] = Field(description="Fraction of the target.")
    deadline: UtcDatetime = Field(description="Projected deadline if nothing pauses.")
    target_seconds: Seconds


class SlaBreach(TicketOutputBase):
    type: Literal["sla.breach"] = "sla.breach"
    deadline: UtcDatetime = Field(description="The deadline; equal to `at`.")
    decided_at: UtcDatetime = Field(
        description="The later of `at` and the input that caused the breach; orders credits."
    )
    target_seconds: Seconds


class SlaCompleted(TicketOutputBase):
    type: Literal["sla.completed"] = "sla.completed"
    outcome: Literal["met", "breached"]
    elapsed_seconds: int | float = Field(ge=0, description="Counted time, in seconds.")
    target_seconds: Seconds


class SlaCredit(OutputBase):
    type: Literal["sla.credit"] = "sla.credit"
    period: Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = Field(
        description="Billing month YYYY-MM in the contract's time zone."
    )
    amount: Cents
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    percent: DecimalString = Field(description="Percent of the monthly fee for this breach.")
    capped: bool = Field(description="True exactly when the amount was cut by the monthly cap.")
    period_total: Cents = Field(description="Credits of the period so far, this one included.")
    breach_event_id: NonEmptyStr


OutputEvent = Annotated[
    SlaWarning | SlaBreach | SlaCompleted | SlaCredit,
    Field(discriminator="type"),
]

_OUTPUT_EVENT: TypeAdapter[OutputEvent] = TypeAdapter(OutputEvent)


def parse_output_event(raw: bytes | str) -> OutputEvent:
    """Validate one JSON-encoded output event. Raises `pydantic.ValidationError`."""
    return _OUTPUT_EVENT.validate_json(raw)
