"""Charts of the report's figures, drawn with matplotlib and returned as inline SVG text.

Each chart gets its own id salt so the ids inside several inline SVGs never collide, text
stays text (`svg.fonttype: none`: small, searchable, sharp when printed), and no date is
written into the file, so the same figures give the same bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

METRIC_COLOURS = {
    "first_response": "#1f5fa8",
    "next_response": "#3d9bd1",
    "periodic_update": "#8e6bbf",
    "resolution": "#d9822b",
}
MET_COLOUR = "#2e8b57"
BREACHED_COLOUR = "#c0392b"
A_COLOUR = "#7f8c8d"
B_COLOUR = "#1f5fa8"
STYLE: Any = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
}

_XML_HEAD = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(|href=")#([^)"]+)')
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)


def _svg(figure: Figure, chart_id: str) -> str:
    buffer = io.StringIO()
    salt: Any = {"svg.hashsalt": chart_id}
    with plt.rc_context(salt):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(figure)
    text = _METADATA.sub("", _XML_HEAD.sub("", buffer.getvalue(), count=1), count=1)
    # ids are unique per SVG only (axes_1, line2d_1 ...): prefix them with the chart's id so
    # that several SVGs in one page never share one, and rewrite the references to them
    text = _ID.sub(lambda m: f'id="{chart_id}-{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}#{chart_id}-{m.group(2)}", text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{chart_id}" ', 1)


def compliance_chart(
    chart_id: str,
    compliance: Mapping[str, Decimal | None],
    target: Decimal | None,
) -> str:
    """Horizontal bars: compliance per metric (%), the contract's figure as a dashed line."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(6.4, 2.3), layout="constrained")
        names = list(compliance)
        values = [float(v) * 100 if v is not None else 0.0 for v in compliance.values()]
        bars = axes.barh(names, values, color=[METRIC_COLOURS.get(n, B_COLOUR) for n in names])
        for bar, value in zip(bars, compliance.values(), strict=True):
            label = "no outcomes" if value is None else f"{float(value) * 100:.2f}%"
            axes.text(
                min(bar.get_width(), 100) + 1,
                bar.get_y() + bar.get_height() / 2,
                label,
                va="center",
                fontsize=8,
            )
        if target is not None:
            axes.axvline(float(target) * 100, color="#333", linestyle="--", linewidth=1)
            axes.text(
                float(target) * 100,
                len(names) - 0.4,
                f" contract {float(target) * 100:g}%",
                fontsize=8,
                va="bottom",
            )
        axes.set_xlim(0, 115)
        axes.set_xlabel("met / (met + breached), %")
        axes.invert_yaxis()
        axes.set_title("Compliance per metric")
        return _svg(figure, chart_id)


def trend_chart(chart_id: str, trend: Mapping[str, Mapping[str, int]], unit: str) -> str:
    """Stacked bars: breaches per day (or week) by metric."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(6.8, 2.4), layout="constrained")
        buckets = list(trend)
        bottoms = [0] * len(buckets)
        positions = range(len(buckets))
        metrics = sorted({m for by_metric in trend.values() for m in by_metric}, key=_metric_order)
        for metric in metrics:
            counts = [trend[b].get(metric, 0) for b in buckets]
            axes.bar(
                positions,
                counts,
                bottom=bottoms,
                color=METRIC_COLOURS.get(metric),
                label=metric,
                width=0.8,
            )
            bottoms = [a + b for a, b in zip(bottoms, counts, strict=True)]
        step = max(1, len(buckets) // 10)
        axes.set_xticks(list(positions)[::step])
        axes.set_xticklabels([b[5:] for b in buckets][::step], rotation=0)
        axes.set_ylabel("breaches")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(f"Breaches per {unit} (by the day they were decided)")
        if metrics:
            axes.legend(fontsize=7, frameon=False, ncols=4, loc="upper left")
        if not any(bottoms):
            axes.text(0.5, 0.5, "no breaches", transform=axes.transAxes, ha="center")
        axes.set_ylim(0, max([*bottoms, 1]) * 1.25)
        return _svg(figure, chart_id)


def time_used_chart(chart_id: str, bins: Mapping[str, int]) -> str:
    """Histogram of time used / target for the completions of the period."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(6.4, 2.4), layout="constrained")
        labels = list(bins)
        colours = [
            BREACHED_COLOUR if label in ("100-150%", "150-200%", ">200%") else MET_COLOUR
            for label in labels
        ]
        axes.bar(labels, list(bins.values()), color=colours)
        for n, value in enumerate(bins.values()):
            axes.text(n, value, str(value), ha="center", va="bottom", fontsize=7)
        axes.set_ylabel("completions")
        axes.set_xlabel("counted time used / target")
        axes.set_title("How close to the deadline (completions of the period)")
        axes.set_ylim(0, max([*bins.values(), 1]) * 1.2)
        return _svg(figure, chart_id)


def availability_chart(
    chart_id: str, services: Sequence[tuple[str, Decimal, Decimal, bool]]
) -> str:
    """Uptime per service against its target: (label, uptime %, target %, met)."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            figsize=(6.4, 0.5 + 0.45 * max(1, len(services))), layout="constrained"
        )
        names = [s[0] for s in services]
        uptimes = [float(s[1]) for s in services]
        axes.barh(names, uptimes, color=[MET_COLOUR if s[3] else BREACHED_COLOUR for s in services])
        for n, service in enumerate(services):
            axes.plot([float(service[2])] * 2, [n - 0.4, n + 0.4], color="#333", linewidth=1.5)
            axes.text(
                float(service[1]),
                n,
                f" {service[1]}% (target {service[2]}%)",
                va="center",
                fontsize=7,
            )
        low = min([*uptimes, *(float(s[2]) for s in services), 100.0])
        axes.set_xlim(max(0.0, low - (100 - low) * 0.5 - 0.5), 100.6)
        axes.invert_yaxis()
        axes.set_xlabel("uptime, % of measured time")
        axes.set_title("Availability per service (bar: uptime; tick: target)")
        return _svg(figure, chart_id)


def credits_chart(
    chart_id: str, figures: Sequence[tuple[str, Decimal | None]], currency: str
) -> str:
    """Bars: gross, cap, credited, earned back, net (unknown ones left out)."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(6.4, 2.2), layout="constrained")
        shown = [(label, float(value)) for label, value in figures if value is not None]
        axes.barh([s[0] for s in shown], [s[1] for s in shown], color=B_COLOUR)
        for n, (_label, value) in enumerate(shown):
            axes.text(value, n, f" {value:,.2f}", va="center", fontsize=8)
        axes.set_xlim(0, max([s[1] for s in shown] + [1.0]) * 1.3)
        axes.invert_yaxis()
        axes.set_xlabel(currency)
        axes.set_title("Credits of the period")
        return _svg(figure, chart_id)


def whatif_chart(
    chart_id: str,
    labels: Sequence[str],
    a: Sequence[Decimal | None],
    b: Sequence[Decimal | None],
    title: str,
    unit: str,
) -> str:
    """Grouped horizontal bars, A beside B, one group per label."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(
            figsize=(6.8, 0.6 + 0.38 * max(1, len(labels))), layout="constrained"
        )
        rows = range(len(labels))
        height = 0.38
        values_a = [float(v) if v is not None else 0.0 for v in a]
        values_b = [float(v) if v is not None else 0.0 for v in b]
        axes.barh([r - height / 2 for r in rows], values_a, height, color=A_COLOUR, label="A")
        axes.barh([r + height / 2 for r in rows], values_b, height, color=B_COLOUR, label="B")
        axes.set_yticks(list(rows))
        axes.set_yticklabels(list(labels), fontsize=7)
        axes.invert_yaxis()
        axes.set_xlabel(unit)
        axes.set_xlim(0, max([*values_a, *values_b, 1.0]) * 1.15)
        axes.legend(fontsize=7, frameon=False, loc="lower right")
        axes.set_title(title)
        return _svg(figure, chart_id)


GROUP_METRIC_COLOURS = {"group_response": "#1f5fa8", "group_resolution": "#d9822b"}


def group_compliance_chart(
    chart_id: str, compliance: Mapping[str, Mapping[str, Decimal | None]]
) -> str:
    """Grouped horizontal bars: per group, the compliance of each group metric (%)."""
    with plt.rc_context(STYLE):
        groups = list(compliance)
        figure, axes = plt.subplots(
            figsize=(6.4, 0.8 + 0.55 * max(1, len(groups))), layout="constrained"
        )
        height = 0.38
        for offset, metric in ((-height / 2, "group_response"), (height / 2, "group_resolution")):
            values = [compliance[g].get(metric) for g in groups]
            rows = [n + offset for n in range(len(groups))]
            axes.barh(
                rows,
                [float(v) * 100 if v is not None else 0.0 for v in values],
                height,
                color=GROUP_METRIC_COLOURS[metric],
                label=metric,
            )
            for row, value in zip(rows, values, strict=True):
                label = "no outcomes" if value is None else f"{float(value) * 100:.2f}%"
                width = 0.0 if value is None else float(value) * 100
                axes.text(width + 1, row, label, va="center", fontsize=7)
        axes.set_yticks(list(range(len(groups))))
        axes.set_yticklabels(groups)
        axes.set_xlim(0, 118)
        axes.invert_yaxis()
        axes.set_xlabel("met / (met + breached), %")
        axes.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
        axes.set_title("Compliance per group (operational level agreements)")
        return _svg(figure, chart_id)


def handoff_chart(
    chart_id: str, groups: Sequence[str], counts: Mapping[tuple[str, str], int]
) -> str:
    """A heat map of hand-offs: rows the group handing off, columns the one receiving."""
    with plt.rc_context(STYLE):
        size = max(1, len(groups))
        figure, axes = plt.subplots(
            figsize=(max(3.6, 1.6 + 0.9 * size), 1.2 + 0.55 * size), layout="constrained"
        )
        grid = [[counts.get((a, b), 0) for b in groups] for a in groups] or [[0]]
        top = max([*(max(r) for r in grid), 1])
        axes.imshow(grid, cmap="Blues", vmin=0, vmax=top)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                colour = "white" if value > top / 2 else "black"  # readable on dark cells
                axes.text(j, i, str(value), ha="center", va="center", fontsize=8, color=colour)
        axes.set_xticks(list(range(len(groups))))
        axes.set_xticklabels(list(groups), rotation=30, ha="right")
        axes.set_yticks(list(range(len(groups))))
        axes.set_yticklabels(list(groups))
        axes.set_xlabel("to")
        axes.set_ylabel("from")
        axes.set_title("Hand-offs between groups")
        return _svg(figure, chart_id)


def held_breaches_chart(chart_id: str, by_holder: Mapping[str, Mapping[str, int]]) -> str:
    """Stacked horizontal bars: customer breaches per group holding the ticket, by metric."""
    with plt.rc_context(STYLE):
        holders = list(by_holder) or ["(none)"]
        figure, axes = plt.subplots(figsize=(6.4, 0.8 + 0.45 * len(holders)), layout="constrained")
        lefts = [0] * len(holders)
        metrics = sorted({m for counts in by_holder.values() for m in counts}, key=_metric_order)
        for metric in metrics:
            values = [by_holder.get(h, {}).get(metric, 0) for h in holders]
            axes.barh(holders, values, left=lefts, color=METRIC_COLOURS.get(metric), label=metric)
            lefts = [a + b for a, b in zip(lefts, values, strict=True)]
        for n, total in enumerate(lefts):
            axes.text(total, n, f" {total}", va="center", fontsize=8)
        axes.set_xlim(0, max([*lefts, 1]) * 1.2)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.invert_yaxis()
        axes.set_xlabel("customer breaches")
        if metrics:
            axes.legend(fontsize=7, frameon=False, ncols=2, loc="lower right")
        axes.set_title("Customer breaches by the group holding the ticket at the deadline")
        return _svg(figure, chart_id)


def _metric_order(metric: str) -> int:
    order = list(METRIC_COLOURS)
    return order.index(metric) if metric in order else len(order)
