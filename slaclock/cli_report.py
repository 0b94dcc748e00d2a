"""`slaclock report`, `slaclock whatif` and `slaclock generate`: reports people read."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import typer

from slaclock.processors.engine.explain import CycleTimeline
from slaclock.processors.engine.instants import format_us, parse_instant, to_us
from slaclock.processors.report.figures import (
    PolicyInfo,
    Report,
    ReportRequest,
    build_report,
    latest_period,
    month_window,
)
from slaclock.processors.report.groups import HolderChange, add_groups
from slaclock.processors.report.outputs import (
    Outputs,
    ReportInputError,
    outputs_from_records,
    read_outputs,
)
from slaclock.processors.report.timelines import BreachKey
from slaclock.schemas.policy import PolicyError, load_policy


def register_report(app: typer.Typer) -> None:
    app.command("report")(report_command)
    app.command("whatif")(whatif_command)
    app.command("generate")(generate_command)


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportInputError(
            f"--timezone {name!r}: not an IANA time zone name (e.g. Europe/Berlin)"
        ) from None
    return name


def _instant(flag: str, value: str, timezone: str, end: bool) -> int:
    """An RFC 3339 instant, or a date (local midnight; a --to date counts whole)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        try:
            return parse_instant(value)
        except ValueError:
            raise ReportInputError(
                f"{flag} {value!r}: give a date (2026-10-31) or an RFC 3339 instant with an "
                "offset (2026-10-31T17:00:00Z)"
            ) from None
    if end:
        day += timedelta(days=1)
    midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))
    return to_us(midnight)


def _window_request(
    period: str | None, start: str | None, end: str | None, customer: str | None, timezone: str
) -> ReportRequest:
    timezone = _zone(timezone)
    if period is not None and (start is not None or end is not None):
        raise ReportInputError("give either --period or --from/--to, not both")
    if period is not None:
        month_window(period, timezone)  # validates the month
        return ReportRequest(period=period, customer=customer, timezone=timezone)
    if start is None and end is None:
        return ReportRequest(period=None, customer=customer, timezone=timezone)  # latest month
    if start is None or end is None:
        raise ReportInputError("give --period YYYY-MM, or both --from and --to")
    start_us = _instant("--from", start, timezone, end=False)
    end_us = _instant("--to", end, timezone, end=True)
    if end_us <= start_us:
        raise ReportInputError(f"--to {end} is not after --from {start}")
    return ReportRequest(start_us=start_us, end_us=end_us, customer=customer, timezone=timezone)


def _policy_info(policy: Path | None) -> PolicyInfo:
    if policy is None:
        return PolicyInfo()
    from slaclock.processors.report.policy_info import policy_info

    try:
        return policy_info(load_policy(policy))
    except PolicyError as error:
        first = str(error).strip().splitlines()
        raise ReportInputError(f"--policy {policy}: refused ({'; '.join(first[:3])})") from None


def _outputs_from_file(path: Path) -> Outputs:
    try:
        with path.open("rb") as source:
            return read_outputs(source, str(path))
    except OSError as error:
        raise ReportInputError(f"--outputs {path}: cannot read ({error.strerror})") from None


def _outputs_from_topics() -> Outputs:
    from slaclock.client.subscriber import SubscriberError, collect, output_topics
    from slaclock.processors.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        raise ReportInputError(f"--from-topics: {'; '.join(error.problems)}") from None
    topics = output_topics(settings)
    optional = []  # topics of later features: an older deployment may not have them
    for name in ("topic_statements", "topic_availability"):
        extra = getattr(settings, name, None)
        if isinstance(extra, str) and extra not in topics:
            optional.append(extra)
    wanted = list(dict.fromkeys([*topics, *optional]))
    while True:
        try:
            records = collect(settings, wanted)
            break
        except SubscriberError as error:
            missing = next((t for t in optional if f"topic {t} does not exist" in str(error)), None)
            if missing is not None and missing in wanted:
                wanted.remove(missing)
                continue
            raise ReportInputError(
                f"reading the output topics: {error} (set SLACLOCK_BOOTSTRAP_SERVERS and the "
                "SLACLOCK_TOPIC_* names)"
            ) from None
        except Exception as error:  # a broker that cannot be reached, bad client settings
            raise ReportInputError(f"reading the output topics: {error}") from None
    return outputs_from_records(record["value"] for record in records)


def report_command(
    outputs: Annotated[
        Path | None,
        typer.Option(help="Output events, one JSON object per line (`slaclock replay --out`)."),
    ] = None,
    from_topics: Annotated[
        bool,
        typer.Option(
            "--from-topics",
            help="Read the output topics (read_committed) instead of a file; Kafka settings "
            "from the SLACLOCK_ environment.",
        ),
    ] = False,
    period: Annotated[
        str | None,
        typer.Option(
            help="A billing month, YYYY-MM, in each customer's own time zone "
            "(default: the latest month with outcomes)."
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Start: a date or an RFC 3339 instant.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="End: a date (inclusive) or an instant (exclusive).")
    ] = None,
    customer: Annotated[str | None, typer.Option(help="Only this customer.")] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="Policy YAML: adds contract figures (targets, cap, earn-back terms)."),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option(help="Zone for dates and for customers without a contract time zone."),
    ] = "UTC",
    out: Annotated[
        Path,
        typer.Option(help="Prefix of the files written: PREFIX.html/.json/.csv/-breaches.csv."),
    ] = Path("report"),
    events: Annotated[
        Path | None,
        typer.Option(
            help="The events the outputs came from (needs --policy): each breach of the HTML "
            "list gets its timeline, as `slaclock explain` shows it, and the By group section "
            "its hand-offs and the customer breaches while each group held the ticket."
        ),
    ] = None,
) -> None:
    """An SLA report for a period: HTML (self-contained, printable), CSV and JSON."""
    _require_charts("report")
    from slaclock.processors.report.render import write_report

    try:
        if (outputs is None) == (not from_topics):
            raise ReportInputError("give --outputs FILE or --from-topics (one of them)")
        request = _window_request(period, start, end, customer, timezone)
        info = _policy_info(policy)
        began = time.perf_counter()
        data = _outputs_from_file(outputs) if outputs is not None else _outputs_from_topics()
        source = str(outputs) if outputs is not None else "the output topics"
        if data.empty:
            how = (
                "write one with `slaclock replay --policy P.yaml --events E.jsonl --out "
                "OUT.jsonl`, or read the live outputs with --from-topics"
                if outputs is not None
                else "start a worker (`slaclock worker`) and publish events first"
            )
            raise ReportInputError(f"{source} holds no output events: {how}")
        if request.period is None and request.start_us is None:
            request = replace(request, period=latest_period(data, request.timezone))
        report = build_report(data, request, info, source)
        holders: list[HolderChange] | None = None
        timelines = None
        if events is not None:
            holders = []
            timelines = _timelines(report, data, policy, events, holders)
        add_groups(report, data, info, holders)
        paths = write_report(report, out, timelines)
    except ReportInputError as error:
        raise _fail(str(error)) from None
    elapsed = time.perf_counter() - began
    print(
        f"report {report.window_label}: {len(report.sections)} section(s) in {elapsed:.1f} s -> "
        + ", ".join(str(p) for p in paths),
        file=sys.stderr,
    )


def _timelines(
    report: Report,
    data: Outputs,
    policy: Path | None,
    events: Path,
    holders: list[HolderChange] | None = None,
) -> dict[BreachKey, CycleTimeline]:
    """Replay `events` under `policy` (to the last event, or the latest instant of the
    outputs if later, as their replay's `--until`) and explain each breach the HTML lists;
    each change of a ticket's holding group goes to `holders` (the "By group" section)."""
    from slaclock.processors.engine.policy import compile_policy
    from slaclock.processors.explain_replay import replay_to
    from slaclock.processors.report.render import HTML_BREACH_ROWS
    from slaclock.processors.report.timelines import breach_timelines

    if policy is None:
        raise ReportInputError(
            "--events needs --policy: the timelines are counted under the policy's calendars"
        )
    compiled = compile_policy(load_policy(policy))  # already validated by _policy_info
    try:
        with events.open("rb") as source:
            replayer, at = replay_to(compiled, source, None, _latest(data), holders)
    except OSError as error:
        raise ReportInputError(f"--events {events}: cannot read ({error.strerror})") from None
    if at is None:
        raise ReportInputError(f"--events {events}: no valid event")
    keys = [
        (row.ticket_id, row.metric, row.cycle)
        for section in report.sections
        for row in section.breaches[:HTML_BREACH_ROWS]
    ]
    return breach_timelines(compiled, replayer.store, keys, at, replayer.versions)


def _latest(data: Outputs) -> int | None:
    instants = [
        parse_instant(output[name])
        for output in (*data.breaches, *data.completions)
        for name in ("at", "decided_at")
        if isinstance(output.get(name), str)
    ]
    return max(instants) if instants else None


def _require_charts(command: str) -> None:
    """One line instead of a traceback where matplotlib (the `reports` extra) is missing,
    as in the worker image."""
    try:
        import matplotlib  # noqa: F401 - only whether it is there
    except ImportError:
        raise _fail(
            f"{command} draws charts with matplotlib, which this installation lacks (the "
            "worker image leaves it out): pip install 'slaclock[reports]', or build the "
            "image with --build-arg EXTRAS=reports"
        ) from None


def whatif_command(
    events: Annotated[Path, typer.Option(help="Events, one JSON object per line.")],
    policy: Annotated[
        list[Path], typer.Option(help="Give it twice: --policy A.yaml --policy B.yaml.")
    ],
    until: Annotated[
        str | None, typer.Option(help="Advance both clocks to this RFC 3339 instant at the end.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Prefix: PREFIX.html/.json/.csv/-changes.csv.")] = Path(
        "whatif"
    ),
    serial: Annotated[
        bool, typer.Option("--serial", help="Run the two replays one after the other.")
    ] = False,
) -> None:
    """Replay the same events under two policies and compare the outcomes side by side."""
    _require_charts("whatif")
    from slaclock.processors.policy_diff import diff_policies
    from slaclock.processors.report.whatif import compare
    from slaclock.processors.report.whatif_render import whatif_text, write_whatif
    from slaclock.processors.report.whatif_run import replay_both

    try:
        if len(policy) != 2:
            raise ReportInputError(
                f"--policy given {len(policy)} time(s); give it exactly twice (A, then B)"
            )
        for path in policy:
            try:
                load_policy(path)
            except PolicyError as error:
                lines = str(error).strip().splitlines()
                raise ReportInputError(
                    f"--policy {path}: refused ({'; '.join(lines[:3])})"
                ) from None
        if not events.is_file():
            raise ReportInputError(f"--events {events}: no such file")
        until_us = None
        if until is not None:
            try:
                until_us = parse_instant(until)
            except ValueError:
                raise ReportInputError(
                    f"--until {until!r}: give an RFC 3339 instant with an offset"
                ) from None
    except ReportInputError as error:
        raise _fail(str(error)) from None
    began = time.perf_counter()
    (a, summary_a), (b, summary_b) = replay_both(
        policy[0], policy[1], events, until_us, parallel=not serial
    )
    replayed = time.perf_counter() - began
    if not a and not b:
        raise _fail(
            f"--events {events}: no SLA outcome under either policy (A: {summary_a}); "
            "give a file of ticket events (`slaclock generate` writes one)"
        )
    comparison = compare(a, b)
    comparison.rule_changes = diff_policies(load_policy(policy[0]), load_policy(policy[1]))
    meta = {
        "policy_a": str(policy[0]),
        "policy_b": str(policy[1]),
        "events": str(events),
        "until": format_us(until_us) if until_us is not None else None,
        "summary_a": summary_a,
        "summary_b": summary_b,
    }
    paths = write_whatif(comparison, meta, out)
    total = time.perf_counter() - began
    sys.stdout.write(whatif_text(comparison))
    print(
        f"whatif: {len(comparison.rule_changes)} rule(s) differ, "
        f"{len(comparison.changes)} outcome(s) changed, "
        f"{len(comparison.moves)} deadline(s) moved; replays {replayed:.1f} s, "
        f"total {total:.1f} s -> " + ", ".join(str(p) for p in paths),
        file=sys.stderr,
    )


def generate_command(
    policy: Annotated[Path, typer.Option(help="Policy YAML: its contracts are the customers.")],
    tickets: Annotated[int, typer.Option(min=1, help="How many tickets.")] = 1000,
    period: Annotated[
        str | None, typer.Option(help="Create the tickets over this month (YYYY-MM, UTC).")
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help="Or from this date...")] = None,
    end: Annotated[str | None, typer.Option("--to", help="...to this date (inclusive).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same events.")] = 7,
    walk_in: Annotated[
        bool, typer.Option(help="Also tickets of a customer without a contract ('walk-in').")
    ] = True,
    out: Annotated[Path | None, typer.Option(help="Output JSONL file (default: stdout).")] = None,
) -> None:
    """Write a realistic synthetic event stream for a policy: N tickets over a period, seeded."""
    from slaclock.workload import WorkloadShape, ticket_events

    try:
        loaded = load_policy(policy)
    except PolicyError as error:
        lines = str(error).strip().splitlines()
        raise _fail(f"--policy {policy}: refused ({'; '.join(lines[:3])})") from None
    try:
        if period is None and (start is None or end is None):
            raise ReportInputError("give --period YYYY-MM, or --from and --to dates")
        request = _window_request(period, start, end, None, "UTC")
    except ReportInputError as error:
        raise _fail(str(error)) from None
    if request.period is not None:
        window = month_window(request.period, "UTC")
        first, last = window.start_us, window.end_us
    else:
        assert request.start_us is not None and request.end_us is not None
        first, last = request.start_us, request.end_us
    customers = [*sorted(loaded.customers)]
    if walk_in or not customers:
        customers.append("walk-in")
    shape = WorkloadShape(
        tickets=tickets,
        start=datetime.fromtimestamp(first / 1_000_000, tz=ZoneInfo("UTC")),
        spread_seconds=max(1, (last - first) // 1_000_000),
        customers=tuple(customers),
        seed=seed,
    )
    events = ticket_events(shape)
    sink = out.open("wb") if out is not None else sys.stdout.buffer
    try:
        for event in events:
            sink.write(orjson.dumps(event))
            sink.write(b"\n")
    finally:
        if out is not None:
            sink.close()
    print(
        f"generate: {len(events)} events of {tickets} tickets for {len(customers)} customers"
        + (f" -> {out}" if out is not None else ""),
        file=sys.stderr,
    )
