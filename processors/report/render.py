"""The report as HTML (self-contained: embedded CSS, inline SVG, no script), CSV and JSON.

All three are written from the same `Report`: the JSON is its full structure, the CSV its
figures one per row (`customer, section, item, measure, value`), and every figure the HTML
shows carries the same key in a `data-k` attribute, so the three can be checked against
each other.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import orjson

from slaclock.processors.engine.explain import CycleTimeline
from slaclock.processors.engine.instants import seconds_value
from slaclock.processors.report import charts
from slaclock.processors.report.figures import (
    METRICS,
    PRIORITIES,
    BreachRow,
    CreditFigures,
    Report,
    Section,
    Tally,
    format_duration,
)
from slaclock.processors.report.groups import GROUP_METRICS, GroupFigures
from slaclock.processors.report.timelines import BreachKey, timeline_id, timeline_svg

ALL = "(all)"
GROUPS = "(groups)"
"""The `customer` column of the "By group" figures in the CSV (and their keys' first part)."""
HTML_BREACH_ROWS = 200
TEMPLATES = Path(__file__).parent / "templates"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def customer_key(section: Section) -> str:
    return section.customer_id if section.customer_id is not None else ALL


def text(value: object) -> str:
    """A figure as written in all three formats: '' for none, decimals as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tally(prefix: str, tally: Tally) -> Iterator[tuple[str, str]]:
    yield f"{prefix}/met", text(tally.met)
    yield f"{prefix}/breached", text(tally.breached)
    yield f"{prefix}/compliance", text(tally.compliance)


def _credit(prefix: str, credit: CreditFigures) -> Iterator[tuple[str, str]]:
    for measure in (
        "count",
        "capped_count",
        "gross",
        "cap",
        "credited",
        "cap_used",
        "availability",
        "earned_back",
        "net",
    ):
        yield f"{prefix}/{measure}", text(getattr(credit, measure))


def section_figures(section: Section) -> Iterator[tuple[str, str]]:
    """(key, value) of every figure of a section; key = customer/section/item.../measure."""
    c = customer_key(section)
    for metric in METRICS:
        yield from _tally(f"{c}/metric/{metric}", section.metrics[metric])
    yield from _tally(f"{c}/overall/all", section.overall)
    for metric in METRICS:
        for priority in PRIORITIES:
            yield from _tally(
                f"{c}/priority/{metric}.{priority}", section.by_priority[metric][priority]
            )
    for tier in sorted(section.by_tier):
        for metric in METRICS:
            yield from _tally(f"{c}/tier/{tier}.{metric}", section.by_tier[tier][metric])
    for bucket, by_metric in section.trend.items():
        for metric in METRICS:
            yield f"{c}/trend/{bucket}.{metric}/breaches", text(by_metric[metric])
    for label, n in section.time_used.items():
        yield f"{c}/time_used/{label}/completions", text(n)
    for credit in section.credits:
        yield from _credit(f"{c}/credits/{credit.currency}", credit)
    for row in section.availability:
        prefix = f"{c}/availability/{row.service_id}.{row.period}"
        for measure in (
            "uptime_percent",
            "target_percent",
            "met",
            "measured_seconds",
            "downtime_seconds",
            "excused_seconds",
            "budget_seconds",
            "alerts",
        ):
            yield f"{prefix}/{measure}", text(getattr(row, measure))
    yield f"{c}/breach_list/all/count", text(len(section.breaches))


def group_figures_items(figures: GroupFigures | None) -> Iterator[tuple[str, str]]:
    """(key, value) of every "By group" figure: compliance per group and group metric,
    hand-offs from>to (count, median time held), customer breaches per holding group."""
    if figures is None:
        return
    for row in figures.rows:
        for metric in GROUP_METRICS:
            yield from _tally(f"{GROUPS}/group/{row.group}.{metric}", row.metrics[metric])
        yield from _tally(f"{GROUPS}/group/{row.group}.overall", row.overall)
    for cell in figures.handoffs:
        key = f"{GROUPS}/handoff/{cell.source}>{cell.target}"
        yield f"{key}/count", text(cell.count)
        yield f"{key}/median_held_seconds", text(seconds_value(cell.median_held_us))
    for holder, counts in figures.breaches_while_held.items():
        for metric in METRICS:
            yield f"{GROUPS}/held_breaches/{holder}.{metric}/breaches", text(counts[metric])
        yield f"{GROUPS}/held_breaches/{holder}.all/breaches", text(sum(counts.values()))


def report_figures(report: Report) -> dict[str, str]:
    found = {k: v for section in report.sections for k, v in section_figures(section)}
    found.update(group_figures_items(report.groups))
    return found


def report_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["customer", "section", "item", "measure", "value"])
    for section in report.sections:
        for key, value in section_figures(section):
            customer, part, item, measure = key.split("/")
            writer.writerow([customer, part, item, measure, value])
    for key, value in group_figures_items(report.groups):
        customer, part, item, measure = key.split("/")
        writer.writerow([customer, part, item, measure, value])
    return buffer.getvalue()


BREACH_COLUMNS = (
    "customer_id",
    "ticket_id",
    "tier",
    "priority",
    "metric",
    "cycle",
    "deadline",
    "decided_at",
    "target_seconds",
    "overrun_seconds",
    "completed_at",
    "rule",
)


def breaches_csv(report: Report) -> str:
    """Every breached outcome of the period, all customers (the first section has them all)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(BREACH_COLUMNS)
    for row in report.sections[0].breaches:
        writer.writerow([text(getattr(row, column)) for column in BREACH_COLUMNS])
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {
        "met": tally.met,
        "breached": tally.breached,
        "compliance": text(tally.compliance) or None,
    }


def section_json(section: Section) -> dict[str, Any]:
    return {
        "customer_id": section.customer_id,
        "window": {
            "period": section.window.period,
            "label": section.window.label,
            "start_us": section.window.start_us,
            "end_us": section.window.end_us,
            "timezone": section.window.timezone,
        },
        "tiers": section.tiers,
        "metrics": {m: _tally_json(t) for m, t in section.metrics.items()},
        "overall": _tally_json(section.overall),
        "by_priority": {
            m: {p: _tally_json(t) for p, t in by_p.items()}
            for m, by_p in section.by_priority.items()
        },
        "by_tier": {
            tier: {m: _tally_json(t) for m, t in by_m.items()}
            for tier, by_m in sorted(section.by_tier.items())
        },
        "trend": {"unit": section.trend_unit, "buckets": section.trend},
        "time_used": section.time_used,
        "closest": _plain(section.closest),
        "breaches": _plain(section.breaches),
        "credits": _plain(section.credits),
        "statement": section.statement,
        "availability": _plain(section.availability),
        "min_compliance": text(section.min_compliance) or None,
        "targets": section.targets,
        "charts": chart_ids(section),
        "notes": section.notes,
    }


def report_json(report: Report) -> bytes:
    document = {
        "report": "slaclock SLA report",
        "period": report.window_label,
        "source": report.source,
        "notes": report.notes,
        "sections": [section_json(s) for s in report.sections],
        "groups": groups_json(report.groups),
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def groups_json(figures: GroupFigures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "window": {
            "label": figures.window.label,
            "start_us": figures.window.start_us,
            "end_us": figures.window.end_us,
        },
        "compliance": [
            {
                "group": row.group,
                "window": {"label": row.window.label, "timezone": row.window.timezone},
                "metrics": {m: _tally_json(t) for m, t in row.metrics.items()},
                "overall": _tally_json(row.overall),
                "statement": row.statement,
            }
            for row in figures.rows
        ],
        "holds_known": figures.holds_known,
        "handoffs": [
            {
                "from": cell.source,
                "to": cell.target,
                "count": cell.count,
                "median_held_seconds": seconds_value(cell.median_held_us),
            }
            for cell in figures.handoffs
        ],
        "customer_breaches_by_holding_group": figures.breaches_while_held,
        "charts": [chart_id for chart_id, _svg in group_charts(figures, draw=False).values()],
    }


def group_charts(figures: GroupFigures, draw: bool = True) -> dict[str, tuple[str, str]]:
    """kind -> (chart id, SVG text) of the "By group" charts (SVG empty without `draw`)."""
    drawn: dict[str, tuple[str, str]] = {}
    compliance = {
        row.group: {m: t.compliance for m, t in row.metrics.items()} for row in figures.rows
    }
    drawn["compliance"] = (
        "groups-compliance",
        charts.group_compliance_chart("groups-compliance", compliance) if draw else "",
    )
    if figures.handoffs:
        counts = {(c.source, c.target): c.count for c in figures.handoffs}
        drawn["handoffs"] = (
            "groups-handoffs",
            charts.handoff_chart("groups-handoffs", figures.matrix_groups, counts) if draw else "",
        )
    if figures.breaches_while_held:
        drawn["held-breaches"] = (
            "groups-held-breaches",
            charts.held_breaches_chart("groups-held-breaches", figures.breaches_while_held)
            if draw
            else "",
        )
    return drawn


def report_chart_ids(report: Report) -> list[str]:
    """Every chart of the page, in page order."""
    found = [chart for section in report.sections for chart in chart_ids(section)]
    if report.groups is not None:
        found += [chart_id for chart_id, _svg in group_charts(report.groups, False).values()]
    return found


def _slug(section: Section) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", customer_key(section).strip("()"))


def chart_ids(section: Section) -> list[str]:
    return [chart_id for chart_id, _svg in section_charts(section, draw=False).values()]


def section_charts(section: Section, draw: bool = True) -> dict[str, tuple[str, str]]:
    """kind -> (chart id, SVG text); with `draw` False only the ids (SVG left empty)."""
    slug = _slug(section)
    wanted = ["compliance", "trend", "time-used"]
    if len(section.credits) == 1:
        wanted.append("credits")
    if section.availability:
        wanted.append("availability")
    drawn: dict[str, tuple[str, str]] = {}
    for kind in wanted:
        chart_id = f"{slug}-{kind}"
        drawn[kind] = (chart_id, _draw(section, kind, chart_id) if draw else "")
    return drawn


def _draw(section: Section, kind: str, chart_id: str) -> str:
    if kind == "compliance":
        return charts.compliance_chart(
            chart_id, {m: t.compliance for m, t in section.metrics.items()}, section.min_compliance
        )
    if kind == "trend":
        return charts.trend_chart(chart_id, section.trend, section.trend_unit)
    if kind == "time-used":
        return charts.time_used_chart(chart_id, section.time_used)
    if kind == "credits":
        credit = section.credits[0]
        return charts.credits_chart(
            chart_id,
            [
                ("gross (before cap)", credit.gross),
                ("cap", credit.cap),
                ("credited", credit.credited),
                ("earned back", credit.earned_back),
                ("net", credit.net),
            ],
            credit.currency,
        )
    return charts.availability_chart(
        chart_id,
        [
            (
                f"{r.service_id} {r.period}",
                Decimal(r.uptime_percent),
                Decimal(r.target_percent),
                r.met,
            )
            for r in section.availability
        ],
    )


def report_html(report: Report, timelines: Mapping[BreachKey, CycleTimeline] | None = None) -> str:
    """The page; with `timelines` (`slaclock report --events`) each breach of the list
    links to an SVG strip of its cycle's timeline."""
    pages = []
    for section in report.sections:
        shown = section.breaches[:HTML_BREACH_ROWS]
        pages.append(
            {
                "s": section,
                "key": customer_key(section),
                "title": "All customers" if section.customer_id is None else section.customer_id,
                "charts": section_charts(section),
                "breaches": shown,
                "more_breaches": max(0, len(section.breaches) - HTML_BREACH_ROWS),
                "strips": _strips(section, shown, timelines or {}),
            }
        )
    template = _ENV.get_template("report.html.j2")
    groups = report.groups
    return template.render(
        report=report,
        pages=pages,
        groups=groups,
        group_charts=group_charts(groups) if groups is not None else {},
        group_metrics=GROUP_METRICS,
        groups_key=GROUPS,
        seconds=seconds_value,
        metrics=METRICS,
        priorities=PRIORITIES,
        text=text,
        pct=percent_text,
        duration=format_duration,
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
    )


def _strips(
    section: Section, shown: Sequence[BreachRow], timelines: Mapping[BreachKey, CycleTimeline]
) -> list[tuple[str, str] | None]:
    """(id, SVG) of each shown breach's timeline strip, None where it has none."""
    strips: list[tuple[str, str] | None] = []
    for row in shown:
        timeline = timelines.get((row.ticket_id, row.metric, row.cycle))
        if timeline is None:
            strips.append(None)
            continue
        strip_id = timeline_id(_slug(section), row.ticket_id, row.metric, row.cycle)
        strips.append((strip_id, timeline_svg(timeline, strip_id)))
    return strips


def percent_text(value: Decimal | None) -> str:
    """A 4-place ratio as a percentage for people: 0.9583 -> 95.83%."""
    if value is None:
        return "\u2013"  # an en dash: no figure
    return f"{(value * 100).quantize(Decimal('0.01'))}%"


def write_report(
    report: Report, prefix: Path, timelines: Mapping[BreachKey, CycleTimeline] | None = None
) -> list[Path]:
    """Write PREFIX.html, PREFIX.json, PREFIX.csv and PREFIX-breaches.csv."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [
        prefix.with_name(prefix.name + ".html"),
        prefix.with_name(prefix.name + ".json"),
        prefix.with_name(prefix.name + ".csv"),
        prefix.with_name(prefix.name + "-breaches.csv"),
    ]
    paths[0].write_text(report_html(report, timelines), encoding="utf-8")
    paths[1].write_bytes(report_json(report))
    paths[2].write_text(report_csv(report), encoding="utf-8")
    paths[3].write_text(breaches_csv(report), encoding="utf-8")
    return paths
