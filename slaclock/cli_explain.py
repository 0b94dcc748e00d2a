"""`slaclock explain`: why a ticket's deadlines fell where they did (docs/semantics.md: Explanations).

Replays the events file to `--at` (default: the last event) and prints the timeline of
every metric cycle of one ticket: a table per cycle in the terminal, or with `--json` the
exact JSON `GET /tickets/{id}?explain=true` answers for the same ticket at the same instant.

Exit status: 0 with an explanation; 1 when the policy is refused or the ticket is not in
the file (as of `--at`); 2 for a bad flag value.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import typer
from rich.console import Console
from rich.table import Table

from slaclock.processors.engine.explain import CycleExplanation, explain_with_policy
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.explain_replay import replay_to
from slaclock.schemas.policy import PolicyError, load_policy

KIND_STYLES = {
    "counted": "bold green",
    "outside_hours": "dim",
    "holiday": "magenta",
    "paused": "yellow",
    "stopped": "red",
}


def register_explain(app: typer.Typer) -> None:
    app.command("explain")(explain_command)


def explain_command(
    policy: Annotated[Path, typer.Option(help="Policy YAML file.", exists=True, dir_okay=False)],
    events: Annotated[
        Path, typer.Option(help="Events, one JSON object per line.", exists=True, dir_okay=False)
    ],
    ticket: Annotated[str, typer.Option(help="The ticket to explain.")],
    at: Annotated[
        str | None,
        typer.Option(help="Replay to this RFC 3339 instant (default: the last event's)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The JSON of GET /tickets/{id}?explain=true.")
    ] = False,
    timezone: Annotated[
        str,
        typer.Option(help="Show the table's instants in this IANA zone (the JSON stays UTC)."),
    ] = "UTC",
) -> None:
    """Explain a ticket's deadlines: every cycle's segments, counted or not, and why."""
    try:
        compiled = compile_policy(load_policy(policy))
    except PolicyError as error:
        print(f"explain: policy refused\n{error}", file=sys.stderr)
        raise typer.Exit(1) from None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(f"--timezone {timezone!r}: not an IANA time zone name (e.g. Europe/Berlin)", 2)
    at_us = None
    if at is not None:
        try:
            at_us = parse_instant(at)
        except ValueError as error:
            _fail(f"--at {at!r}: {error}; give an RFC 3339 instant with an offset", 2)
    try:
        with events.open("rb") as source:
            replayer, instant = replay_to(compiled, source, at_us)
    except OSError as error:
        _fail(f"cannot read --events {events}: {error.strerror or error}", 2)
    state = replayer.store.get(ticket)
    if state is None or instant is None:
        when = f" as of {at}" if at is not None else ""
        _fail(f"ticket {ticket!r} is not in {events}{when} (no valid ticket.created for it)", 1)
    explanation = explain_with_policy(state, compiled, instant, replayer.versions)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(explanation) + b"\n")
        return
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    as_of = _short(explanation["at"], zone)
    console.print(f"[bold]{explanation['ticket_id']}[/bold] as of {as_of} ({zone.key})")
    for cycle in explanation["cycles"]:
        console.print()
        _print_cycle(console, cycle, zone)


def _print_cycle(console: Console, cycle: CycleExplanation, zone: ZoneInfo) -> None:
    target = _duration(cycle["target_seconds"])
    state = cycle["state"]
    if cycle["breached"] and state != "breached":
        state += " after its breach"
    title = (
        f"{cycle['metric']} #{cycle['cycle']}: {state}, "
        f"{_duration(cycle['counted_seconds'])} counted of {target} "
        f"({cycle['priority']}, policy {cycle['policy_version']})"
    )
    table = Table(title=title, title_justify="left", title_style="bold", expand=False)
    table.add_column(f"from ({zone.key})", no_wrap=True)
    table.add_column(f"to ({zone.key})", no_wrap=True)
    table.add_column("length", justify="right", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("counted", justify="right", no_wrap=True)
    table.add_column("why")
    counted = 0.0
    for segment in cycle["segments"]:
        kind = segment["kind"]
        length = _seconds_between(segment["from"], segment["to"])
        if kind == "counted":
            counted += length
        style = KIND_STYLES.get(kind, "")
        table.add_row(
            _short(segment["from"], zone),
            _short(segment["to"], zone),
            _duration(length),
            f"[{style}]{kind}[/{style}]",
            _duration(counted),
            _cause_text(segment["cause"]),
        )
    console.print(table)
    deadline, original = cycle["deadline"], cycle["original_deadline"]
    console.print(
        f"  deadline {_short(deadline, zone) if deadline else 'none'}; as first computed "
        f"{_short(original, zone) if original else 'none'}"
    )
    history = cycle["target_history"]
    if len(history) > 1:
        for change in history:
            why = _cause_text(change["cause"]) or "event ?"
            console.print(
                f"  from {_short(change['at'], zone)}: {_duration(change['target_seconds'])} "
                f"({change['priority']}, policy {change['policy_version']}; {why})"
            )


def _cause_text(cause: object) -> str:
    if not isinstance(cause, dict):
        return ""
    parts = []
    if cause.get("holiday"):
        parts.append(f"holiday {cause['holiday']}")
    if cause.get("calendar") and not cause.get("holiday"):
        parts.append(f"not working time of {cause['calendar']}")
    if cause.get("status"):
        parts.append(f"status {cause['status']}")
    if cause.get("event_id"):
        parts.append(f"event {cause['event_id']}")
    if cause.get("policy_version"):
        parts.append(f"policy version {cause['policy_version']} took effect")
    return ", ".join(parts)


def _short(instant: str, zone: ZoneInfo) -> str:
    """2026-03-02T09:00:00Z -> 2026-03-02 09:00 in `zone` (seconds only when there are any;
    the weekday too outside UTC, where office hours are read)."""
    local = datetime.fromisoformat(instant).astimezone(zone)
    text = local.strftime("%Y-%m-%d %H:%M")
    if local.second or local.microsecond:
        text += f":{local.second:02d}" + (f".{local.microsecond:06d}" if local.microsecond else "")
    return text if zone.key == "UTC" else f"{local:%a} {text}"


def _seconds_between(start: str, end: str) -> float:
    return (parse_instant(end) - parse_instant(start)) / 1_000_000


def _duration(seconds: float) -> str:
    """1d 2h 3m 4.5s, leaving out zero parts; 0s for nothing."""
    whole = int(seconds)
    fraction = seconds - whole
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    if secs or fraction:
        parts.append(f"{secs + fraction:g}s" if fraction else f"{secs}s")
    return " ".join(parts) or "0s"


def _fail(message: str, status: int) -> NoReturn:
    print(f"explain: error: {message}", file=sys.stderr)
    raise typer.Exit(status)
