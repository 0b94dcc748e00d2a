"""Output events: warnings, breaches, completions, credits, statements and earn-backs.

These models describe what subscribers receive; the engine builds its outputs as plain
dicts on the hot path, and these models (and the exported JSON Schema) are the contract
those dicts must meet. Field names are fixed by the product contract.

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

from slaclock.schemas.common import GroupMetric, Metric, Priority
from slaclock.schemas.events import NonEmptyStr, UtcDatetime, require_type_field

__all__ = [
    "CENTS_PATTERN",
    "DECIMAL_PATTERN",
    "OutputEvent",
    "SlaBreach",
    "SlaCancelled",
    "SlaCompleted",
    "SlaCredit",
    "SlaCreditEarnedBack",
    "SlaGroupStatement",
    "SlaStatement",
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

PolicyVersionId = Annotated[
    NonEmptyStr | None,
    Field(
        description=(
            "The id of the policy version whose rules decided this output "
            "(docs/semantics.md: Policy changes). Every output slaclock writes has it; null "
            "only on records written before policy versions existed."
        )
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

    metric: Metric | GroupMetric  # type: ignore[assignment]
    priority: Priority = Field(description="The ticket's current priority.")
    cycle: Cycle
    policy_version: PolicyVersionId = None
    group: str | None = Field(
        default=None,
        description=(
            "The internal group of a group metric (group_response, group_resolution; "
            "docs/semantics.md: Groups); null on the customer metrics."
        ),
    )


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


class SlaCancelled(TicketOutputBase):
    """A tracked metric cycle that ended without an outcome; no statement counts it."""

    type: Literal["sla.cancelled"] = "sla.cancelled"
    reason: Literal["solved", "closed", "no_target", "hold_ended"] = Field(
        description=(
            "solved / closed: the ticket's status ended the cycle; no_target: a priority "
            "change left the metric without a target; hold_ended: a hold ended (group metrics)."
        )
    )
    elapsed_seconds: int | float = Field(ge=0, description="Counted time when it ended.")
    target_seconds: Seconds = Field(description="The target the cycle had when it ended.")
    breached: bool = Field(description="Whether the cycle had breached before it ended.")


Period = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class SlaCredit(BaseModel):
    """A service credit: for a ticket breach, or (`metric` "availability") for a service."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr = Field(description="Deterministic from the natural key.")
    type: Literal["sla.credit"] = "sla.credit"
    ticket_id: NonEmptyStr | None = Field(description="Null for an availability credit.")
    customer_id: NonEmptyStr
    tier: str
    metric: Metric | Literal["availability"]
    at: UtcDatetime = Field(description="The breach's instant (a service period's end).")
    period: Period = Field(description="Billing month YYYY-MM in the contract's time zone.")
    decided_at: UtcDatetime = Field(description="When the breach was decided; picks the period.")
    amount: Cents
    currency: CurrencyCode
    percent: DecimalString = Field(description="Percent of the monthly fee for this breach.")
    capped: bool = Field(description="True exactly when the amount was cut by the monthly cap.")
    period_total: Cents = Field(description="Credits of the period so far, this one included.")
    breach_event_id: NonEmptyStr
    service_id: NonEmptyStr | None = Field(
        default=None, description="The service of an availability credit; null for a ticket."
    )
    policy_version: PolicyVersionId = None


Compliance4 = Annotated[
    str,
    StringConstraints(pattern=r"^(0\.\d{4}|1\.0000)$"),
    Field(description='met / (met + breached), half-up to 4 places, e.g. "0.9583".'),
]


class MetricFigures(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    met: Annotated[int, Strict(), Field(ge=0)]
    breached: Annotated[int, Strict(), Field(ge=0)]
    compliance: Compliance4 | None = Field(description="Null when there is no outcome.")


class StatementMetrics(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    first_response: MetricFigures
    next_response: MetricFigures
    periodic_update: MetricFigures
    resolution: MetricFigures


class SlaStatement(BaseModel):
    """A customer's billing period closed: outcomes, compliance and credits."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr = Field(description="Deterministic from customer and period.")
    type: Literal["sla.statement"] = "sla.statement"
    customer_id: NonEmptyStr
    tier: str = Field(description="The contract's tier.")
    period: Period
    at: UtcDatetime = Field(description="The period's end: the next month's first instant.")
    period_start: UtcDatetime
    currency: CurrencyCode
    monthly_fee: Cents
    credits_total: Cents = Field(description="Sum of the period's credit amounts.")
    availability_credits_total: Cents = Field(description="The availability part of it.")
    credit_cap: Cents | None = Field(description="The contract's cap as an amount, or null.")
    credits: Annotated[int, Strict(), Field(ge=0)] = Field(
        description="How many sla.credit events the period has, capped ones included."
    )
    metrics: StatementMetrics
    overall: MetricFigures
    compliant: bool | None = Field(
        description="Overall compliance >= the earn-back minimum; null without earn-back."
    )
    policy_version: PolicyVersionId = None


class GroupStatementMetrics(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    group_response: MetricFigures
    group_resolution: MetricFigures


class SlaGroupStatement(BaseModel):
    """An internal group's month closed (docs/semantics.md: Groups): outcomes of the group
    metrics, holds begun and hand-offs, in the time zone of the group's calendar."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr = Field(description="Deterministic from group and period.")
    type: Literal["sla.group_statement"] = "sla.group_statement"
    group: NonEmptyStr
    period: Period
    at: UtcDatetime = Field(description="The period's end: the next month's first instant.")
    period_start: UtcDatetime
    metrics: GroupStatementMetrics
    overall: MetricFigures
    holds: Annotated[int, Strict(), Field(ge=0)] = Field(
        description="Holds begun in the period (a reopen's new cycle is not a hold)."
    )
    handoffs: Annotated[int, Strict(), Field(ge=0)] = Field(
        description="Holds ended in the period by an assignment to another group."
    )
    policy_version: PolicyVersionId = None


class SlaCreditEarnedBack(BaseModel):
    """A period's ticket credits returned after `months` compliant periods."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr = Field(description="Deterministic from customer and period.")
    type: Literal["sla.credit_earned_back"] = "sla.credit_earned_back"
    customer_id: NonEmptyStr
    tier: str
    period: Period = Field(description="The period whose credits are earned back.")
    at: UtcDatetime = Field(description="End of the last period of the earn-back window.")
    amount: Cents
    currency: CurrencyCode
    earned_through: Period
    months: Annotated[int, Strict(), Field(ge=1)]
    min_compliance: DecimalString
    policy_version: PolicyVersionId = None


OutputEvent = Annotated[
    SlaWarning
    | SlaBreach
    | SlaCompleted
    | SlaCancelled
    | SlaCredit
    | SlaStatement
    | SlaGroupStatement
    | SlaCreditEarnedBack,
    Field(discriminator="type"),
]

_OUTPUT_EVENT: TypeAdapter[OutputEvent] = TypeAdapter(OutputEvent)


def parse_output_event(raw: bytes | str) -> OutputEvent:
    """Validate one JSON-encoded output event. Raises `pydantic.ValidationError`."""
    return _OUTPUT_EVENT.validate_json(raw)
