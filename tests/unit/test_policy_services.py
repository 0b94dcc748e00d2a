"""`services:` in the policy and on contracts: parsing, defaults and every validation rule."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
import yaml

from slaclock.schemas.policy import Policy, PolicyError, parse_contract, parse_policy

BASE: dict[str, Any] = {
    "default_tier": "t",
    "calendars": {
        "always": {"timezone": "UTC", "hours": "24x7"},
        "office": {"timezone": "Europe/Berlin", "hours": {"mon": ["09:00-17:00"]}},
    },
    "tiers": {"t": {"calendar": "always", "targets": {"first_response": {"high": "1h"}}}},
    "services": {
        "portal": {
            "timezone": "Europe/Berlin",
            "target": "99.5",
            "down_on": {"partial_outage": "0.3"},
            "warnings": [0.9, 0.5],
            "credits": [{"below": "99.5", "percent": 10}, {"below": "99", "percent": 25}],
        }
    },
    "customers": {
        "acme": {
            "tier": "t",
            "monthly_fee": "100.00",
            "currency": "EUR",
            "services": ["portal"],
        }
    },
}


def doc(**changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    return result


def parse(document: dict[str, Any]) -> Policy:
    return parse_policy(yaml.safe_dump(document, sort_keys=False), "p.yaml")


def problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as error:
        parse(document)
    return [(p.location, p.message) for p in error.value.problems]


def test_a_service_gets_the_defaults_and_its_weights_merged_over_them() -> None:
    portal = parse(BASE).services["portal"]
    assert portal.calendar is None
    assert portal.maintenance_notice == 2 * 86_400
    assert portal.warnings == (Decimal("0.5"), Decimal("0.9"))
    assert portal.weights() == {
        "operational": 0,
        "degraded_performance": 0,
        "partial_outage": Decimal("0.3"),
        "major_outage": 1,
        "under_maintenance": 1,
    }
    assert parse(BASE).customers["acme"].services == ["portal"]


def test_the_policy_serialises_back_to_a_valid_policy() -> None:
    policy = parse(BASE)
    again = parse(policy.model_dump(mode="json"))
    assert again.services == policy.services


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"services.portal.calendar": "nope"}, "services.portal.calendar", "unknown calendar"),
        ({"services.portal.target": "100"}, "services.portal.target", "between 0 and 100"),
        ({"services.portal.target": "99.12345"}, "services.portal.target", "4 decimal places"),
        (
            {"services.portal.down_on": {"partial_outage": 1.5}},
            "services.portal.down_on.partial_outage",
            "in [0, 1]",
        ),
        (
            {"services.portal.down_on": {"exploded": 1}},
            "services.portal.down_on.exploded",
            "",
        ),
        ({"services.portal.warnings": [1]}, "services.portal.warnings.0", "strictly between"),
        (
            {"services.portal.credits": [{"below": "99.9", "percent": 10}]},
            "services.portal.credits.0.below",
            "above the target",
        ),
        (
            {
                "services.portal.credits": [
                    {"below": "99", "percent": 10},
                    {"below": "99.0", "percent": 20},
                ]
            },
            "services.portal.credits.1.below",
            "another band already has below 99",
        ),
        (
            {"services.portal.credits": [{"below": "99", "percent": 0}]},
            "services.portal.credits.0.percent",
            "greater than 0",
        ),
        (
            {"services.portal.maintenance_notice": 3600},
            "services.portal.maintenance_notice",
            "unit",
        ),
        (
            {"customers.acme.services": ["portal", "potral"]},
            "customers.acme.services.1",
            "unknown service 'potral' (did you mean 'portal'?)",
        ),
        (
            {"customers.acme.services": ["portal", "portal"]},
            "customers.acme.services.1",
            "listed twice",
        ),
        ({"services.portal.uptime": 1}, "services.portal.uptime", "unknown field"),
    ],
)
def test_each_problem_is_reported_where_it_is(
    change: dict[str, Any], where: str, says: str
) -> None:
    found = problems(doc(**change))
    assert any(location == where and says in message for location, message in found), found


def test_every_problem_of_a_broken_services_section_is_listed_at_once() -> None:
    found = problems(
        doc(
            **{
                "services.portal.calendar": "nope",
                "services.portal.down_on": {"major_outage": 2},
                "services.portal.credits": [
                    {"below": "99.9", "percent": 10},
                    {"below": "99.9", "percent": 0},
                ],
                "customers.acme.services": ["ghost"],
            }
        )
    )
    assert sorted(location for location, _ in found) == sorted(
        [
            "customers.acme.services.0",
            "services.portal.calendar",
            "services.portal.down_on.major_outage",
            "services.portal.credits.0.below",
            "services.portal.credits.1.below",
            "services.portal.credits.1.below",
            "services.portal.credits.1.percent",
        ]
    )


def test_a_contract_record_can_list_services() -> None:
    contract = parse_contract(
        b'{"tier": "t", "monthly_fee": "10.00", "currency": "EUR", "services": ["portal"]}'
    )
    assert contract.services == ["portal"]
