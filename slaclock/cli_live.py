"""Kafka client commands: `slaclock topics create`, `slaclock publish`, `slaclock tail`.

Connection settings and topic names come from the environment (`SLACLOCK_*`, see
`slaclock.processors.settings`); `--bootstrap` overrides `SLACLOCK_BOOTSTRAP_SERVERS`. Invalid
settings print every problem and exit with status 2. Data goes to stdout, everything
else (progress, per-line errors, summaries) to stderr.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from slaclock.client.publisher import TicketEventPublisher
from slaclock.client.subscriber import OutputSubscriber, ReceivedRecord, SubscriberError
from slaclock.processors.broker import BrokerUnreachable, ensure_reachable
from slaclock.processors.settings import Settings, SettingsError, load_settings
from slaclock.processors.topics import TopicError, ensure_topics, topic_specs
from slaclock.signals import interrupt_on_sigterm

__all__ = ["live_app_commands"]

TYPE_STYLES = {
    "sla.warning": "yellow",
    "sla.breach": "bold red",
    "sla.completed": "green",
    "sla.credit": "magenta",
}

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        help="Kafka bootstrap servers (overrides SLACLOCK_BOOTSTRAP_SERVERS).",
        show_default=False,
    ),
]


def live_app_commands(app: typer.Typer) -> None:
    """Register `topics create`, `publish` and `tail` on `app`."""
    topics_app = typer.Typer(no_args_is_help=True, help="Create slaclock's Kafka topics.")
    topics_app.command("create")(topics_create)
    app.add_typer(topics_app, name="topics")
    app.command("publish")(publish)
    app.command("tail")(tail)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _settings(bootstrap: str | None) -> Settings:
    overrides: dict[str, Any] = {} if bootstrap is None else {"bootstrap_servers": bootstrap}
    try:
        return load_settings(**overrides)
    except SettingsError as error:
        err = _err()
        err.print("[red]invalid settings:[/red]")
        for problem in error.problems:
            err.print(f"  {escape(problem)}")
        raise typer.Exit(2) from None


def _reachable(settings: Settings, bootstrap: str | None) -> None:
    """A broker answers at the configured address, or one line saying which and how to
    set it, and exit status 1 (librdkafka would otherwise retry quietly for long)."""
    try:
        ensure_reachable(settings, from_flag=bootstrap is not None)
    except BrokerUnreachable as exc:
        _err().print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


def _kafka_failure(exc: Exception) -> typer.Exit:
    detail = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    _err().print(f"[red]error:[/red] {escape(str(detail))}")
    return typer.Exit(1)


def topics_create(bootstrap: BootstrapOption = None) -> None:
    """Create every topic slaclock uses (docs/operations.md: What runs) that does not exist yet.

    Existing topics are left alone; co-partitioned ones must already have
    SLACLOCK_PARTITIONS partitions.
    """
    settings = _settings(bootstrap)
    _reachable(settings, bootstrap)
    try:
        created = set(ensure_topics(settings))
    except (TopicError, KafkaException) as exc:
        raise _kafka_failure(exc) from None
    out = Console(highlight=False, soft_wrap=True)
    for spec in topic_specs(settings):
        state = "[green]created[/green] " if spec.name in created else "[dim]existing[/dim]"
        detail = ", ".join(f"{k}={v}" for k, v in spec.config.items())
        out.print(
            f"{state} {escape(spec.name)} ({spec.partitions} partitions"
            f"{', ' + escape(detail) if detail else ''})"
        )


def publish(
    file: Annotated[
        Path,
        typer.Argument(
            help="Ticket events, one JSON object per line ('-' for stdin).",
            allow_dash=True,
            show_default=False,
        ),
    ],
    bootstrap: BootstrapOption = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker to acknowledge everything.")
    ] = 30.0,
) -> None:
    """Validate and publish ticket events to the events topic, keyed by ticket_id.

    Invalid lines are reported (line number, error class, message) and skipped.

    Exit status 1 if any line was rejected or any record was not acknowledged.
    """
    settings = _settings(bootstrap)
    if str(file) != "-" and not file.is_file():
        _err().print(f"[red]error:[/red] {escape(str(file))}: no such file")
        raise typer.Exit(2)
    err = _err()
    _reachable(settings, bootstrap)
    try:
        publisher = TicketEventPublisher(settings)
        report = publisher.publish_file(file, flush_timeout=timeout)
    except (KafkaException, OSError) as exc:
        raise _kafka_failure(exc) from None
    for line in report.rejected:
        err.print(
            f"{escape(str(file))}:{line.line_no}: [red]{line.error_class}[/red]: "
            f"{escape(line.message)}"
        )
    for failure in publisher.errors[:10]:
        err.print(f"[red]delivery failed[/red]: {escape(failure.error)}")
    # what the broker acknowledged, not what was queued
    acknowledged = report.sent - report.undelivered
    summary = (
        f"published {acknowledged} events to {escape(publisher.topic)}; "
        f"{len(report.rejected)} rejected"
    )
    if report.undelivered:
        summary += (
            f"; [red]{report.undelivered} not acknowledged by the broker at "
            f"{escape(settings.bootstrap_servers)}[/red]"
        )
    err.print(summary)
    if not report.ok:
        raise typer.Exit(1)


def tail(
    topics: Annotated[
        list[str] | None,
        typer.Argument(
            help="Topics to read (default: the four output topics).", show_default=False
        ),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record, not new ones.")
    ] = False,
    meta: Annotated[
        bool,
        typer.Option(
            "--meta", help="Print topic, partition, offset, key and headers around each value."
        ),
    ] = False,
    max_records: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many records.")
    ] = None,
    idle: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many seconds without a record (counted once subscribed).",
            min=0.0,
        ),
    ] = None,
    bootstrap: BootstrapOption = None,
) -> None:
    """Print committed records as they arrive, one JSON object per line (Ctrl-C to stop).

    Reads with isolation.level=read_committed, so only outputs of committed transactions
    appear; commits no offsets. Colored by event type when stdout is a terminal.
    """
    settings = _settings(bootstrap)
    _reachable(settings, bootstrap)
    out = Console(highlight=False, soft_wrap=True)
    try:
        subscriber = OutputSubscriber(settings, topics, from_beginning=from_beginning)
    except KafkaException as exc:
        raise _kafka_failure(exc) from None
    count = 0
    restore = interrupt_on_sigterm()
    try:
        idle_since = time.monotonic()
        while max_records is None or count < max_records:
            record = subscriber.poll_record(0.5)  # short polls: Ctrl-C is seen promptly
            if record is None:
                if not subscriber.assigned:  # still joining the group: not idle yet
                    idle_since = time.monotonic()
                elif idle is not None and time.monotonic() - idle_since >= idle:
                    break
                continue
            idle_since = time.monotonic()
            count += 1
            _print_record(out, record, meta)
    except KeyboardInterrupt:
        pass
    except (SubscriberError, KafkaException) as exc:
        raise _kafka_failure(exc) from None
    finally:
        restore()
        subscriber.close()


def _print_record(out: Console, record: ReceivedRecord, meta: bool) -> None:
    try:
        value: Any = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        value = record.value.decode(errors="replace")  # e.g. a malformed record on the DLQ
    body: Any = value
    if meta:
        body = record.to_dict() | {"value": value}
        del body["raw_value"]
    line = orjson.dumps(body).decode()
    if out.is_terminal:
        kind = value.get("type") if isinstance(value, dict) else None
        out.print(Text(line, style=TYPE_STYLES.get(str(kind), "cyan")))
    else:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
