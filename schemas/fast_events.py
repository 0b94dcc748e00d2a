"""The fast path of input decoding: msgspec accepts the common case, pydantic decides the rest.

`decode_fast(raw)` returns the very event `parse_ticket_event(raw)` would (the same
pydantic model class, field values, field order and set of fields given), or None when it
cannot vouch for that: then the caller runs the pydantic path, which stays the schema of
record and the only source of rejections, so every rejected record keeps its exact error
class and wording. msgspec decodes the JSON into Structs (a tagged union on `type`, the
same constraints as the models) about ten times faster than `validate_json`; the event is
then built from the decoded values without validating them twice.

Where msgspec and pydantic disagree on an input both accept, the fast path steps aside
before decoding (each case has a test in tests/unit/test_fast_decode.py, and a hypothesis
differential test compares both paths on random valid and invalid records):
- more than 6 fractional digits in a timestamp: msgspec rounds, pydantic truncates;
- bytes that are not UTF-8 (inside a string msgspec does not check them).
The other known differences are inputs msgspec refuses and pydantic accepts (an epoch
inside a string, `HH:MMZ` without seconds, a comma before the fraction, `NaN` or
`Infinity` in an unknown field, a repeated `type`): refused here, they take the pydantic
path too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from pydantic import BaseModel

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

__all__ = ["decode_fast"]

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_Aware = Annotated[datetime, msgspec.Meta(tz=True)]
_UNSET: Any = msgspec.UNSET


class _Base(msgspec.Struct, tag_field="type"):
    event_id: _NonEmpty
    ticket_id: _NonEmpty
    occurred_at: _Aware


class _Created(_Base, tag="ticket.created"):
    customer_id: _NonEmpty
    priority: Priority
    tier: _NonEmpty | msgspec.UnsetType | None = _UNSET
    status: Status | msgspec.UnsetType = _UNSET


class _AgentReplied(_Base, tag="ticket.agent_replied"):
    public: bool | msgspec.UnsetType = _UNSET


class _CustomerReplied(_Base, tag="ticket.customer_replied"):
    pass


class _StatusChanged(_Base, tag="ticket.status_changed"):
    status: Status


class _PriorityChanged(_Base, tag="ticket.priority_changed"):
    priority: Priority


class _Assigned(_Base, tag="ticket.assigned"):
    assignee: str | msgspec.UnsetType | None = _UNSET
    group: str | msgspec.UnsetType | None = _UNSET


_Struct = (
    _Created | _AgentReplied | _CustomerReplied | _StatusChanged | _PriorityChanged | _Assigned
)
_DECODER = msgspec.json.Decoder(_Struct)

# struct class -> (model class, its `type`, [(field, default or _REQUIRED)] in model order)
_REQUIRED: Any = object()
_PAIRS: tuple[tuple[type[_Base], type[BaseModel]], ...] = (
    (_Created, TicketCreated),
    (_AgentReplied, AgentReplied),
    (_CustomerReplied, CustomerReplied),
    (_StatusChanged, StatusChanged),
    (_PriorityChanged, PriorityChanged),
    (_Assigned, Assigned),
)


def _layout(model: type[BaseModel]) -> list[tuple[str, Any]]:
    return [
        (name, _REQUIRED if info.is_required() else info.default)
        for name, info in model.model_fields.items()
    ]


_MODELS: dict[type[_Base], tuple[type[BaseModel], str, list[tuple[str, Any]]]] = {
    struct: (model, struct.__struct_config__.tag, _layout(model))  # type: ignore[misc]
    for struct, model in _PAIRS
}


def _builder(model: type[BaseModel], tag: str, layout: list[tuple[str, Any]]) -> Any:
    """`build(struct, occurred_at) -> model instance`, specialised to one model: what
    `model_construct` does (values in field order, the set of fields given, no extra and
    no private attributes), at a third of the cost of a loop over the fields."""
    given = [name for name, default in layout if default is _REQUIRED or name == "type"]
    lines = ["def build(s, occurred_at):", f"    given = {set(given)!r}"]
    values = []
    namespace: dict[str, Any] = {"UNSET": _UNSET, "new": object.__new__, "put": object.__setattr__}
    namespace["Model"] = model
    for index, (name, default) in enumerate(layout):
        if name == "type":
            values.append(f"{name!r}: {tag!r}")
        elif name == "occurred_at":
            values.append(f"{name!r}: occurred_at")
        elif default is _REQUIRED:
            values.append(f"{name!r}: s.{name}")
        else:
            namespace[f"default_{index}"] = default
            lines += [
                f"    v{index} = s.{name}",
                f"    if v{index} is UNSET:",
                f"        v{index} = default_{index}",
                "    else:",
                f"        given.add({name!r})",
            ]
            values.append(f"{name!r}: v{index}")
    lines += [
        "    event = new(Model)",
        f"    put(event, '__dict__', {{{', '.join(values)}}})",
        "    put(event, '__pydantic_fields_set__', given)",
        "    put(event, '__pydantic_extra__', None)",
        "    put(event, '__pydantic_private__', None)",
        "    return event",
    ]
    exec("\n".join(lines), namespace)
    return namespace["build"]


_BUILD: dict[type[_Base], Any] = {
    struct: _builder(model, tag, layout) for struct, (model, tag, layout) in _MODELS.items()
}

_LONG_FRACTION = re.compile(rb"\.[0-9]{7}")


def decode_fast(raw: bytes | str) -> TicketEvent | None:
    """The event `parse_ticket_event(raw)` returns, or None: decide with pydantic."""
    if isinstance(raw, str):
        if not raw.isascii():
            return None
        data = raw.encode()
    else:
        data = raw
        if not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:
                return None
    if _LONG_FRACTION.search(data) is not None:
        return None
    try:
        struct = _DECODER.decode(data)
        occurred_at = struct.occurred_at
        if occurred_at.tzinfo is not UTC:
            occurred_at = occurred_at.astimezone(UTC)
    except (msgspec.DecodeError, OverflowError):  # ValidationError is a DecodeError
        return None
    event: TicketEvent = _BUILD[type(struct)](struct, occurred_at)
    return event
