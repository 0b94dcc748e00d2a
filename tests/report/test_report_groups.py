"""The report's "By group" section (docs/semantics.md: Groups): compliance per group and
group metric, the hand-off matrix with the median time held, and customer breaches charged
to the group holding the ticket at the deadline. Pure figures at exact instants, then a
generated workload with groups through `slaclock report` (HTML, CSV and JSON agree)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from slaclock.cli import app
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.report.figures import BreachRow, Window, month_window
from slaclock.processors.report.groups import (
    NO_GROUP,
    breaches_while_held,
    group_rows,
    handoffs,
    holder_at,
    median_us,
)
from slaclock.processors.report.outputs import outputs_from_records
from tests.report.test_report_figures import html_figures

ROOT = Path(__file__).resolve().parents[2]
OCTOBER = month_window("2026-10", "UTC")
S = 1_000_000


def at(text: str) -> int:
    return parse_instant(text)


def breach_row(ticket: str, deadline: str, metric: str = "resolution") -> BreachRow:
    return BreachRow(
        ticket, "acme", "gold", "high", metric, 1, deadline, deadline, 3600, None, None, ""
    )


# -- hand-offs -------------------------------------------------------------------------------


def test_a_hand_off_counts_the_time_the_from_group_held_the_ticket() -> None:
    changes = [
        ("T1", at("2026-10-05T09:00:00Z"), None, "support"),
        ("T1", at("2026-10-05T11:30:00Z"), "support", "engineering"),
    ]
    [cell] = handoffs(changes, OCTOBER)
    assert (cell.source, cell.target, cell.count, cell.median_held_us) == (
        "support",
        "engineering",
        1,
        9000 * S,
    )


def test_an_unassignment_is_not_a_hand_off_and_a_later_hold_starts_afresh() -> None:
    changes = [
        ("T1", at("2026-10-05T09:00:00Z"), None, "support"),
        ("T1", at("2026-10-05T10:00:00Z"), "support", None),
        ("T1", at("2026-10-05T12:00:00Z"), None, "support"),
        ("T1", at("2026-10-05T12:10:00Z"), "support", "tier2"),
    ]
    [cell] = handoffs(changes, OCTOBER)
    assert (cell.source, cell.target, cell.count, cell.median_held_us) == (
        "support",
        "tier2",
        1,
        600 * S,
    )


def test_median_held_of_an_odd_and_an_even_count() -> None:
    assert median_us([3, 1, 2]) == 2
    assert median_us([1, 2, 3, 10]) == 2  # (2 + 3) // 2: to the microsecond below
    changes = [
        ("T1", at("2026-10-05T09:00:00Z"), None, "support"),
        ("T1", at("2026-10-05T10:00:00Z"), "support", "tier2"),
        ("T2", at("2026-10-05T09:00:00Z"), None, "support"),
        ("T2", at("2026-10-05T12:00:00Z"), "support", "tier2"),
    ]
    [cell] = handoffs(changes, OCTOBER)
    assert (cell.count, cell.median_held_us) == (2, 2 * 3600 * S)


def test_only_hand_offs_inside_the_window_count() -> None:
    changes = [
        ("T1", at("2026-09-30T23:00:00Z"), None, "support"),
        ("T1", at("2026-09-30T23:59:59.999999Z"), "support", "tier2"),  # September
        ("T1", at("2026-10-01T00:00:00Z"), "tier2", "support"),  # October's first instant
        ("T1", at("2026-11-01T00:00:00Z"), "support", "tier2"),  # November
    ]
    assert [(c.source, c.target, c.median_held_us) for c in handoffs(changes, OCTOBER)] == [
        ("tier2", "support", 1)
    ]


# -- customer breaches while held -------------------------------------------------------------


def test_a_breach_is_charged_to_the_group_holding_the_ticket_at_its_deadline() -> None:
    changes = [
        ("T1", at("2026-10-05T09:00:00Z"), None, "support"),
        ("T1", at("2026-10-05T10:00:00Z"), "support", "engineering"),
    ]
    found = breaches_while_held(
        changes,
        [
            breach_row("T1", "2026-10-05T09:59:59.999999Z", "first_response"),
            breach_row("T1", "2026-10-05T10:00:00Z"),  # the hand-off's instant: the new group
        ],
    )
    assert found == {
        "engineering": {
            "first_response": 0,
            "next_response": 0,
            "periodic_update": 0,
            "resolution": 1,
        },
        "support": {"first_response": 1, "next_response": 0, "periodic_update": 0, "resolution": 0},
    }


def test_a_breach_before_any_hold_or_after_an_unassignment_has_no_group() -> None:
    changes = [
        ("T1", at("2026-10-05T09:00:00Z"), None, "support"),
        ("T1", at("2026-10-05T10:00:00Z"), "support", None),
    ]
    timeline = [(c[1], c[3]) for c in changes]
    assert holder_at(timeline, at("2026-10-05T08:59:59Z")) is None
    assert holder_at(timeline, at("2026-10-05T09:00:00Z")) == "support"
    assert holder_at(timeline, at("2026-10-05T10:00:00Z")) is None
    found = breaches_while_held(
        changes,
        [breach_row("T1", "2026-10-05T11:00:00Z"), breach_row("T2", "2026-10-05T11:00:00Z")],
    )
    assert list(found) == [NO_GROUP] and found[NO_GROUP]["resolution"] == 2


# -- compliance per group ---------------------------------------------------------------------


def group_output(kind: str, metric: str, when: str, **fields: Any) -> dict[str, Any]:
    base = {"type": kind, "ticket_id": "T1", "customer_id": "acme", "metric": metric, "cycle": 1}
    return {**base, "group": "support", "at": when, **fields}


def test_group_compliance_counts_breaches_when_decided_and_a_cycle_met_once() -> None:
    outputs = outputs_from_records(
        [
            # deadline in September, decided in October: October's
            group_output(
                "sla.breach",
                "group_response",
                "2026-09-30T23:00:00Z",
                decided_at="2026-10-01T00:00:00Z",
            ),
            group_output(
                "sla.completed", "group_resolution", "2026-10-03T00:00:00Z", outcome="met"
            ),
            # met again (a reopen's completion of the same cycle): counted once
            group_output(
                "sla.completed", "group_resolution", "2026-10-04T00:00:00Z", outcome="met"
            ),
            group_output(
                "sla.completed", "group_resolution", "2026-11-01T00:00:00Z", outcome="met", cycle=2
            ),
        ]
    )
    [row] = group_rows(outputs, OCTOBER, {})
    assert (
        row.group,
        row.metrics["group_response"].breached,
        row.metrics["group_resolution"].met,
    ) == (
        "support",
        1,
        1,
    )
    assert (row.overall.met, row.overall.breached, str(row.overall.compliance)) == (1, 1, "0.5000")


def test_a_group_month_is_its_calendars_month_without_a_statement() -> None:
    outputs = outputs_from_records(
        [group_output("sla.completed", "group_response", "2026-09-30T22:30:00Z", outcome="met")]
    )
    # 00:30 on October 1st in Berlin: October's for a Berlin group, not in UTC's October
    [berlin] = group_rows(outputs, OCTOBER, {"support": "Europe/Berlin"})
    [utc] = group_rows(outputs, OCTOBER, {})
    assert (berlin.metrics["group_response"].met, utc.metrics["group_response"].met) == (1, 0)
    assert berlin.window.start_us == at("2026-09-30T22:00:00Z")


def test_groups_the_policy_defines_get_a_row_even_without_outputs() -> None:
    rows = group_rows(outputs_from_records([]), Window(0, 1, "UTC", None), {"tier2": "UTC"})
    assert [(r.group, r.overall.total) for r in rows] == [("tier2", 0)]


# -- a generated workload with groups, through the command --------------------------------------


def independent_handoffs(events: list[dict[str, Any]], start: int, end: int) -> dict[str, int]:
    """From-group -> hand-offs in [start, end), straight from the assignments of the events
    (the generated events are in time order and all valid)."""
    holder: dict[str, str | None] = {}
    counts: dict[str, int] = {}
    for event in events:
        if event["type"] != "ticket.assigned":
            continue
        before = holder.get(event["ticket_id"])
        after = event.get("group") or None
        holder[event["ticket_id"]] = after
        instant = parse_instant(event["occurred_at"])
        if before and after and before != after and start <= instant < end:
            counts[before] = counts.get(before, 0) + 1
    return counts


def test_report_by_group_on_a_generated_workload(tmp_path: Path) -> None:
    policy = ROOT / "benchmarks" / "policy-groups.yaml"
    events, outputs, prefix = tmp_path / "ev.jsonl", tmp_path / "out.jsonl", tmp_path / "r"
    runner = CliRunner()
    for args in (
        [
            "generate",
            "--policy",
            str(policy),
            "--tickets",
            "300",
            "--period",
            "2026-10",
            "--seed",
            "3",
            "--out",
            str(events),
        ],
        [
            "replay",
            "--policy",
            str(policy),
            "--events",
            str(events),
            "--out",
            str(outputs),
            "--until",
            "2026-11-05T00:00:00Z",
        ],
        [
            "report",
            "--outputs",
            str(outputs),
            "--policy",
            str(policy),
            "--events",
            str(events),
            "--period",
            "2026-10",
            "--out",
            str(prefix),
        ],
    ):
        done = runner.invoke(app, args)
        assert done.exit_code == 0, done.output
    document = orjson.loads((tmp_path / "r.json").read_bytes())
    groups = document["groups"]
    assert groups["holds_known"] is True
    assert [row["group"] for row in groups["compliance"]] == ["engineering", "support", "tier2"]
    for row in groups["compliance"]:  # the same counting as the group statements
        statement = row["statement"]
        assert statement is not None and row["metrics"] == statement["metrics"], row["group"]
    lines = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    expected = independent_handoffs(lines, OCTOBER.start_us, OCTOBER.end_us)
    found: dict[str, int] = {}
    for cell in groups["handoffs"]:
        found[cell["from"]] = found.get(cell["from"], 0) + cell["count"]
        assert cell["median_held_seconds"] > 0
    assert found == expected and sum(found.values()) > 3
    held = groups["customer_breaches_by_holding_group"]
    assert sum(sum(c.values()) for c in held.values()) == len(document["sections"][0]["breaches"])
    assert set(held) - {NO_GROUP} and groups["charts"] == [
        "groups-compliance",
        "groups-handoffs",
        "groups-held-breaches",
    ]

    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    shown = {k: v for k, v in html_figures(html).items() if k.startswith("(groups)/")}
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8"))))
    from_csv = {
        f"{r['customer']}/{r['section']}/{r['item']}/{r['measure']}": r["value"]
        for r in rows
        if r["customer"] == "(groups)"
    }
    assert len(shown) > 30 and {k: from_csv[k] for k in shown} == shown
    for cell in groups["handoffs"]:
        key = f"(groups)/handoff/{cell['from']}>{cell['to']}"
        assert from_csv[f"{key}/count"] == str(cell["count"])
    for chart in groups["charts"]:
        assert f'data-chart="{chart}"' in html
