"""`slaclock policy diff A.yaml B.yaml [--events E]`: what changes, rule by rule.

The comparison is `processors.policy_diff` (pure); with `--events` the two replays and their
comparison by natural key are the what-if's (`processors.report.whatif`). This module only
renders, with rich.
"""

from __future__ import annotations

import sys
from itertools import groupby
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from slaclock.processors.engine.instants import format_us, parse_instant
from slaclock.processors.policy_diff import Area, RuleChange, diff_policies
from slaclock.schemas.policy import Policy, PolicyError, load_policy

AREA_TITLES = {
    Area.TIERS: "Tiers",
    Area.TARGETS: "Targets and pauses",
    Area.CALENDARS: "Calendars and working hours",
    Area.WARNINGS: "Warnings",
    Area.CREDITS: "Credits",
    Area.SERVICES: "Services",
}
LIST_ROWS = 20


def register_policy_diff(policy_app: typer.Typer) -> None:
    policy_app.command("diff")(policy_diff_command)


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


def _load(path: Path, which: str) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as error:
        lines = str(error).strip().splitlines()
        raise _fail(
            f"{which} {path}: refused ({'; '.join(lines[:3])}); "
            f"`slaclock policy check {path}` lists every problem"
        ) from None


def policy_diff_command(
    policy_a: Annotated[Path, typer.Argument(help="The rules in force (A).", metavar="A.yaml")],
    policy_b: Annotated[Path, typer.Argument(help="The proposed rules (B).", metavar="B.yaml")],
    events: Annotated[
        Path | None,
        typer.Option(help="Also show what B would have done to these events (a what-if)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="With --events: advance both clocks to this RFC 3339 instant."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The changes as JSON.")] = False,
) -> None:
    """What changes from A to B, rule by rule: targets, calendars, holidays, pauses,
    warnings, credits, tiers and services. Exit 0 either way."""
    a, b = _load(policy_a, "A"), _load(policy_b, "B")
    until_us = None
    if until is not None:
        try:
            until_us = parse_instant(until)
        except ValueError:
            raise _fail(f"--until {until!r}: give an RFC 3339 instant with an offset") from None
    if events is not None and not events.is_file():
        raise _fail(f"--events {events}: no such file")
    changes = diff_policies(a, b)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if as_json and events is None:
        sys.stdout.write(
            orjson.dumps([c.to_json() for c in changes], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
        return
    console.print(f"[bold]{policy_a}[/] → [bold]{policy_b}[/]")
    if not changes:
        console.print("No rule changes: both files give the same outcomes.")
    order = list(Area)
    by_area = sorted(changes, key=lambda c: order.index(c.area))  # stable: document order
    for area, grouped in groupby(by_area, key=lambda c: c.area):
        items = list(grouped)
        console.print(f"\n[bold]{AREA_TITLES[area]}[/] ({len(items)})")
        for change in items:
            console.print(f"  • {_rich_line(change)}")
    if events is not None:
        _what_it_would_have_done(console, policy_a, policy_b, events, until_us, changes)


def _rich_line(change: RuleChange) -> str:
    line = change.text()
    return line.replace("[", r"\[")


def _what_it_would_have_done(
    console: Console,
    policy_a: Path,
    policy_b: Path,
    events: Path,
    until_us: int | None,
    changes: list[RuleChange],
) -> None:
    from slaclock.processors.report.whatif import compare
    from slaclock.processors.report.whatif_run import replay_both

    (outcomes_a, _), (outcomes_b, _) = replay_both(policy_a, policy_b, events, until_us)
    comparison = compare(outcomes_a, outcomes_b)
    comparison.rule_changes = changes
    shifts = comparison.shifts()
    console.print(f"\n[bold]What B would have done to {events}[/]")
    console.print(
        f"  {len(comparison.changes)} outcome(s) change; {shifts.count} deadline(s) move "
        f"({shifts.outcome_unchanged} without changing the outcome; "
        f"{shifts.earlier} earlier, {shifts.later} later)"
    )
    for currency, (x, y) in comparison.credits_by_currency.items():
        if x != y:
            console.print(f"  credits {currency}: {x} → {y} ({y - x:+})")
    if comparison.changes:
        table = Table(title="Outcomes that change", title_justify="left")
        for column in ("ticket", "metric", "cycle", "customer", "priority", "A", "B"):
            table.add_column(column)
        for change in comparison.changes[:LIST_ROWS]:
            table.add_row(
                change.ticket_id,
                change.metric,
                str(change.cycle),
                change.customer_id,
                change.priority,
                change.outcome_a,
                change.outcome_b,
            )
        console.print(table)
        if len(comparison.changes) > LIST_ROWS:
            console.print(f"  … {len(comparison.changes) - LIST_ROWS} more (`slaclock whatif`)")
    if shifts.count:
        from slaclock.processors.report.whatif_render import shift_text

        assert shifts.median_us is not None
        assert shifts.least_us is not None and shifts.greatest_us is not None
        console.print(
            f"  deadline shift: median {shift_text(shifts.median_us)}, from "
            f"{shift_text(shifts.least_us)} to {shift_text(shifts.greatest_us)}"
        )
        for label, n in shifts.buckets:
            if n:
                console.print(f"    {label}: {n}")
        table = Table(title="Deadlines that move", title_justify="left")
        for column in ("ticket", "metric", "cycle", "deadline A", "deadline B", "shift"):
            table.add_column(column)
        for move in comparison.moves[:LIST_ROWS]:
            table.add_row(
                move.ticket_id,
                move.metric,
                str(move.cycle),
                format_us(move.deadline_a),
                format_us(move.deadline_b),
                shift_text(move.shift_us),
            )
        console.print(table)
        if shifts.count > LIST_ROWS:
            console.print(f"  … {shifts.count - LIST_ROWS} more (`slaclock whatif`)")
