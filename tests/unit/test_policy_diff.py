"""`slaclock policy diff`: each kind of rule change, in the words a support manager reads."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from slaclock.cli import app
from slaclock.processors.policy_diff import Area, Rule, RuleChange, diff_policies
from slaclock.schemas.policy import parse_policy

ROOT = Path(__file__).resolve().parents[2]
BASE = """
default_tier: standard
calendars:
  always:
    timezone: UTC
    hours: 24x7
  office:
    timezone: Europe/Berlin
    hours:
      mon: ["09:00-17:00"]
      tue: ["09:00-17:00"]
      wed: ["09:00-12:00", "13:00-17:00"]
      thu: ["09:00-17:00"]
      fri: ["09:00-15:00"]
    holidays: ["2026-12-24", "2026-12-25"]
tiers:
  enterprise:
    calendar: always
    targets:
      first_response: {urgent: 15m, high: 1h}
      resolution: {urgent: 4h, high: 1d}
    pause_on: [pending, on_hold]
    warnings: [0.5, 0.75]
    credits:
      per_breach: {first_response: 1.0, resolution: 2.5}
      monthly_cap: 20
      earn_back: {months: 2, min_compliance: 0.95}
  standard:
    calendar: office
    targets:
      first_response: {high: 2h}
    pause_on: [pending]
    warnings: [0.75]
services:
  portal:
    timezone: UTC
    target: "99.5"
    down_on: {partial_outage: "0.3"}
    maintenance_notice: 2d
    warnings: [0.5]
    credits:
      - {below: "99.5", percent: 10}
      - {below: "99.0", percent: 25}
"""


def diff(*edits: tuple[str, str]) -> list[RuleChange]:
    changed = BASE
    for old, new in edits:
        assert old in changed, old
        changed = changed.replace(old, new, 1)
    return diff_policies(parse_policy(BASE, "a.yaml"), parse_policy(changed, "b.yaml"))


def texts(changes: list[RuleChange]) -> list[str]:
    return [change.text() for change in changes]


def test_the_same_rules_give_no_change() -> None:
    assert diff() == []


def test_a_shorter_target_reads_from_before_to_after() -> None:
    (change,) = diff(("urgent: 15m", "urgent: 10m"))
    assert change.text() == "enterprise · first_response · urgent: 15m → 10m (shorter)"
    assert (change.area, change.rule) == (Area.TARGETS, Rule.TARGET)
    assert change.path == ("tiers", "enterprise", "targets", "first_response", "urgent")


def test_a_target_added_or_dropped_says_whether_the_metric_is_tracked() -> None:
    assert texts(diff(("{high: 2h}", "{high: 2h, normal: 8h}"))) == [
        "standard · first_response · normal: no target → 8h (now tracked)"
    ]
    assert texts(diff(("resolution: {urgent: 4h, high: 1d}", "resolution: {urgent: 4h}"))) == [
        "enterprise · resolution · high: 1d → no target (no longer tracked)"
    ]


def test_a_longer_target() -> None:
    assert texts(diff(("high: 1d}", "high: 2d}"))) == [
        "enterprise · resolution · high: 1d → 2d (longer)"
    ]


def test_tiers_added_and_removed_and_the_default_tier() -> None:
    changes = diff(
        ("default_tier: standard", "default_tier: enterprise"),
        ("  standard:\n    calendar: office", "  basic:\n    calendar: office"),
    )
    assert texts(changes) == [
        "default tier: standard → enterprise (tickets without a tier or contract)",
        "tier standard: removed: its tickets move to the default tier, enterprise",
        "tier basic: added",
    ]
    assert {change.area for change in changes} == {Area.TIERS}


def test_a_tier_on_another_calendar() -> None:
    assert texts(
        diff(
            (
                "    calendar: always\n    targets:\n      first_response: {urgent",
                "    calendar: office\n    targets:\n      first_response: {urgent",
            )
        )
    ) == ["enterprise · calendar: always → office"]


def test_working_hours_per_day_and_per_week_name_who_uses_the_calendar() -> None:
    changes = diff(('fri: ["09:00-15:00"]', 'fri: ["09:00-17:00"]'))
    assert texts(changes) == [
        "calendar office · fri: 09:00-15:00 → 09:00-17:00 (longer; used by standard)",
        "calendar office · working time per week: 37h → 39h (more: deadlines come sooner)",
    ]
    assert {change.rule for change in changes} == {Rule.HOURS}


def test_a_reshaped_day_of_the_same_length_changes_no_weekly_total() -> None:
    assert texts(diff(('wed: ["09:00-12:00", "13:00-17:00"]', 'wed: ["08:00-15:00"]'))) == [
        "calendar office · wed: 09:00-12:00, 13:00-17:00 → 08:00-15:00 (same length; used by standard)"
    ]


def test_holidays_added_and_removed() -> None:
    (change,) = diff(('["2026-12-24", "2026-12-25"]', '["2026-12-25", "2026-12-31"]'))
    assert change.text() == (
        "calendar office · holidays: adds 2026-12-31; removes 2026-12-24 (used by standard)"
    )
    assert change.rule is Rule.HOLIDAYS


def test_a_calendar_in_another_time_zone() -> None:
    assert texts(diff(("timezone: Europe/Berlin", "timezone: Europe/London"))) == [
        "calendar office · time zone: Europe/Berlin → Europe/London (used by standard)"
    ]


def test_pauses_gained_and_lost() -> None:
    assert texts(diff(("pause_on: [pending, on_hold]", "pause_on: [on_hold]"))) == [
        "enterprise · pauses on: on_hold, pending → on_hold (no longer pauses on pending)"
    ]
    assert texts(diff(("pause_on: [pending]", "pause_on: [pending, on_hold]"))) == [
        "standard · pauses on: pending → on_hold, pending (also pauses on on_hold)"
    ]


def test_warnings_added_and_dropped() -> None:
    assert texts(diff(("warnings: [0.5, 0.75]", "warnings: [0.75, 0.9]"))) == [
        "enterprise · warnings (of the target): 50%, 75% → 75%, 90% (adds 90%; drops 50%)"
    ]


def test_credit_per_breach_cap_and_earn_back() -> None:
    changes = diff(
        ("resolution: 2.5}", "resolution: 3, next_response: 1}"),
        ("monthly_cap: 20", "monthly_cap: 15"),
        (
            "earn_back: {months: 2, min_compliance: 0.95}",
            "earn_back: {months: 3, min_compliance: 0.9}",
        ),
    )
    assert texts(changes) == [
        "enterprise · credit per resolution breach: 2.5% of the fee → 3% of the fee (more)",
        "enterprise · credit per next_response breach: none → 1% of the fee (now earns a credit)",
        "enterprise · monthly credit cap: 20% of the fee → 15% of the fee (lower)",
        "enterprise · earn-back: after 2 months at 95% compliance → "
        "after 3 months at 90% compliance",
    ]
    assert {change.area for change in changes} == {Area.CREDITS}


def test_a_cap_removed() -> None:
    assert texts(diff(("      monthly_cap: 20\n", ""))) == [
        "enterprise · monthly credit cap: 20% of the fee → no cap (no cap any more)"
    ]


def test_service_terms() -> None:
    changes = diff(
        ('target: "99.5"\n    down_on', 'target: "99.9"\n    down_on'),
        ('partial_outage: "0.3"', 'partial_outage: "0.5"'),
        ("maintenance_notice: 2d", "maintenance_notice: 1d"),
        ('- {below: "99.0", percent: 25}', '- {below: "99.0", percent: 30}'),
        ("    calendar: always\n    targets", "    calendar: always\n    targets"),
    )
    assert texts(changes) == [
        "service portal · availability target: 99.5% → 99.9% (stricter)",
        "service portal · partial_outage counts as downtime at: 0.3 → 0.5 (more)",
        "service portal · maintenance notice: 2d → 1d (shorter: more maintenance excused)",
        "service portal · credit below 99% uptime: 25% of the fee → 30% of the fee (more)",
    ]


def test_services_added_and_removed() -> None:
    assert texts(diff(("  portal:\n", "  webshop:\n"))) == [
        "service portal: removed",
        "service webshop: added",
    ]


# -- the command --------------------------------------------------------------------------


def test_the_command_prints_each_change_under_its_area(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text(
        BASE.replace("urgent: 15m", "urgent: 10m").replace(
            '"2026-12-25"]', '"2026-12-25", "2026-12-31"]'
        )
    )
    result = CliRunner().invoke(
        app, ["policy", "diff", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "Targets and pauses (1)" in result.output
    assert "enterprise · first_response · urgent: 15m → 10m (shorter)" in result.output
    assert "Calendars and working hours (1)" in result.output
    assert "holidays: adds 2026-12-31" in result.output
    as_json = CliRunner().invoke(
        app, ["policy", "diff", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"), "--json"]
    )
    assert [c["rule"] for c in orjson.loads(as_json.output)] == ["target", "holidays"]


def test_the_command_with_events_says_what_the_change_would_have_done(tmp_path: Path) -> None:
    policy = (ROOT / "examples" / "policy.yaml").read_text()
    (tmp_path / "b.yaml").write_text(policy.replace("urgent: 15m", "urgent: 30m"))
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "diff",
            str(ROOT / "examples" / "policy.yaml"),
            str(tmp_path / "b.yaml"),
            "--events",
            str(ROOT / "examples" / "events.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "enterprise · first_response · urgent: 15m → 30m (longer)" in result.output
    assert "0 outcome(s) change; 2 deadline(s) move (2 without changing the outcome" in (
        result.output
    )
    assert "median +15m" in result.output


@pytest.mark.parametrize("which", ["A", "B"])
def test_an_invalid_policy_is_refused_in_one_line(tmp_path: Path, which: str) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(BASE)
    bad.write_text(BASE.replace("urgent: 15m", "urgent: soon"))
    files = [str(bad), str(good)] if which == "A" else [str(good), str(bad)]
    result = CliRunner().invoke(app, ["policy", "diff", *files])
    assert result.exit_code == 1
    assert f"error: {which} {bad}: refused (" in result.output
    assert "slaclock policy check" in result.output
