"""`slaclock schemas export` and `slaclock policy check`."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from slaclock.schemas.common import GroupMetric, Metric, Priority, Status
from slaclock.schemas.export import export_json_schemas
from slaclock.schemas.policy import (
    WEEKDAYS,
    CalendarSpec,
    Contract,
    Policy,
    PolicyError,
    format_duration,
    load_policy,
)

schemas_app = typer.Typer(no_args_is_help=True, help="Export JSON Schemas.")
policy_app = typer.Typer(no_args_is_help=True, help="Validate and compare policy files.")


@schemas_app.command("export")
def export_command(
    directory: Annotated[
        Path, typer.Argument(help="Directory to write the *.schema.json files into.")
    ],
) -> None:
    """Write the JSON Schemas of events, outputs, policy and contracts into DIRECTORY."""
    for path in export_json_schemas(directory):
        typer.echo(str(path))


@policy_app.command("check")
def check_command(
    file: Annotated[Path, typer.Argument(help="The policy YAML file.")],
) -> None:
    """Validate a policy file: print a summary, or every problem (exit status 1)."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        # Plain text, one problem per line (`file: location: message`) so editors and
        # CI can parse it; not through rich, whose markup would eat `[...]` in messages.
        typer.echo(str(exc), err=True)
        count = len(exc.problems)
        typer.echo(f"{count} problem{'s' if count != 1 else ''} in {file}", err=True)
        raise typer.Exit(code=1) from None
    print_summary(Console(), policy, str(file))


def _hours(calendar: CalendarSpec) -> str:
    if isinstance(calendar.hours, str):
        return "24x7"
    days = []
    for day in WEEKDAYS:
        intervals = calendar.hours.get(day)
        if intervals:
            days.append(f"{day} {', '.join(str(i) for i in intervals)}")
    return "; ".join(days)


def print_summary(console: Console, policy: Policy, source: str) -> None:
    """A short human summary of a valid policy."""
    # User-provided names go through Text/escape: rich would read "[...]" as markup.
    console.print(
        f"[bold green]OK[/] {escape(source)} (policy version {escape(repr(policy.version))})",
        highlight=False,
    )

    calendars = Table(title="Calendars", title_justify="left")
    for column in ("calendar", "timezone", "hours", "holidays"):
        calendars.add_column(column)
    for name, calendar in policy.calendars.items():
        calendars.add_row(
            Text(name), calendar.timezone, _hours(calendar), str(len(calendar.holidays))
        )
    console.print(calendars)

    for name, tier in policy.tiers.items():
        default = " (default)" if name == policy.default_tier else ""
        title = f"Tier {name}{default}: calendar {tier.calendar}"
        console.print(_targets_table(title, tier.targets, list(Metric)))
        details = []
        if tier.pause_on:
            details.append("pauses on " + ", ".join(s.value for s in Status if s in tier.pause_on))
        if tier.warnings:
            details.append("warns at " + ", ".join(str(w) for w in tier.warnings))
        if tier.credits is not None:
            per_breach = ", ".join(f"{m.value} {p}%" for m, p in tier.credits.per_breach.items())
            cap = tier.credits.monthly_cap
            details.append(f"credits {per_breach}" + (f", cap {cap}%" if cap is not None else ""))
            earn_back = tier.credits.earn_back
            if earn_back is not None:
                details.append(
                    f"earn-back after {earn_back.months} month(s) at compliance "
                    f">= {earn_back.min_compliance}"
                )
        if details:
            console.print(Text("  " + "; ".join(details)))

    print_groups(console, policy)
    print_services(console, policy)

    if policy.customers:
        customers = Table(title="Customers", title_justify="left")
        for column in ("customer", "tier", "monthly fee", "timezone"):
            customers.add_column(column)
        terms = Table(title="Credit terms", title_justify="left")
        for column in ("customer", "monthly cap", "earn-back", "term"):
            terms.add_column(column)
        for customer, contract in policy.customers.items():
            customers.add_row(
                Text(customer),
                Text(contract.tier),
                f"{contract.monthly_fee} {contract.currency}",
                contract.timezone,
            )
            terms.add_row(
                Text(customer),
                _cap_text(policy, contract),
                _earn_back_text(policy, contract),
                _term_text(contract),
            )
        console.print(customers)
        console.print(terms)
    else:
        console.print("No customer contracts (tiers come from events or the default).")


def _cap_text(policy: Policy, contract: Contract) -> str:
    tier = policy.tiers.get(contract.tier)
    if tier is None or tier.credits is None or tier.credits.monthly_cap is None:
        return "none"
    cap = tier.credits.monthly_cap
    amount = (cap / 100 * contract.monthly_fee).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{amount} {contract.currency} ({cap}%)"


def _earn_back_text(policy: Policy, contract: Contract) -> str:
    tier = policy.tiers.get(contract.tier)
    if tier is None or tier.credits is None or tier.credits.earn_back is None:
        return "none"
    terms = tier.credits.earn_back
    return f"{terms.months} month(s) >= {terms.min_compliance}"


def _term_text(contract: Contract) -> str:
    if contract.start is None and contract.end is None:
        return "open-ended"
    return f"{contract.start or 'open'} to {contract.end or 'open'}"


def print_services(console: Console, policy: Policy) -> None:
    """The services with availability commitments, if any."""
    if not policy.services:
        return
    for name, service in policy.services.items():
        calendar = service.calendar or "24x7"
        table = Table(
            title=escape(
                f"Service {name}: {service.target}% a month ({service.timezone}), "
                f"measured on {calendar}"
            ),
            title_justify="left",
        )
        for column in ("counted as down", "notice", "warns at", "credits"):
            table.add_column(column)
        weights = ", ".join(
            f"{status} {weight}" for status, weight in service.weights().items() if weight
        )
        bands = ", ".join(f"below {band.below}%: {band.percent}%" for band in service.credits)
        table.add_row(
            weights or "nothing",
            format_duration(service.maintenance_notice),
            ", ".join(str(w) for w in service.warnings) or "-",
            bands or "none",
        )
        console.print(table)


def _targets_table(
    title: str, targets: Mapping[Any, Mapping[Any, Any]], metrics: list[Any]
) -> Table:
    """One row per metric with a target, one column per priority ("-": none)."""
    table = Table(title=escape(title), title_justify="left")
    table.add_column("metric")
    for priority in Priority:
        table.add_column(priority.value, justify="right")
    for metric in metrics:
        by_priority = targets.get(metric)
        if by_priority is None:
            continue
        cells = [format_duration(by_priority[p]) if p in by_priority else "-" for p in Priority]
        table.add_row(metric.value, *cells)
    return table


def print_groups(console: Console, policy: Policy) -> None:
    """The internal groups (OLAs) with their targets, like the tiers."""
    for name, group in policy.groups.items():
        title = f"Group {name}: calendar {group.calendar}"
        console.print(_targets_table(title, group.targets, list(GroupMetric)))
        details = []
        if group.pause_on:
            details.append(
                "group_resolution pauses on "
                + ", ".join(s.value for s in Status if s in group.pause_on)
            )
        if group.warnings:
            details.append("warns at " + ", ".join(str(w) for w in group.warnings))
        if details:
            console.print(Text("  " + "; ".join(details)))
