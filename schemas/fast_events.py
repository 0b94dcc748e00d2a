"""The ticket events as the engine takes them: msgspec Structs, decoded straight from JSON.

pydantic (`schemas.events`) stays the schema of record: the JSON Schemas, the docs, the
SDK, and every rejection with its exact class and wording. These Structs mirror its models
field for field (same names, order and defaults; `type` is a class constant, the union's
tag; tests/unit/test_fast_decode.py checks the mirror) and are what the engine, replay and
the worker handle. `schemas.fast_decode.decode_fast(raw)` decodes one in C (a tagged
union on `type`, the same constraints as the models) with no pydantic object per event,
or returns None when it cannot vouch for pydantic's verdict; then
`schemas.rejection.decode_event` runs pydantic and converts an accepted model with
`from_model`, so both paths give equal Structs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Final

import msgspec

from slaclock.schemas.common import Priority, Status
from slaclock.schemas.events import (
    AgentReplied,
    Assigned,
    CustomerReplied,
    PriorityChanged,
    StatusChanged,
    TicketCreated,
    TicketEvent,
)

__all__ = [
    "AgentRepliedEvent",
    "AssignedEvent",
    "CustomerRepliedEvent",
    "EngineEvent",
    "PriorityChangedEvent",
    "StatusChangedEvent",
    "TicketCreatedEvent",
    "TicketEventStruct",
    "from_model",
]

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_Aware = Annotated[datetime, msgspec.Meta(tz=True)]


# Frozen (events are values) and untracked by the cyclic GC (they hold strings, enums
# and an instant: no cycles), so the per-event garbage costs the collector nothing.
class TicketEventStruct(msgspec.Struct, tag_field="type", frozen=True, gc=False):
    """Fields every ticket event carries; `occurred_at` is always in UTC."""

    type: ClassVar[str]
    event_id: _NonEmpty
    ticket_id: _NonEmpty
    occurred_at: _Aware


class TicketCreatedEvent(TicketEventStruct, tag="ticket.created", frozen=True, gc=False):
    type: ClassVar[str] = "ticket.created"
    customer_id: _NonEmpty
    priority: Priority
    tier: _NonEmpty | None = None
    status: Status = Status.NEW


class AgentRepliedEvent(TicketEventStruct, tag="ticket.agent_replied", frozen=True, gc=False):
    type: ClassVar[str] = "ticket.agent_replied"
    public: bool = True


class CustomerRepliedEvent(TicketEventStruct, tag="ticket.customer_replied", frozen=True, gc=False):
    type: ClassVar[str] = "ticket.customer_replied"


class StatusChangedEvent(TicketEventStruct, tag="ticket.status_changed", frozen=True, gc=False):
    type: ClassVar[str] = "ticket.status_changed"
    status: Status


class PriorityChangedEvent(TicketEventStruct, tag="ticket.priority_changed", frozen=True, gc=False):
    type: ClassVar[str] = "ticket.priority_changed"
    priority: Priority


class AssignedEvent(TicketEventStruct, tag="ticket.assigned", frozen=True, gc=False):
    type: ClassVar[str] = "ticket.assigned"
    assignee: str | None = None
    group: str | None = None


EngineEvent = (
    TicketCreatedEvent
    | AgentRepliedEvent
    | CustomerRepliedEvent
    | StatusChangedEvent
    | PriorityChangedEvent
    | AssignedEvent
)
"""A validated ticket event, as the engine takes it."""

STRUCTS: Final[dict[type[TicketEventStruct], type[TicketEvent]]] = {
    TicketCreatedEvent: TicketCreated,
    AgentRepliedEvent: AgentReplied,
    CustomerRepliedEvent: CustomerReplied,
    StatusChangedEvent: StatusChanged,
    PriorityChangedEvent: PriorityChanged,
    AssignedEvent: Assigned,
}
"""Each Struct and the pydantic model it mirrors."""

_BY_TYPE: Final[dict[str, type[TicketEventStruct]]] = {struct.type: struct for struct in STRUCTS}


def from_model(model: TicketEvent) -> EngineEvent:
    """The Struct of an event pydantic accepted (the same values; `occurred_at` in UTC)."""
    struct = _BY_TYPE[model.type]
    values = {name: getattr(model, name) for name in struct.__struct_fields__}
    event: EngineEvent = struct(**values)  # type: ignore[assignment]
    return event
