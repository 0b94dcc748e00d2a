"""The report's figures against figures computed here, independently, from the same outputs."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from slaclock.processors.report.figures import METRICS, PRIORITIES, ReportRequest, build_report
from slaclock.processors.report.outputs import outputs_from_records
from slaclock.processors.report.policy_info import policy_info
from slaclock.processors.report.render import report_csv, report_html, report_json
from slaclock.schemas.policy import parse_policy
from slaclock.workload import WorkloadShape, ticket_events
from tests.report.workload import (
    CUSTOMERS,
    POLICY_YAML,
    TICKETS,
    TIMEZONES,
    known_events,
    replay_outputs,
)
from tests.report.workload import (
    PRIORITIES as TICKET_PRIORITIES,
)

METRIC_ORDER = {m: n for n, m in enumerate(METRICS)}


@pytest.fixture(scope="module")
def outputs() -> list[dict[str, Any]]:
    return replay_outputs(known_events())


@pytest.fixture(scope="module")
def october(outputs: list[dict[str, Any]]) -> Any:
    info = policy_info(parse_policy(POLICY_YAML, "test-policy.yaml"))
    return build_report(
        outputs_from_records(outputs), ReportRequest(period="2026-10"), info, "test"
    )


def _local_month(at: str, customer: str) -> str:
    return datetime.fromisoformat(at).astimezone(ZoneInfo(TIMEZONES[customer])).strftime("%Y-%m")


def independent_counts(
    outputs: list[dict[str, Any]], month: str
) -> dict[tuple[str, str, str], list[int]]:
    """(customer, metric, priority) -> [met, breached] by the statement rules, computed plainly."""
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    counted_met: set[tuple[str, str, int]] = set()
    for o in outputs:
        customer = o.get("customer_id")
        if o["type"] == "sla.breach":
            if _local_month(o.get("decided_at") or o["at"], customer) == month:
                counts[(customer, o["metric"], o["priority"])][1] += 1
        elif o["type"] == "sla.completed" and o["outcome"] == "met":
            key = (o["ticket_id"], o["metric"], o["cycle"])
            if key in counted_met:
                continue
            counted_met.add(key)
            if _local_month(o["at"], customer) == month:
                counts[(customer, o["metric"], o["priority"])][0] += 1
    return counts


def constructed_counts() -> dict[tuple[str, str, str], list[int]]:
    """The same, from how the workload was built (see tests/report/workload.py)."""
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for i in range(TICKETS):
        customer = CUSTOMERS[(i // 4) % 3]
        priority = TICKET_PRIORITIES[i % 4]
        counts[(customer, "first_response", priority)][1 if i % 3 == 0 else 0] += 1
        counts[(customer, "resolution", priority)][1 if i % 5 == 0 else 0] += 1
    # the boundary ticket of acme: breached first response in October in Berlin, met
    # resolution (2 h of 4 h) also on 1 October Berlin time
    counts[("acme", "first_response", "urgent")][1] += 1
    counts[("acme", "resolution", "urgent")][0] += 1
    # walk-in's boundary ticket: breach on 30 September (UTC), solved in time at 00:30Z
    # on 1 October: its met resolution counts in October
    counts[("walk-in", "resolution", "urgent")][0] += 1
    return counts


def _section(report: Any, customer: str | None) -> Any:
    return next(s for s in report.sections if s.customer_id == customer)


def test_compliance_per_customer_metric_and_priority_equals_an_independent_count(
    outputs: list[dict[str, Any]], october: Any
) -> None:
    expected = independent_counts(outputs, "2026-10")
    assert expected == constructed_counts()
    for customer in CUSTOMERS:
        section = _section(october, customer)
        for metric in METRICS:
            for priority in PRIORITIES:
                met, breached = expected.get((customer, metric, priority), [0, 0])
                tally = section.by_priority[metric][priority]
                assert (tally.met, tally.breached) == (met, breached), (customer, metric, priority)
            met = sum(v[0] for k, v in expected.items() if k[:2] == (customer, metric))
            breached = sum(v[1] for k, v in expected.items() if k[:2] == (customer, metric))
            assert (section.metrics[metric].met, section.metrics[metric].breached) == (
                met,
                breached,
            )
            if met + breached:
                assert section.metrics[metric].compliance == (
                    Decimal(met) / Decimal(met + breached)
                ).quantize(Decimal("0.0001"))
        assert section.overall.met == sum(v[0] for k, v in expected.items() if k[0] == customer)
        assert section.overall.breached == sum(
            v[1] for k, v in expected.items() if k[0] == customer
        )
    everyone = _section(october, None)
    assert everyone.overall.breached == sum(v[1] for v in expected.values())
    assert everyone.overall.met == sum(v[0] for v in expected.values())


def test_report_counts_equal_the_engines_monthly_statements(
    outputs: list[dict[str, Any]], october: Any
) -> None:
    statements = [o for o in outputs if o["type"] == "sla.statement" and o["period"] == "2026-10"]
    if not any(o["type"] == "sla.statement" for o in outputs):
        pytest.skip("this engine emits no statements yet")
    assert {s["customer_id"] for s in statements} == {"acme", "beta"}
    for statement in statements:
        section = _section(october, statement["customer_id"])
        for metric in METRICS:
            tally = section.metrics[metric]
            assert [tally.met, tally.breached] == [
                statement["metrics"][metric]["met"],
                statement["metrics"][metric]["breached"],
            ]
        assert section.credits[0].source == "statement"


def test_credits_gross_capped_and_cap_equal_an_independent_allocation(
    outputs: list[dict[str, Any]], october: Any
) -> None:
    percent = {"first_response": Decimal(1), "resolution": Decimal("2.5")}
    fee, cap = Decimal("10000.00"), Decimal("1500.00")
    breaches = sorted(
        (
            o
            for o in outputs
            if o["type"] == "sla.breach"
            and o["customer_id"] == "acme"
            and _local_month(o["decided_at"], "acme") == "2026-10"
        ),
        key=lambda o: (o["decided_at"], o["ticket_id"], METRIC_ORDER[o["metric"]], o["cycle"]),
    )
    gross = sum((percent[b["metric"]] / 100 * fee for b in breaches), start=Decimal(0))
    credited, cut = Decimal(0), 0
    for breach in breaches:
        amount = percent[breach["metric"]] / 100 * fee
        if credited + amount > cap:
            amount = max(cap - credited, Decimal(0))
            cut += 1
        credited += amount
    assert gross > cap  # the workload is built to reach the cap
    figures = _section(october, "acme").credits[0]
    assert (figures.gross, figures.credited, figures.cap, figures.capped_count) == (
        gross,
        credited,
        cap,
        cut,
    )
    assert figures.cap_used == Decimal("1.0000")
    assert figures.count == len(breaches)
    assert figures.net == credited  # nothing earned back yet
    assert figures.earn_back_status.startswith(("forfeited", "pending"))
    walk_in = _section(october, "walk-in")
    assert walk_in.credits == []  # no contract, no credit
    assert walk_in.overall.breached > 0


def test_boundary_breach_counts_in_the_customers_own_month(october: Any) -> None:
    acme_breaches = {b.ticket_id for b in _section(october, "acme").breaches}
    walk_in_breaches = {b.ticket_id for b in _section(october, "walk-in").breaches}
    assert "E-acme" in acme_breaches  # 00:45 on 1 October in Berlin
    assert "E-walk" not in walk_in_breaches  # 22:45 on 30 September in UTC


def test_without_statements_each_customer_still_gets_its_contracts_month(
    outputs: list[dict[str, Any]],
) -> None:
    info = policy_info(parse_policy(POLICY_YAML, "test-policy.yaml"))
    plain = [o for o in outputs if o["type"] != "sla.statement"]
    report = build_report(outputs_from_records(plain), ReportRequest(period="2026-10"), info, "t")
    assert "E-acme" in {b.ticket_id for b in _section(report, "acme").breaches}
    expected = independent_counts(outputs, "2026-10")
    tally = _section(report, "acme").by_priority["first_response"]["urgent"]
    assert [tally.met, tally.breached] == expected[("acme", "first_response", "urgent")]


def test_breach_rows_carry_deadline_overrun_and_rule(october: Any) -> None:
    row = next(b for b in _section(october, "acme").breaches if b.ticket_id == "E-acme")
    assert row.deadline == "2026-09-30T22:45:00Z"
    assert row.overrun_seconds == 900  # answered after 30 min of a 15 min target
    assert "15m of counted time on the always calendar" in row.rule


_DATA_K = re.compile(r'data-k="([^"]+)"( data-v="[^"]*")?[^>]*>([^<]*)<')


def html_figures(html: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw_key, data_value, shown in _DATA_K.findall(html):
        key = unescape(raw_key)
        # data-v holds the figure where the page shows it for people (95.83%, 2h30m, no cap)
        value = unescape(data_value[len(' data-v="') : -1]) if data_value else shown.strip()
        assert found.get(key, value) == value, key
        found[key] = value
    return found


def test_csv_and_json_agree_with_the_html(october: Any) -> None:
    shown = html_figures(report_html(october))
    rows = list(csv.DictReader(io.StringIO(report_csv(october))))
    from_csv = {
        f"{r['customer']}/{r['section']}/{r['item']}/{r['measure']}": r["value"] for r in rows
    }
    assert len(shown) > 200
    missing = [k for k in shown if k not in from_csv]
    assert not missing
    assert {k: from_csv[k] for k in shown} == shown
    document = orjson.loads(report_json(october))
    for section in document["sections"]:
        customer = section["customer_id"] or "(all)"
        for metric, tally in section["metrics"].items():
            for measure in ("met", "breached", "compliance"):
                key = f"{customer}/metric/{metric}/{measure}"
                assert shown[key] == ("" if tally[measure] is None else str(tally[measure])), key
        for metric, by_priority in section["by_priority"].items():
            for priority, tally in by_priority.items():
                assert shown[f"{customer}/priority/{metric}.{priority}/breached"] == str(
                    tally["breached"]
                )
        for credit in section["credits"]:
            for measure in ("credited", "gross", "count", "net"):
                key = f"{customer}/credits/{credit['currency']}/{measure}"
                assert shown[key] == ("" if credit[measure] is None else str(credit[measure]))
        assert shown[f"{customer}/breach_list/all/count"] == str(len(section["breaches"]))


def test_generated_workload_with_reopens_and_priority_changes_counts_as_statements_do() -> None:
    """The shared generator's tickets reopen and change priority: late decisions, met twice."""
    events = ticket_events(
        WorkloadShape(
            tickets=600,
            start=datetime.fromisoformat("2026-10-01T00:00:00+00:00"),
            spread_seconds=45 * 86_400,
            mean_gap_seconds=3600.0,
            customers=("acme", "beta", "walk-in"),
            seed=5,
        )
    )
    outputs = replay_outputs(events, until="2027-01-01T00:00:00Z")
    decided_later = [o for o in outputs if o["type"] == "sla.breach" and o["decided_at"] != o["at"]]
    assert decided_later  # the workload exercises late decisions
    info = policy_info(parse_policy(POLICY_YAML, "test-policy.yaml"))
    for month in ("2026-10", "2026-11"):
        report = build_report(outputs_from_records(outputs), ReportRequest(period=month), info, "t")
        expected = independent_counts(outputs, month)
        for customer in CUSTOMERS:
            section = _section(report, customer)
            for metric in METRICS:
                for priority in PRIORITIES:
                    tally = section.by_priority[metric][priority]
                    assert [tally.met, tally.breached] == expected.get(
                        (customer, metric, priority), [0, 0]
                    ), (month, customer, metric, priority)
        statements = [o for o in outputs if o["type"] == "sla.statement" and o["period"] == month]
        for statement in statements:
            section = _section(report, statement["customer_id"])
            for metric in METRICS:
                tally = section.metrics[metric]
                counted = statement["metrics"][metric]
                assert [tally.met, tally.breached] == [counted["met"], counted["breached"]]


def test_cancelled_cycles_are_no_outcome_in_the_report(outputs: list[dict[str, Any]]) -> None:
    info = policy_info(parse_policy(POLICY_YAML, "test-policy.yaml"))
    # A cancellation beside every completion's cycle, breached or not.
    cancelled = [
        {
            **{k: o[k] for k in ("ticket_id", "customer_id", "tier", "priority", "metric", "at")},
            "event_id": f"cancel-{o['event_id']}",
            "type": "sla.cancelled",
            "cycle": o["cycle"] + 100,
            "reason": "solved",
            "elapsed_seconds": o["elapsed_seconds"],
            "target_seconds": o["target_seconds"],
            "breached": o["outcome"] == "breached",
        }
        for o in outputs
        if o["type"] == "sla.completed"
    ]
    assert {c["breached"] for c in cancelled} == {True, False}

    def report(of: list[dict[str, Any]]) -> str:
        built = build_report(outputs_from_records(of), ReportRequest(period="2026-10"), info, "t")
        return report_json(built)

    assert report(outputs + cancelled) == report(outputs)
