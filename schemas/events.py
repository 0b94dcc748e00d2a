"""Input: ticket lifecycle events on `tickets.events` (docs/semantics.md: Inputs).

`parse_ticket_event` is on the replay/stream hot path (100k+ events/s), so validation is
left to pydantic-core built-ins: a discriminated union picks the model from `type` in one
lookup, `AwareDatetime` refuses naive times, and the only Python code that runs per event
is the conversion of `occurred_at` to UTC.

Strictness follows the wire contract, not Python convenience: `occurred_at` must be an
RFC 3339 string (a bare number is not a timestamp here) and `public` a JSON boolean.
Unknown fields are ignored so publishers can add fields without breaking consumers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    TypeAdapter,
)

from slaclock.schemas.common import Priority, Status

__all__ = [
    "AgentReplied",
    "Assigned",
    "CustomerReplied",
    "NonEmptyStr",
    "PriorityChanged",
    "StatusChanged",
    "TicketCreated",
    "TicketEvent",
    "TicketEventBase",
    "UtcDatetime",
    "format_utc",
    "parse_ticket_event",
    "parse_ticket_event_obj",
    "require_type_field",
]


def _to_utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:30:00+01:00: before the first UTC instant
        raise ValueError(
            "the instant is outside the range of UTC dates (years 1 to 9999)"
        ) from None


def format_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with `Z`; fractional seconds only when there are any.

    The same text the engine writes, so a parsed and re-serialised output is unchanged.
    """
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


UtcDatetime = Annotated[
    AwareDatetime,
    Strict(),
    AfterValidator(_to_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
"""An aware instant, normalised to UTC, written as RFC 3339 with `Z`.

Strict: on JSON input only an RFC 3339 string is accepted (no epoch numbers); from Python
only an aware `datetime`. A naive time fails with pydantic's `timezone_aware` error.
"""

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]


def require_type_field(schema: dict[str, Any]) -> None:
    """`type` has a default for convenience in code, but it is always on the wire."""
    required = schema.setdefault("required", [])
    if "type" not in required:
        required.insert(0, "type")


class TicketEventBase(BaseModel):
    """Fields every ticket event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=require_type_field)

    event_id: NonEmptyStr
    type: str  # narrowed to a literal by each event class; declared here to come first
    ticket_id: NonEmptyStr
    occurred_at: UtcDatetime


class TicketCreated(TicketEventBase):
    type: Literal["ticket.created"] = "ticket.created"
    customer_id: NonEmptyStr
    priority: Priority
    tier: NonEmptyStr | None = None
    status: Status = Status.NEW


class AgentReplied(TicketEventBase):
    type: Literal["ticket.agent_replied"] = "ticket.agent_replied"
    public: Annotated[bool, Strict()] = True


class CustomerReplied(TicketEventBase):
    type: Literal["ticket.customer_replied"] = "ticket.customer_replied"


class StatusChanged(TicketEventBase):
    type: Literal["ticket.status_changed"] = "ticket.status_changed"
    status: Status


class PriorityChanged(TicketEventBase):
    type: Literal["ticket.priority_changed"] = "ticket.priority_changed"
    priority: Priority


class Assigned(TicketEventBase):
    type: Literal["ticket.assigned"] = "ticket.assigned"
    assignee: str | None = None
    group: str | None = None


TicketEvent = Annotated[
    TicketCreated | AgentReplied | CustomerReplied | StatusChanged | PriorityChanged | Assigned,
    Field(discriminator="type"),
]

_TICKET_EVENT: TypeAdapter[TicketEvent] = TypeAdapter(TicketEvent)


def parse_ticket_event(raw: bytes | str) -> TicketEvent:
    """Validate one JSON-encoded event. Raises `pydantic.ValidationError` (also for bad JSON)."""
    return _TICKET_EVENT.validate_json(raw)


def parse_ticket_event_obj(obj: dict[str, Any]) -> TicketEvent:
    """Validate an already decoded event with exactly the wire rules of `parse_ticket_event`.

    The object is re-encoded rather than validated in Python mode, where strict fields
    would refuse the timestamp strings JSON decoders produce. Raises
    `pydantic.ValidationError`; a value JSON cannot encode raises `TypeError`.
    """
    return _TICKET_EVENT.validate_json(orjson.dumps(obj))
