"""Statements, earn-back and availability in the report, from outputs built to the formats."""

from __future__ import annotations

from decimal import Decimal

from slaclock.processors.report.figures import ReportRequest, Section, build_report
from slaclock.processors.report.outputs import outputs_from_records
from slaclock.processors.report.policy_info import policy_info
from slaclock.schemas.policy import parse_policy
from tests.report.spec_outputs import breach, completed, story
from tests.report.workload import POLICY_YAML

INFO = policy_info(parse_policy(POLICY_YAML, "test-policy.yaml"))


def acme(period: str) -> Section:
    report = build_report(
        outputs_from_records(story()), ReportRequest(period=period, customer="acme"), INFO, "test"
    )
    return report.sections[0]


def test_statement_figures_are_used_for_credits_cap_and_earn_back() -> None:
    september = acme("2026-09")
    credit = september.credits[0]
    assert credit.source == "statement"
    assert (credit.credited, credit.cap, credit.earned_back, credit.net) == (
        Decimal("100.00"),
        Decimal("1500.00"),
        Decimal("100.00"),
        Decimal("0.00"),
    )
    assert credit.earn_back_status.startswith("earned back on 2026-11-30T23:00:00Z")
    assert september.window.start_us < september.window.end_us
    assert (
        september.metrics["first_response"].met,
        september.metrics["first_response"].breached,
    ) == (1, 1)


def test_availability_credits_are_never_earned_back_and_pending_months_are_named() -> None:
    october = acme("2026-10")
    credit = october.credits[0]
    assert credit.availability == Decimal("1000.00")
    assert credit.credited == Decimal("1100.00")
    assert credit.earned_back == Decimal("0.00")
    assert (
        credit.earn_back_status
        == "pending: needs 2026-11 to 2026-12 compliant (1 of 2 months known)"
    )


def test_availability_per_service_of_the_customers_contract() -> None:
    october = acme("2026-10")
    portal = [row for row in october.availability if row.service_id == "portal"]
    assert len(portal) == 1
    row = portal[0]
    assert (row.uptime_percent, row.target_percent, row.met, row.alerts) == (
        "99.3120",
        "99.5",
        False,
        2,
    )
    assert row.breached_at == "2026-10-20T12:00:00Z"
    assert (row.downtime_seconds, row.excused_seconds) == (18_432, 7200)
    # search is not in acme's contract and earned it no credit: not on acme's page
    assert "search" not in {r.service_id for r in october.availability}


def test_all_customers_page_shows_every_service() -> None:
    report = build_report(outputs_from_records(story()), ReportRequest(period="2026-10"), INFO, "t")
    assert {r.service_id for r in report.sections[0].availability} == {"portal", "search"}


def test_without_statements_credits_come_from_credit_events_and_say_so() -> None:
    events = [o for o in story() if o["type"] != "sla.statement"]
    report = build_report(
        outputs_from_records(events), ReportRequest(period="2026-10", customer="acme"), INFO, "t"
    )
    credit = report.sections[0].credits[0]
    assert credit.source == "credit events"
    assert credit.credited == Decimal("1100.00")
    assert credit.cap == Decimal("1500.00")  # 15 % of the fee, from the policy
    assert any("no monthly statements" in note for note in report.notes)


def test_breach_counts_in_the_month_it_was_decided_and_a_target_met_twice_counts_once() -> None:
    outputs = [
        # deadline in September, decided in October by a priority change: October's breach
        breach("P1", "2026-09-29T10:00:00Z", decided_at="2026-10-02T10:00:00Z"),
        # resolution met in October, reopened, met again in November: once, in October
        completed("R1", "2026-10-20T10:00:00Z", "met", 600, metric="resolution"),
        completed("R1", "2026-11-03T10:00:00Z", "met", 800, metric="resolution"),
        completed("N1", "2026-11-04T10:00:00Z", "met", 300),
    ]
    october, november = (
        build_report(
            outputs_from_records(outputs), ReportRequest(period=p, customer="acme"), INFO, "t"
        ).sections[0]
        for p in ("2026-10", "2026-11")
    )
    assert (october.metrics["first_response"].breached, october.metrics["resolution"].met) == (1, 1)
    assert (november.metrics["resolution"].met, november.metrics["first_response"].met) == (0, 1)
    assert "decided at 2026-10-02T10:00:00Z" in october.breaches[0].rule


def test_availability_from_a_real_replay_of_the_services_example() -> None:
    """The engine's own availability outputs (examples/services-*) slot into the report."""
    from pathlib import Path

    from slaclock.processors.engine.policy import compile_policy
    from slaclock.processors.replay import replay
    from slaclock.schemas.policy import load_policy

    root = Path(__file__).resolve().parents[2] / "examples"
    policy_file = root / "services-policy.yaml"
    outputs: list[dict[str, object]] = []
    with (root / "services-events.jsonl").open("rb") as lines:
        replay(compile_policy(load_policy(policy_file)), lines, outputs.append, lambda _r: None)
    reports = [o for o in outputs if o["type"] == "sla.availability_report"]
    assert reports
    info = policy_info(load_policy(policy_file))
    period = str(reports[0]["period"])
    report = build_report(outputs_from_records(outputs), ReportRequest(period=period), info, "t")
    rows = {(r.service_id, r.period): r for r in report.sections[0].availability}
    for output in reports:
        row = rows[(str(output["service_id"]), str(output["period"]))]
        assert (row.uptime_percent, row.met, row.downtime_seconds, row.excused_seconds) == (
            output["uptime_percent"],
            output["met"],
            output["downtime_seconds"],
            output["excused_seconds"],
        )
    for statement in (o for o in outputs if o["type"] == "sla.statement" and o["period"] == period):
        section = next(s for s in report.sections if s.customer_id == statement["customer_id"])
        assert section.credits[0].availability == Decimal(
            str(statement["availability_credits_total"])
        )
        assert section.credits[0].credited == Decimal(str(statement["credits_total"]))
