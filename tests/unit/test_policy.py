"""The policy file (docs/semantics.md: Policies): parsing, every validation rule, and complete problem reports."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from slaclock.schemas.common import Metric, Priority, Status
from slaclock.schemas.policy import (
    CalendarSpec,
    Contract,
    Policy,
    PolicyError,
    PolicyProblem,
    WorkingInterval,
    format_duration,
    load_policy,
    parse_contract,
    parse_duration,
    parse_policy,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "policy.yaml"
INVALID_EXAMPLE = ROOT / "examples" / "invalid-policy.yaml"

BASE: dict[str, Any] = {
    "default_tier": "standard",
    "calendars": {
        "office": {"timezone": "Europe/Berlin", "hours": {"mon": ["09:00-17:00"]}},
        "always": {"timezone": "UTC", "hours": "24x7"},
    },
    "tiers": {
        "standard": {"calendar": "office", "targets": {"first_response": {"high": "2h"}}},
    },
    "customers": {
        "acme": {
            "tier": "standard",
            "monthly_fee": "100.00",
            "currency": "EUR",
            "timezone": "Europe/Berlin",
        }
    },
}


def doc(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes, e.g. doc(**{"tiers.standard.warnings": [0.5]})."""
    result = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = result
        for part in parents:
            node = node[part]
        node[last] = value
    return result


def parse(document: dict[str, Any]) -> Policy:
    return parse_policy(yaml.safe_dump(document, sort_keys=False), "test.yaml")


def problems_of(document: dict[str, Any] | str) -> list[PolicyProblem]:
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    with pytest.raises(PolicyError) as exc:
        parse_policy(text, "test.yaml")
    return exc.value.problems


def only_problem(document: dict[str, Any] | str) -> PolicyProblem:
    problems = problems_of(document)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# --- complete reports -----------------------------------------------------------------


def test_invalid_example_reports_each_of_its_five_mistakes() -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy(INVALID_EXAMPLE)
    problems = exc.value.problems
    assert [p.location for p in problems] == [
        "calendars.berlin-office.timezone",
        "tiers.enterprise.targets.first_response.urgent",
        "tiers.enterprise.warnings.2",
        "tiers.standard.calendar",
        "customers.acme.monthly_fee",
    ]
    assert {p.file for p in problems} == {str(INVALID_EXAMPLE)}
    messages = [p.message for p in problems]
    assert "Europe/Berln" in messages[0] and "Europe/Berlin" in messages[0]
    assert "15min" in messages[1]
    assert "between 0 and 1" in messages[2]
    assert "unknown calendar 'berlin'" in messages[3]
    assert "quoted decimal string" in messages[4]


def test_five_mistakes_in_different_sections_give_exactly_five_messages() -> None:
    text = """\
default_tier: standard
calendars:
  office:
    timezone: Mars/Olympus_Mons
    hours:
      mon: ["09:00-17:00"]
      tue: ["17:00-09:00"]
tiers:
  standard:
    calendar: offcie
    targets:
      first_response: {high: 2 hours}
    warnings: [0.5, 1.5]
customers:
  acme: {tier: standard, monthly_fee: "100.00", currency: EUR, timezone: UTC}
"""
    problems = problems_of(text)
    assert [p.location for p in problems] == [
        "calendars.office.timezone",
        "calendars.office.hours.tue.0",
        "tiers.standard.calendar",
        "tiers.standard.targets.first_response.high",
        "tiers.standard.warnings.1",
    ]
    assert "did you mean 'office'" in problems[2].message


def test_error_text_lists_every_problem_as_file_location_message() -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy(INVALID_EXAMPLE)
    lines = str(exc.value).splitlines()
    assert len(lines) == 5
    for line, problem in zip(lines, exc.value.problems, strict=True):
        assert line == f"{INVALID_EXAMPLE}: {problem.location}: {problem.message}"


def test_reference_problems_are_reported_alongside_field_problems() -> None:
    document = doc(
        **{
            "calendars.office.timezone": "Nowhere/City",
            "tiers.standard.calendar": "missing",
            "customers.acme.tier": "gold",
            "default_tier": "silver",
        }
    )
    problems = problems_of(document)
    assert [p.location for p in problems] == [
        "default_tier",
        "calendars.office.timezone",
        "tiers.standard.calendar",
        "customers.acme.tier",
    ]
    assert problems[0].message.startswith("unknown tier 'silver'")
    assert problems[3].message.startswith("unknown tier 'gold'")


def test_a_reference_to_an_invalid_calendar_is_not_reported_twice() -> None:
    problem = only_problem(doc(**{"calendars.office.timezone": "Nowhere/City"}))
    assert problem.location == "calendars.office.timezone"


def test_references_are_checked_even_when_another_tier_is_broken() -> None:
    document = doc()
    document["tiers"]["broken"] = {"calendar": "nope", "targets": {"resolution": {"high": "x"}}}
    problems = problems_of(document)
    assert [p.location for p in problems] == [
        "tiers.broken.calendar",
        "tiers.broken.targets.resolution.high",
    ]


def test_constructing_a_policy_in_code_also_checks_references() -> None:
    with pytest.raises(ValidationError, match="unknown calendar 'nope'"):
        Policy.model_validate(doc(**{"tiers.standard.calendar": "nope"}))


# --- happy path ---------------------------------------------------------------------------


def test_example_policy_loads() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.default_tier == "standard"
    assert set(policy.tiers) == {"enterprise", "premium", "standard"}
    enterprise = policy.tiers["enterprise"]
    assert enterprise.calendar == "always"
    assert policy.calendars["always"].is_24x7
    assert enterprise.targets[Metric.FIRST_RESPONSE][Priority.URGENT] == 15 * 60
    assert enterprise.targets[Metric.RESOLUTION][Priority.HIGH] == 86_400
    assert enterprise.pause_on == frozenset({Status.PENDING, Status.ON_HOLD})
    assert enterprise.warnings == (Decimal("0.5"), Decimal("0.75"), Decimal("0.9"))
    assert enterprise.credits is not None
    assert enterprise.credits.per_breach == {
        Metric.FIRST_RESPONSE: Decimal("1.0"),
        Metric.RESOLUTION: Decimal("2.5"),
    }
    assert enterprise.credits.monthly_cap == Decimal(20)
    assert enterprise.credits.earn_back is not None
    assert enterprise.credits.earn_back.months == 2
    assert enterprise.credits.earn_back.min_compliance == Decimal("0.95")
    assert policy.tiers["premium"].targets[Metric.FIRST_RESPONSE][Priority.HIGH] == 5400
    new_york = policy.calendars[policy.tiers["premium"].calendar]
    assert new_york.timezone == "America/New_York"
    assert date(2026, 11, 26) in new_york.holidays
    acme = policy.customers["acme"]
    assert (acme.tier, acme.monthly_fee, acme.currency) == (
        "enterprise",
        Decimal("12000.00"),
        "EUR",
    )
    assert {c.currency for c in policy.customers.values()} == {"EUR", "USD"}


def test_example_berlin_calendar_has_the_spec_hours() -> None:
    calendar = load_policy(EXAMPLE).calendars["berlin-office"]
    hours = calendar.weekly_intervals()
    assert hours[0] == [(9 * 3600, 17 * 3600)]
    assert hours[2] == [(9 * 3600, 12 * 3600), (13 * 3600, 17 * 3600)]
    assert hours[4] == [(9 * 3600, 15 * 3600)]
    assert hours[5] == hours[6] == []
    assert date(2026, 12, 24) in calendar.holidays


def test_customers_are_optional() -> None:
    document = doc()
    del document["customers"]
    assert parse(document).customers == {}


def test_policy_models_are_frozen() -> None:
    policy = parse(doc())
    with pytest.raises(ValidationError):
        policy.default_tier = "other"


def test_json_dump_is_itself_a_valid_policy_with_the_same_meaning() -> None:
    policy = load_policy(EXAMPLE)
    dumped = yaml.safe_dump(policy.model_dump(mode="json"))
    assert parse_policy(dumped, "dumped.yaml") == policy


# --- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 900),
        ("1h30m", 5400),
        ("1d", 86_400),
        ("90s", 90),
        ("2d3h4m5s", 2 * 86_400 + 3 * 3600 + 4 * 60 + 5),
        ("40h", 144_000),
        ("1h0m", 3600),
        ("120m", 7200),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "15",
        "m",
        "0m",
        "0h0m",
        "1h1h",
        "30m1h",
        "1.5h",
        "1H",
        "-1h",
        "1w",
        "1h 30m",
        " 1h",
        "15min",
    ],
)
def test_malformed_or_zero_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(900, "15m"), (5400, "1h30m"), (86_400, "1d"), (144_000, "40h"), (61, "1m1s")],
)
def test_durations_format_to_short_text(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=400 * 86_400))
def test_formatted_durations_parse_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_duration_problem_names_the_target() -> None:
    problem = only_problem(doc(**{"tiers.standard.targets": {"resolution": {"low": "1x"}}}))
    assert problem.location == "tiers.standard.targets.resolution.low"
    assert "invalid duration '1x'" in problem.message


def test_duration_without_unit_is_rejected_with_a_hint() -> None:
    problem = only_problem(doc(**{"tiers.standard.targets": {"resolution": {"low": 90}}}))
    assert "no unit" in problem.message and "'90m'" in problem.message


def test_unknown_metric_and_priority_keys_are_reported() -> None:
    problems = problems_of(
        doc(
            **{
                "tiers.standard.targets": {
                    "first_reply": {"high": "1h"},
                    "resolution": {"p1": "1h"},
                }
            }
        )
    )
    assert [p.location for p in problems] == [
        "tiers.standard.targets.first_reply",
        "tiers.standard.targets.resolution.p1",
    ]
    assert all(p.message.startswith("invalid key") for p in problems)


# --- working intervals and calendars --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("09:00-17:00", (32_400, 61_200)),
        ("00:00-24:00", (0, 86_400)),
        ("22:30-24:00", (81_000, 86_400)),
        ("00:00-00:01", (0, 60)),
    ],
)
def test_working_intervals_parse_to_seconds_of_the_day(text: str, bounds: tuple[int, int]) -> None:
    interval = WorkingInterval.parse(text)
    assert (interval.start_seconds, interval.end_seconds) == bounds
    assert str(interval) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("24:00-24:00", "24:00 only as an end"),
        ("17:00-09:00", "must end after it starts"),
        ("09:00-09:00", "must end after it starts"),
        ("09:60-10:00", "minutes must be 00-59"),
        ("25:00-26:00", "hours must be 00-23"),
        ("09:00-24:30", "24:00 only as an end"),
        ("9:00-17:00", "expected 'HH:MM-HH:MM'"),
        ("09:00 - 17:00", "expected 'HH:MM-HH:MM'"),
        ("09:00", "expected 'HH:MM-HH:MM'"),
    ],
)
def test_malformed_working_intervals_are_rejected(text: str, reason: str) -> None:
    problem = only_problem(doc(**{"calendars.office.hours": {"mon": [text]}}))
    assert problem.location == "calendars.office.hours.mon.0"
    assert reason in problem.message


def test_unquoted_sexagesimal_yaml_time_is_rejected() -> None:
    text = yaml.safe_dump(doc(**{"calendars.office.hours": {"mon": ["TIME"]}}))
    problem = only_problem(text.replace("TIME", "09:00"))  # YAML 1.1 reads 09:00 as 540
    assert problem.location == "calendars.office.hours.mon.0"


@pytest.mark.parametrize(
    "intervals", [["09:00-12:00", "11:00-13:00"], ["13:00-17:00", "09:00-12:00"]]
)
def test_overlapping_or_unsorted_intervals_in_a_day_are_rejected(intervals: list[str]) -> None:
    problem = only_problem(doc(**{"calendars.office.hours": {"wed": intervals}}))
    assert problem.location == "calendars.office.hours.wed"
    assert "must not overlap" in problem.message


def test_touching_intervals_are_allowed() -> None:
    policy = parse(doc(**{"calendars.office.hours": {"mon": ["09:00-12:00", "12:00-13:00"]}}))
    assert policy.calendars["office"].weekly_intervals()[0] == [(32_400, 43_200), (43_200, 46_800)]


def test_unknown_weekday_is_rejected() -> None:
    problem = only_problem(doc(**{"calendars.office.hours": {"monday": ["09:00-17:00"]}}))
    assert problem.location == "calendars.office.hours.monday"
    assert "invalid key 'monday'" in problem.message


@pytest.mark.parametrize("hours", [{}, {"mon": [], "tue": []}])
def test_a_calendar_without_any_working_time_is_rejected(hours: dict[str, Any]) -> None:
    problem = only_problem(doc(**{"calendars.office.hours": hours}))
    assert problem.location == "calendars.office.hours"
    assert "no working hours" in problem.message


@pytest.mark.parametrize("hours", ["24/7", "24x5", 24])
def test_hours_must_be_24x7_or_weekday_intervals(hours: object) -> None:
    problem = only_problem(doc(**{"calendars.office.hours": hours}))
    assert problem.location == "calendars.office.hours"


def test_24x7_calendar_counts_every_day_fully() -> None:
    calendar = parse(doc()).calendars["always"]
    assert calendar.is_24x7
    assert calendar.weekly_intervals() == {day: [(0, 86_400)] for day in range(7)}


def test_missing_weekdays_have_no_working_time() -> None:
    calendar = parse(doc()).calendars["office"]
    assert not calendar.is_24x7
    assert calendar.weekly_intervals() == {0: [(32_400, 61_200)], **{d: [] for d in range(1, 7)}}


def test_holidays_accept_quoted_and_unquoted_dates() -> None:
    text = yaml.safe_dump(doc()).replace(
        "timezone: Europe/Berlin\n",
        "timezone: Europe/Berlin\n    holidays: [2026-12-24, '2026-12-25']\n",
        1,
    )
    calendar = parse_policy(text, "t.yaml").calendars["office"]
    assert calendar.holidays == [date(2026, 12, 24), date(2026, 12, 25)]


def test_invalid_holiday_is_rejected() -> None:
    problem = only_problem(doc(**{"calendars.office.holidays": ["2026-02-30"]}))
    assert problem.location == "calendars.office.holidays.0"


def test_impossible_unquoted_holiday_is_reported_where_it_is() -> None:
    text = yaml.safe_dump(doc(**{"calendars.office.holidays": ["DAY"]}))
    problem = only_problem(text.replace("DAY", "2026-02-30"))
    assert problem.location == "calendars.office.holidays.0"


def test_holidays_are_allowed_on_a_24x7_calendar() -> None:
    calendar = parse(doc(**{"calendars.always.holidays": ["2026-12-25"]})).calendars["always"]
    assert calendar.is_24x7
    assert calendar.holidays == [date(2026, 12, 25)]


@pytest.mark.parametrize("zone", ["Europe/Berln", "CET+1", "", "Europe", "localtime", "../etc"])
def test_unknown_time_zones_are_rejected(zone: str) -> None:
    problem = only_problem(doc(**{"calendars.office.timezone": zone}))
    assert problem.location == "calendars.office.timezone"
    assert "unknown time zone" in problem.message


def test_calendar_spec_is_usable_directly() -> None:
    spec = CalendarSpec.model_validate(
        {"timezone": "America/New_York", "hours": {"fri": ["08:00-12:00", "13:00-17:00"]}}
    )
    assert spec.weekly_intervals()[4] == [(28_800, 43_200), (46_800, 61_200)]


# --- tiers ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["solved", "closed"])
def test_solved_and_closed_cannot_pause(status: str) -> None:
    problem = only_problem(doc(**{"tiers.standard.pause_on": ["pending", status]}))
    assert problem.location == "tiers.standard.pause_on.1"
    assert status in problem.message


def test_unknown_pause_status_is_rejected() -> None:
    problem = only_problem(doc(**{"tiers.standard.pause_on": ["waiting"]}))
    assert problem.location == "tiers.standard.pause_on.0"
    assert "'waiting'" in problem.message


def test_warnings_are_exact_sorted_and_unique() -> None:
    tier = parse(doc(**{"tiers.standard.warnings": [0.9, 0.5, 0.9, 0.75]})).tiers["standard"]
    assert tier.warnings == (Decimal("0.5"), Decimal("0.75"), Decimal("0.9"))
    assert str(tier.warnings[-1]) == "0.9"
    assert tier.warnings[-1] != Decimal(0.9)  # noqa: RUF032 - the binary float's expansion


@pytest.mark.parametrize("threshold", [1.5, 1, 1.0, 0, -0.5])
def test_warning_thresholds_must_be_strictly_between_0_and_1(threshold: float) -> None:
    problem = only_problem(doc(**{"tiers.standard.warnings": [0.5, threshold]}))
    assert problem.location == "tiers.standard.warnings.1"
    assert "between 0 and 1" in problem.message


@pytest.mark.parametrize("threshold", [True, "half", ".nan"])
def test_warning_thresholds_must_be_numbers(threshold: object) -> None:
    problem = only_problem(doc(**{"tiers.standard.warnings": [threshold]}))
    assert problem.location == "tiers.standard.warnings.0"


def test_warning_thresholds_may_be_decimal_strings() -> None:
    tier = parse(doc(**{"tiers.standard.warnings": ["0.8"]})).tiers["standard"]
    assert tier.warnings == (Decimal("0.8"),)


def test_credit_percents_are_exact_decimals() -> None:
    credits = {"per_breach": {"first_response": 1.0, "resolution": 2.5}, "monthly_cap": 20}
    terms = parse(doc(**{"tiers.standard.credits": credits})).tiers["standard"].credits
    assert terms is not None
    assert str(terms.per_breach[Metric.FIRST_RESPONSE]) == "1.0"
    assert terms.per_breach[Metric.RESOLUTION] == Decimal("2.5")
    assert terms.monthly_cap == Decimal(20)
    assert terms.earn_back is None


@pytest.mark.parametrize(
    ("credits", "location"),
    [
        ({"per_breach": {"resolution": 0}}, "tiers.standard.credits.per_breach.resolution"),
        ({"per_breach": {"resolution": -1.5}}, "tiers.standard.credits.per_breach.resolution"),
        ({"per_breach": {"resolved": 1}}, "tiers.standard.credits.per_breach.resolved"),
        ({"per_breach": {}, "monthly_cap": 0}, "tiers.standard.credits.monthly_cap"),
        (
            {"per_breach": {}, "earn_back": {"months": 0, "min_compliance": 0.9}},
            "tiers.standard.credits.earn_back.months",
        ),
        (
            {"per_breach": {}, "earn_back": {"months": "2", "min_compliance": 0.9}},
            "tiers.standard.credits.earn_back.months",
        ),
        (
            {"per_breach": {}, "earn_back": {"months": 2, "min_compliance": 95}},
            "tiers.standard.credits.earn_back.min_compliance",
        ),
        (
            {"per_breach": {}, "earn_back": {"months": 2, "min_compliance": 0}},
            "tiers.standard.credits.earn_back.min_compliance",
        ),
        ({"monthly_cap": 10}, "tiers.standard.credits.per_breach"),
    ],
)
def test_invalid_credit_terms_are_rejected(credits: dict[str, Any], location: str) -> None:
    assert only_problem(doc(**{"tiers.standard.credits": credits})).location == location


def test_full_compliance_is_a_valid_earn_back_threshold() -> None:
    credits = {"per_breach": {}, "earn_back": {"months": 1, "min_compliance": 1}}
    terms = parse(doc(**{"tiers.standard.credits": credits})).tiers["standard"].credits
    assert terms is not None and terms.earn_back is not None
    assert terms.earn_back.min_compliance == Decimal(1)


def test_misspelt_field_is_reported_with_a_suggestion() -> None:
    document = doc()
    document["tiers"]["standard"]["calender"] = document["tiers"]["standard"].pop("calendar")
    problems = problems_of(document)
    assert [(p.location, p.message.split(";")[0]) for p in problems] == [
        ("tiers.standard.calender", "unknown field 'calender' (did you mean 'calendar'?)"),
        ("tiers.standard.calendar", "required field is missing"),
    ]


def test_unknown_top_level_field_is_reported() -> None:
    problem = only_problem({**doc(), "customer": {}})
    assert problem.location == "customer"
    assert "did you mean 'customers'" in problem.message


def test_missing_sections_are_all_reported() -> None:
    problems = problems_of({"customers": {}})
    assert sorted(p.location for p in problems) == ["calendars", "default_tier", "tiers"]


# --- contracts ------------------------------------------------------------------------


def test_unquoted_float_fee_is_rejected_with_a_hint_to_quote_it() -> None:
    text = yaml.safe_dump(doc()).replace("monthly_fee: '100.00'", "monthly_fee: 99.95")
    problem = only_problem(text)
    assert problem.location == "customers.acme.monthly_fee"
    assert 'quoted decimal string, e.g. "99.95"' in problem.message


@pytest.mark.parametrize("fee", [100, "12.345", "-1.00", "1e3", "12,00", ""])
def test_fee_must_be_a_non_negative_decimal_string_with_cents_at_most(fee: object) -> None:
    problem = only_problem(doc(**{"customers.acme.monthly_fee": fee}))
    assert problem.location == "customers.acme.monthly_fee"


@pytest.mark.parametrize(
    ("fee", "expected"), [("12000", "12000.00"), ("0", "0.00"), ("9.5", "9.50")]
)
def test_fee_is_normalised_to_cents(fee: str, expected: str) -> None:
    contract = parse(doc(**{"customers.acme.monthly_fee": fee})).customers["acme"]
    assert str(contract.monthly_fee) == expected


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", ""])
def test_currency_must_be_three_uppercase_letters(currency: str) -> None:
    assert only_problem(doc(**{"customers.acme.currency": currency})).location == (
        "customers.acme.currency"
    )


def test_contract_timezone_must_be_iana() -> None:
    problem = only_problem(doc(**{"customers.acme.timezone": "Berlin"}))
    assert problem.location == "customers.acme.timezone"


def test_numeric_customer_id_must_be_quoted() -> None:
    text = yaml.safe_dump(doc()).replace("  acme:", "  12345:")
    problem = only_problem(text)
    assert problem.location == "customers.12345"
    assert problem.message.startswith("invalid key 12345")


def test_contract_record_from_kafka_parses_and_serialises_money_as_string() -> None:
    raw = '{"tier":"enterprise","monthly_fee":"12000.00","currency":"EUR","timezone":"UTC"}'
    contract = parse_contract(raw)
    assert contract == Contract(
        tier="enterprise", monthly_fee=Decimal("12000.00"), currency="EUR", timezone="UTC"
    )
    assert '"monthly_fee":"12000.00"' in contract.model_dump_json()


def test_contract_record_with_a_json_number_fee_is_rejected() -> None:
    with pytest.raises(ValidationError, match="quoted decimal string"):
        parse_contract('{"tier":"t","monthly_fee":12000.0,"currency":"EUR","timezone":"UTC"}')


# --- files and YAML --------------------------------------------------------------------


def test_yaml_syntax_error_is_reported_with_line_and_column() -> None:
    problem = only_problem("default_tier: standard\ncalendars: {office: [\n  tiers: x\n")
    assert problem.location.startswith("line ")
    assert ", column " in problem.location
    assert problem.message.startswith("invalid YAML")


def test_duplicate_keys_are_reported() -> None:
    text = yaml.safe_dump(doc(), sort_keys=False) + "default_tier: standard\n"
    problem = only_problem(text)
    assert problem.location.startswith("line ")
    assert "duplicate key 'default_tier' (first on line 1)" in problem.message


def test_yaml_merge_keys_are_not_duplicates() -> None:
    text = """\
default_tier: standard
calendars:
  office: &office {timezone: UTC, hours: {mon: ["09:00-17:00"]}}
  office2:
    <<: *office
    timezone: Europe/Berlin
tiers:
  standard: {calendar: office2, targets: {}}
"""
    assert parse_policy(text, "t.yaml").calendars["office2"].timezone == "Europe/Berlin"


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("- a\n- b\n", "expected a mapping")])
def test_empty_or_non_mapping_document_is_refused(text: str, what: str) -> None:
    problem = only_problem(text)
    assert problem.location == "(top level)"
    assert what in problem.message


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    [problem] = exc.value.problems
    assert problem.file == str(path)
    assert "cannot read" in problem.message


def test_load_policy_accepts_str_paths(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc()), encoding="utf-8")
    assert load_policy(str(path)) == load_policy(path)
