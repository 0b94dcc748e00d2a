"""Output event models: fixed field names, UTC `Z` times, money as strings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from slaclock.schemas.common import Metric, Priority
from slaclock.schemas.outputs import (
    SlaBreach,
    SlaCancelled,
    SlaCompleted,
    SlaCredit,
    SlaCreditEarnedBack,
    SlaStatement,
    SlaWarning,
    parse_output_event,
)

COMMON = {
    "event_id": "ev-1",
    "ticket_id": "T-1",
    "customer_id": "acme",
    "tier": "enterprise",
    "metric": "resolution",
    "at": "2026-03-02T10:00:00Z",
}
TICKET = {**COMMON, "priority": "urgent", "cycle": 1, "policy_version": "1", "group": None}

WARNING = {
    **TICKET,
    "type": "sla.warning",
    "threshold": 0.75,
    "deadline": "2026-03-02T11:00:00Z",
    "target_seconds": 14_400,
}
BREACH = {
    **TICKET,
    "type": "sla.breach",
    "deadline": "2026-03-02T10:00:00Z",
    "decided_at": "2026-03-02T10:05:00Z",
    "target_seconds": 14_400,
}
COMPLETED = {
    **TICKET,
    "type": "sla.completed",
    "outcome": "met",
    "elapsed_seconds": 3600,
    "target_seconds": 14_400,
}
CANCELLED = {
    **TICKET,
    "type": "sla.cancelled",
    "reason": "solved",
    "elapsed_seconds": 5400,
    "target_seconds": 3600,
    "breached": True,
}
CREDIT = {
    **COMMON,
    "type": "sla.credit",
    "period": "2026-03",
    "amount": "300.00",
    "currency": "EUR",
    "percent": "2.5",
    "capped": False,
    "period_total": "420.00",
    "breach_event_id": "br-1",
    "decided_at": "2026-03-02T10:05:00Z",
    "service_id": None,
    "policy_version": "1",
}
AVAILABILITY_CREDIT = {
    **CREDIT,
    "ticket_id": None,
    "metric": "availability",
    "service_id": "portal",
    "breach_event_id": "rep-1",
}
FIGURES = {"met": 3, "breached": 1, "compliance": "0.7500"}
EMPTY = {"met": 0, "breached": 0, "compliance": None}
STATEMENT = {
    "event_id": "st-1",
    "type": "sla.statement",
    "customer_id": "acme",
    "tier": "enterprise",
    "period": "2026-10",
    "at": "2026-10-31T23:00:00Z",
    "period_start": "2026-09-30T22:00:00Z",
    "currency": "EUR",
    "monthly_fee": "12000.00",
    "credits_total": "120.00",
    "availability_credits_total": "0.00",
    "credit_cap": "2400.00",
    "credits": 1,
    "metrics": {
        "first_response": FIGURES,
        "next_response": EMPTY,
        "periodic_update": EMPTY,
        "resolution": EMPTY,
    },
    "overall": FIGURES,
    "compliant": False,
    "policy_version": "1",
}
EARNED_BACK = {
    "event_id": "eb-1",
    "type": "sla.credit_earned_back",
    "customer_id": "acme",
    "tier": "enterprise",
    "period": "2026-10",
    "at": "2026-12-31T23:00:00Z",
    "amount": "120.00",
    "currency": "EUR",
    "earned_through": "2026-12",
    "months": 2,
    "min_compliance": "0.95",
    "policy_version": "2",
}

FIELDS = {
    "sla.warning": {*TICKET, "type", "threshold", "deadline", "target_seconds"},
    "sla.breach": {*TICKET, "type", "deadline", "decided_at", "target_seconds"},
    "sla.completed": {*TICKET, "type", "outcome", "elapsed_seconds", "target_seconds"},
    "sla.cancelled": {
        *TICKET,
        *("type", "reason", "elapsed_seconds", "target_seconds", "breached"),
    },
    "sla.credit": {
        *COMMON,
        *("type", "period", "amount", "currency", "percent", "capped", "period_total"),
        *("breach_event_id", "decided_at", "service_id", "policy_version"),
    },
    "sla.statement": set(STATEMENT),
    "sla.credit_earned_back": set(EARNED_BACK),
}


@pytest.mark.parametrize(
    ("body", "cls"),
    [
        (WARNING, SlaWarning),
        (BREACH, SlaBreach),
        (COMPLETED, SlaCompleted),
        (CANCELLED, SlaCancelled),
        (CREDIT, SlaCredit),
        (AVAILABILITY_CREDIT, SlaCredit),
        (STATEMENT, SlaStatement),
        (EARNED_BACK, SlaCreditEarnedBack),
    ],
)
def test_each_output_type_parses_and_round_trips_unchanged(
    body: dict[str, Any], cls: type[Any]
) -> None:
    event = parse_output_event(json.dumps(body))
    assert type(event) is cls
    assert json.loads(event.model_dump_json()) == body


@pytest.mark.parametrize(
    "body", [WARNING, BREACH, COMPLETED, CREDIT, AVAILABILITY_CREDIT, STATEMENT, EARNED_BACK]
)
def test_field_names_are_exactly_those_of_the_spec(body: dict[str, Any]) -> None:
    event = parse_output_event(json.dumps(body))
    assert set(json.loads(event.model_dump_json())) == FIELDS[body["type"]]


def test_credit_has_no_priority_or_cycle() -> None:
    assert {"priority", "cycle"}.isdisjoint(SlaCredit.model_fields)


def test_times_are_normalised_to_utc_and_written_with_z() -> None:
    body = {**BREACH, "at": "2026-03-02T12:00:00+02:00", "decided_at": "2026-03-02T10:00:00.5Z"}
    event = parse_output_event(json.dumps(body))
    assert event.at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    dumped = json.loads(event.model_dump_json())
    assert dumped["at"] == "2026-03-02T10:00:00Z"
    assert dumped["decided_at"] == "2026-03-02T10:00:00.500000Z"


def test_money_is_serialised_as_strings() -> None:
    credit = SlaCredit(
        event_id="c-1",
        ticket_id="T-1",
        customer_id="acme",
        tier="enterprise",
        metric=Metric.RESOLUTION,
        at=datetime(2026, 3, 2, 10, tzinfo=UTC),
        period="2026-03",
        decided_at=datetime(2026, 3, 2, 10, tzinfo=UTC),
        amount=Decimal("300.00"),
        currency="EUR",
        percent=Decimal("2.5"),
        capped=True,
        period_total=Decimal("2400.00"),
        breach_event_id="br-1",
    )
    text = credit.model_dump_json()
    assert '"amount":"300.00"' in text
    assert '"period_total":"2400.00"' in text
    assert '"percent":"2.5"' in text
    assert '"at":"2026-03-02T10:00:00Z"' in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 300.0),
        ("amount", "300"),
        ("amount", "300.001"),
        ("period_total", 1),
        ("percent", 2.5),
        ("percent", "2,5"),
        ("period", "2026-3"),
        ("period", "2026-13"),
        ("currency", "eur"),
    ],
)
def test_malformed_credit_fields_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        parse_output_event(json.dumps({**CREDIT, field: value}))


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    event = parse_output_event(json.dumps({**WARNING, "severity": "high"}))
    assert isinstance(event, SlaWarning)
    assert event.priority is Priority.URGENT


def test_completion_keeps_fractional_elapsed_seconds() -> None:
    event = parse_output_event(json.dumps({**COMPLETED, "elapsed_seconds": 12.25}))
    assert isinstance(event, SlaCompleted)
    assert event.elapsed_seconds == 12.25
    assert json.loads(event.model_dump_json())["elapsed_seconds"] == 12.25


@pytest.mark.parametrize(
    "body",
    [
        {**BREACH, "at": "2026-03-02T10:00:00"},
        {**WARNING, "threshold": 1.5},
        {**COMPLETED, "outcome": "late"},
        {**COMPLETED, "cycle": 0},
        {**BREACH, "type": "sla.unknown"},
        {k: v for k, v in BREACH.items() if k != "decided_at"},
    ],
)
def test_invalid_outputs_are_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_output_event(json.dumps(body))
