"""Input event parsing (docs/semantics.md: Inputs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from slaclock.schemas.common import Priority, Status
from slaclock.schemas.events import (
    AgentReplied,
    Assigned,
    CustomerReplied,
    PriorityChanged,
    StatusChanged,
    TicketCreated,
    parse_ticket_event,
    parse_ticket_event_obj,
)

BASE = {"event_id": "e-1", "ticket_id": "T-1", "occurred_at": "2026-03-02T09:00:00Z"}


def raw(type_: str, **fields: Any) -> str:
    return json.dumps({**BASE, "type": type_, **fields})


def error_types(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {e["type"] for e in exc.value.errors()}


@pytest.mark.parametrize(
    ("type_", "fields", "cls"),
    [
        ("ticket.created", {"customer_id": "acme", "priority": "urgent"}, TicketCreated),
        ("ticket.agent_replied", {"public": False}, AgentReplied),
        ("ticket.customer_replied", {}, CustomerReplied),
        ("ticket.status_changed", {"status": "on_hold"}, StatusChanged),
        ("ticket.priority_changed", {"priority": "low"}, PriorityChanged),
        ("ticket.assigned", {"assignee": "ana", "group": "l2"}, Assigned),
    ],
)
def test_every_event_type_parses_to_its_model(
    type_: str, fields: dict[str, Any], cls: type[Any]
) -> None:
    event = parse_ticket_event(raw(type_, **fields))
    assert type(event) is cls
    assert event.type == type_
    assert event.event_id == "e-1"
    assert event.ticket_id == "T-1"
    for name, value in fields.items():
        assert getattr(event, name) == value


def test_created_defaults_status_new_and_no_tier() -> None:
    event = parse_ticket_event(raw("ticket.created", customer_id="acme", priority="high"))
    assert isinstance(event, TicketCreated)
    assert event.status is Status.NEW
    assert event.tier is None
    assert event.priority is Priority.HIGH


def test_created_accepts_tier_and_initial_status() -> None:
    event = parse_ticket_event(
        raw("ticket.created", customer_id="acme", priority="low", tier="premium", status="open")
    )
    assert isinstance(event, TicketCreated)
    assert (event.tier, event.status) == ("premium", Status.OPEN)


def test_agent_reply_is_public_by_default() -> None:
    event = parse_ticket_event(raw("ticket.agent_replied"))
    assert isinstance(event, AgentReplied)
    assert event.public is True


def test_assigned_fields_are_optional() -> None:
    event = parse_ticket_event(raw("ticket.assigned"))
    assert isinstance(event, Assigned)
    assert (event.assignee, event.group) == (None, None)


def test_unknown_extra_fields_are_ignored() -> None:
    event = parse_ticket_event(
        raw("ticket.customer_replied", channel="email", nested={"a": [1, 2]}, public=False)
    )
    assert isinstance(event, CustomerReplied)
    assert "channel" not in event.model_dump()


def test_parses_bytes_as_well_as_text() -> None:
    event = parse_ticket_event(raw("ticket.customer_replied").encode())
    assert isinstance(event, CustomerReplied)


def test_naive_timestamp_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_ticket_event(raw("ticket.customer_replied", occurred_at="2026-03-02T09:00:00"))
    assert error_types(exc) == {"timezone_aware"}
    assert "occurred_at" in str(exc.value)
    assert "timezone" in str(exc.value)


def test_an_instant_before_the_first_utc_date_is_a_validation_error_not_a_crash() -> None:
    # 00:30 on 1 January of year 1 at +01:00 is in year 0 in UTC, which datetime cannot hold
    with pytest.raises(ValidationError) as exc:
        parse_ticket_event(raw("ticket.customer_replied", occurred_at="0001-01-01T00:30:00+01:00"))
    assert "outside the range of UTC dates" in str(exc.value)


@pytest.mark.parametrize("value", [1772442000, "yesterday", "2026-03-02", None])
def test_occurred_at_must_be_an_rfc3339_string_with_offset(value: object) -> None:
    with pytest.raises(ValidationError):
        parse_ticket_event(raw("ticket.customer_replied", occurred_at=value))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T09:00:00Z", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
        ("2026-03-02T09:00:00+02:00", datetime(2026, 3, 2, 7, 0, tzinfo=UTC)),
        ("2026-03-02T01:30:00-05:00", datetime(2026, 3, 2, 6, 30, tzinfo=UTC)),
        ("2026-03-02T09:00:00.250+00:00", datetime(2026, 3, 2, 9, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_offsets_are_normalised_to_utc(text: str, expected: datetime) -> None:
    event = parse_ticket_event(raw("ticket.customer_replied", occurred_at=text))
    assert event.occurred_at == expected
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("type_", "fields", "missing"),
    [
        ("ticket.created", {"priority": "high"}, "customer_id"),
        ("ticket.created", {"customer_id": "acme"}, "priority"),
        ("ticket.status_changed", {}, "status"),
        ("ticket.priority_changed", {}, "priority"),
    ],
)
def test_missing_required_field_is_rejected(
    type_: str, fields: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_ticket_event(raw(type_, **fields))
    assert [e["loc"][-1] for e in exc.value.errors()] == [missing]
    assert error_types(exc) == {"missing"}


@pytest.mark.parametrize("field", ["event_id", "ticket_id", "occurred_at"])
def test_missing_common_field_is_rejected(field: str) -> None:
    body = json.loads(raw("ticket.customer_replied"))
    del body[field]
    with pytest.raises(ValidationError):
        parse_ticket_event(json.dumps(body))


@pytest.mark.parametrize("field", ["event_id", "ticket_id"])
def test_empty_ids_are_rejected(field: str) -> None:
    with pytest.raises(ValidationError):
        parse_ticket_event(raw("ticket.customer_replied", **{field: ""}))


@pytest.mark.parametrize("type_", ["ticket.deleted", "TICKET.CREATED", "", None, 3])
def test_unknown_or_malformed_type_is_rejected(type_: object) -> None:
    with pytest.raises(ValidationError):
        parse_ticket_event(raw("x", type=type_))


def test_missing_type_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        parse_ticket_event(json.dumps(BASE))
    assert error_types(exc) == {"union_tag_not_found"}


@pytest.mark.parametrize(
    ("type_", "fields"),
    [
        ("ticket.created", {"customer_id": "acme", "priority": "critical"}),
        ("ticket.created", {"customer_id": 42, "priority": "high"}),
        ("ticket.created", {"customer_id": "", "priority": "high"}),
        ("ticket.created", {"customer_id": "acme", "priority": "high", "tier": ""}),
        ("ticket.status_changed", {"status": "deleted"}),
        ("ticket.agent_replied", {"public": "yes"}),
        ("ticket.agent_replied", {"public": 1}),
        ("ticket.priority_changed", {"priority": "URGENT"}),
    ],
)
def test_malformed_field_values_are_rejected(type_: str, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_ticket_event(raw(type_, **fields))


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"ticket.created"'])
def test_invalid_json_raises_validation_error(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_ticket_event(text)


def test_events_are_immutable() -> None:
    event = parse_ticket_event(raw("ticket.customer_replied"))
    with pytest.raises(ValidationError):
        event.ticket_id = "other"


def test_decoded_objects_follow_the_same_rules_as_json() -> None:
    body = json.loads(raw("ticket.status_changed", status="pending", extra=True))
    event = parse_ticket_event_obj(body)
    assert isinstance(event, StatusChanged)
    assert event.status is Status.PENDING
    assert event.occurred_at.tzinfo is UTC
    with pytest.raises(ValidationError):
        parse_ticket_event_obj({**body, "occurred_at": "2026-03-02T09:00:00"})
    with pytest.raises(ValidationError):
        parse_ticket_event_obj({**body, "occurred_at": 1772442000})


def test_event_serialises_back_to_equivalent_json() -> None:
    event = parse_ticket_event(raw("ticket.created", customer_id="acme", priority="normal"))
    again = parse_ticket_event(event.model_dump_json())
    assert again == event
    assert json.loads(event.model_dump_json())["occurred_at"] == "2026-03-02T09:00:00Z"


@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.timezones(),
    )
)
def test_any_aware_instant_parses_to_the_same_utc_instant(moment: datetime) -> None:
    offset = moment.utcoffset()
    # RFC 3339 offsets are whole minutes (a few zones had second offsets, e.g. LMT).
    assume(offset is not None and offset.total_seconds() % 60 == 0)
    text = moment.isoformat()
    event = parse_ticket_event(raw("ticket.customer_replied", occurred_at=text))
    # Compare with a fixed-offset copy: PEP 495 makes fold-dependent times unequal across zones.
    assert event.occurred_at == datetime.fromisoformat(text)
    assert event.occurred_at.tzinfo is UTC
