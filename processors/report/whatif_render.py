"""The what-if comparison as HTML (charts inline), CSV and JSON of the same figures."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from slaclock.processors.engine.instants import US_PER_SECOND, format_us
from slaclock.processors.report import charts
from slaclock.processors.report.figures import METRICS, PRIORITIES, ZERO, format_duration, ratio4
from slaclock.processors.report.render import _ENV, TEMPLATES, percent_text, text
from slaclock.processors.report.whatif import Comparison, Side

HTML_CHANGE_ROWS = 300
HTML_MOVE_ROWS = 300
TEXT_ROWS = 10
GROUP_COLUMNS = (
    "customer_id",
    "tier",
    "metric",
    "priority",
    "met_a",
    "breached_a",
    "running_a",
    "compliance_a",
    "credits_a",
    "met_b",
    "breached_b",
    "running_b",
    "compliance_b",
    "credits_b",
    "currency",
    "breached_difference",
    "compliance_difference",
    "credits_difference",
)
CHANGE_COLUMNS = (
    "ticket_id",
    "metric",
    "cycle",
    "customer_id",
    "tier",
    "priority",
    "outcome_a",
    "outcome_b",
    "credit_a",
    "credit_b",
    "credit_difference",
    "currency",
)


MOVE_COLUMNS = (
    "ticket_id",
    "metric",
    "cycle",
    "customer_id",
    "tier",
    "priority",
    "deadline_a",
    "deadline_b",
    "shift_seconds",
    "shift",
    "outcome_a",
    "outcome_b",
)
RULE_COLUMNS = ("area", "rule", "path", "subject", "before", "after", "effect", "text")


def shift_text(shift_us: int) -> str:
    """+15m, -1h30m, +0s (real time, to the second; finer shifts show as seconds)."""
    seconds = shift_us / US_PER_SECOND
    sign = "-" if shift_us < 0 else "+"
    size = abs(seconds)
    if size and size < 1:
        return f"{sign}{size:g}s"
    return sign + format_duration(size)


def move_rows(comparison: Comparison) -> list[dict[str, str]]:
    return [
        {
            "ticket_id": move.ticket_id,
            "metric": move.metric,
            "cycle": text(move.cycle),
            "customer_id": move.customer_id,
            "tier": move.tier,
            "priority": move.priority,
            "deadline_a": format_us(move.deadline_a),
            "deadline_b": format_us(move.deadline_b),
            "shift_seconds": text(Decimal(move.shift_us) / US_PER_SECOND),
            "shift": shift_text(move.shift_us),
            "outcome_a": move.outcome_a,
            "outcome_b": move.outcome_b,
        }
        for move in comparison.moves
    ]


def rule_rows(comparison: Comparison) -> list[dict[str, str]]:
    return [
        {column: text(value) for column, value in change.to_json().items()}
        for change in comparison.rule_changes
    ]


def shifts_json(comparison: Comparison) -> dict[str, Any]:
    summary = comparison.shifts()

    def seconds(value: int | None) -> float | int | None:
        if value is None:
            return None
        whole, rest = divmod(value, US_PER_SECOND)
        return whole if rest == 0 else value / US_PER_SECOND

    return {
        "count": summary.count,
        "outcome_unchanged": summary.outcome_unchanged,
        "earlier": summary.earlier,
        "later": summary.later,
        "distribution": [{"shift": label, "count": n} for label, n in summary.buckets],
        "least_shift_seconds": seconds(summary.least_us),
        "median_shift_seconds": seconds(summary.median_us),
        "greatest_shift_seconds": seconds(summary.greatest_us),
    }


def whatif_text(comparison: Comparison) -> str:
    """What a person reads in the terminal: the rules that differ, then what they did."""
    lines = []
    rules = comparison.rule_changes
    lines.append(f"Rules that differ from A to B ({len(rules)}):")
    lines += [f"  - {change.text()}" for change in rules] or ["  (none)"]
    summary = comparison.shifts()
    lines.append(f"Outcomes changed: {len(comparison.changes)}")
    for change in comparison.changes[:TEXT_ROWS]:
        lines.append(
            f"  - {change.ticket_id} · {change.metric} · cycle {change.cycle}: "
            f"{change.outcome_a} → {change.outcome_b}"
        )
    if len(comparison.changes) > TEXT_ROWS:
        lines.append(f"  … {len(comparison.changes) - TEXT_ROWS} more")
    lines.append(
        f"Deadlines moved: {summary.count} ({summary.outcome_unchanged} without changing the "
        f"outcome; {summary.earlier} earlier, {summary.later} later)"
    )
    if summary.count:
        assert summary.median_us is not None
        assert summary.least_us is not None and summary.greatest_us is not None
        lines.append(
            f"  shift: median {shift_text(summary.median_us)}, from "
            f"{shift_text(summary.least_us)} to {shift_text(summary.greatest_us)}"
        )
        lines += [f"  {label}: {n}" for label, n in summary.buckets if n]
        for move in comparison.moves[:TEXT_ROWS]:
            lines.append(
                f"  - {move.ticket_id} · {move.metric} · cycle {move.cycle}: "
                f"{format_us(move.deadline_a)} → {format_us(move.deadline_b)} "
                f"({shift_text(move.shift_us)})"
            )
        if summary.count > TEXT_ROWS:
            lines.append(f"  … {summary.count - TEXT_ROWS} more")
    return "\n".join(lines) + "\n"


def _difference(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else b - a


def group_rows(comparison: Comparison) -> list[dict[str, str]]:
    rows = []
    for (customer, tier, metric, priority), (a, b) in comparison.groups.items():
        rows.append(
            {
                "customer_id": customer,
                "tier": tier,
                "metric": metric,
                "priority": priority,
                **_side("a", a),
                **_side("b", b),
                "currency": a.currency or b.currency,
                "breached_difference": text(b.breached - a.breached),
                "compliance_difference": text(_difference(a.compliance, b.compliance)),
                "credits_difference": text(b.credits - a.credits),
            }
        )
    return rows


def _side(suffix: str, side: Side) -> dict[str, str]:
    return {
        f"met_{suffix}": text(side.met),
        f"breached_{suffix}": text(side.breached),
        f"running_{suffix}": text(side.running),
        f"compliance_{suffix}": text(side.compliance),
        f"credits_{suffix}": text(side.credits),
    }


def _totals(comparison: Comparison, n: int) -> dict[str, Any]:
    """One side's totals: outcome counts and compliance, credits per currency (never a sum
    of different currencies)."""
    side = comparison.totals[n]
    return {
        "met": text(side.met),
        "breached": text(side.breached),
        "running": text(side.running),
        "compliance": text(side.compliance),
        "credits": {c: text(pair[n]) for c, pair in comparison.credits_by_currency.items()},
    }


def change_rows(comparison: Comparison) -> list[dict[str, str]]:
    return [
        {column: text(getattr(change, column)) for column in CHANGE_COLUMNS}
        for change in comparison.changes
    ]


def _csv(columns: tuple[str, ...], rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _by_metric_priority(comparison: Comparison) -> dict[tuple[str, str], tuple[Side, Side]]:
    merged: dict[tuple[str, str], tuple[Side, Side]] = {}
    for (_c, _t, metric, priority), (a, b) in comparison.groups.items():
        if metric not in METRICS:
            continue
        pair = merged.setdefault((metric, priority), (Side(), Side()))
        for mine, theirs in zip(pair, (a, b), strict=True):
            mine.met += theirs.met
            mine.breached += theirs.breached
            mine.running += theirs.running
            mine.credits += theirs.credits
    return {
        key: merged[key] for key in sorted(merged, key=lambda k: (METRICS.index(k[0]), _p(k[1])))
    }


def _p(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else len(PRIORITIES)


def whatif_json(comparison: Comparison, meta: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "report": "slaclock what-if",
            **meta,
            "totals": {"a": _totals(comparison, 0), "b": _totals(comparison, 1)},
            "credits_by_currency": {
                c: {"a": text(x), "b": text(y), "difference": text(y - x)}
                for c, (x, y) in comparison.credits_by_currency.items()
            },
            "rule_changes": [change.to_json() for change in comparison.rule_changes],
            "groups": group_rows(comparison),
            "changes": change_rows(comparison),
            "deadlines_moved": shifts_json(comparison),
            "moves": move_rows(comparison),
            "charts": ["whatif-compliance", "whatif-breaches", "whatif-credits"],
        },
        option=orjson.OPT_INDENT_2,
    )


def whatif_html(comparison: Comparison, meta: dict[str, Any]) -> str:
    by_mp = _by_metric_priority(comparison)
    labels = [f"{m} / {p}" for m, p in by_mp]
    credits: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for (customer, _t, _m, _p2), (a, b) in comparison.groups.items():
        credits[customer][0] += a.credits
        credits[customer][1] += b.credits
    drawn = {
        "whatif-compliance": charts.whatif_chart(
            "whatif-compliance",
            labels,
            [_pct(a.compliance) for a, _ in by_mp.values()],
            [_pct(b.compliance) for _, b in by_mp.values()],
            "Compliance per metric and priority, A and B",
            "%",
        ),
        "whatif-breaches": charts.whatif_chart(
            "whatif-breaches",
            labels,
            [Decimal(a.breached) for a, _ in by_mp.values()],
            [Decimal(b.breached) for _, b in by_mp.values()],
            "Breached targets per metric and priority, A and B",
            "breached",
        ),
        "whatif-credits": charts.whatif_chart(
            "whatif-credits",
            list(credits),
            [v[0] for v in credits.values()],
            [v[1] for v in credits.values()],
            "Credits per customer, A and B",
            "amount (contract currency)",
        ),
    }
    template = _ENV.get_template("whatif.html.j2")
    return template.render(
        meta=meta,
        c=comparison,
        rows=group_rows(comparison),
        by_mp=by_mp,
        changes=comparison.changes[:HTML_CHANGE_ROWS],
        more_changes=max(0, len(comparison.changes) - HTML_CHANGE_ROWS),
        rules=comparison.rule_changes,
        shifts=comparison.shifts(),
        moves=move_rows(comparison)[:HTML_MOVE_ROWS],
        more_moves=max(0, len(comparison.moves) - HTML_MOVE_ROWS),
        shift_text=shift_text,
        charts=drawn,
        pct=percent_text,
        text=text,
        ratio4=ratio4,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
    )


def _pct(value: Decimal | None) -> Decimal | None:
    return None if value is None else value * 100


def write_whatif(comparison: Comparison, meta: dict[str, Any], prefix: Path) -> list[Path]:
    """Write PREFIX.html, PREFIX.json, PREFIX.csv (per group), PREFIX-changes.csv (flipped
    outcomes), PREFIX-deadlines.csv (deadlines moved) and PREFIX-rules.csv (rules that
    differ)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [
        prefix.with_name(prefix.name + ".html"),
        prefix.with_name(prefix.name + ".json"),
        prefix.with_name(prefix.name + ".csv"),
        prefix.with_name(prefix.name + "-changes.csv"),
        prefix.with_name(prefix.name + "-deadlines.csv"),
        prefix.with_name(prefix.name + "-rules.csv"),
    ]
    paths[0].write_text(whatif_html(comparison, meta), encoding="utf-8")
    paths[1].write_bytes(whatif_json(comparison, meta))
    paths[2].write_text(_csv(GROUP_COLUMNS, group_rows(comparison)), encoding="utf-8")
    paths[3].write_text(_csv(CHANGE_COLUMNS, change_rows(comparison)), encoding="utf-8")
    paths[4].write_text(_csv(MOVE_COLUMNS, move_rows(comparison)), encoding="utf-8")
    paths[5].write_text(_csv(RULE_COLUMNS, rule_rows(comparison)), encoding="utf-8")
    return paths
