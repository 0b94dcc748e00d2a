"""`slaclock replay`: run the engine over a JSONL file of events (SPEC 7)."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from processors.engine.instants import parse_instant
from processors.engine.policy import compile_policy
from processors.engine.ticket import Output
from processors.replay import Rejection, replay
from schemas.policy import PolicyError, load_policy

PROGRESS_MIN_BYTES = 8 * 1024 * 1024


def register_replay(app: typer.Typer) -> None:
    app.command("replay")(replay_command)


def replay_command(
    policy: Annotated[Path, typer.Option(help="Policy YAML file.", exists=True, dir_okay=False)],
    events: Annotated[Path, typer.Option(help="Events, one JSON object per line.", exists=True)],
    until: Annotated[
        str | None,
        typer.Option(help="Advance the clock to this RFC 3339 instant (inclusive) at the end."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output JSONL file (default: stdout).")] = None,
    dlq: Annotated[
        Path | None, typer.Option(help="Write rejected lines here (default: only count them).")
    ] = None,
) -> None:
    """Replay events through the SLA engine and print the outputs, one JSON object a line."""
    err = Console(stderr=True)
    try:
        compiled = compile_policy(load_policy(policy))
    except PolicyError as error:
        err.print(f"[red]policy refused[/red]\n{error}", highlight=False)
        raise typer.Exit(1) from None
    until_us = None
    if until is not None:
        try:
            until_us = parse_instant(until)
        except ValueError as error:
            err.print(f"[red]--until {until!r}: {error}; give an RFC 3339 instant with an offset")
            raise typer.Exit(2) from None
    with ExitStack() as stack:
        sink: IO[bytes] = (
            stack.enter_context(out.open("wb")) if out is not None else sys.stdout.buffer
        )
        dlq_sink = stack.enter_context(dlq.open("wb")) if dlq is not None else None

        def emit(output: Output) -> None:
            sink.write(orjson.dumps(output))
            sink.write(b"\n")

        def reject(rejection: Rejection) -> None:
            if dlq_sink is not None:
                dlq_sink.write(rejection.to_json())
                dlq_sink.write(b"\n")

        source = stack.enter_context(events.open("rb"))
        size = events.stat().st_size
        progress = None
        if err.is_terminal and size >= PROGRESS_MIN_BYTES:
            progress = stack.enter_context(
                Progress(
                    TextColumn("replay"),
                    BarColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=err,
                    transient=True,
                )
            )
            task = progress.add_task("replay", total=size)
        on_progress = None
        if progress is not None:
            done = [0]

            def on_progress(n: int) -> None:
                done[0] += n
                if done[0] >= 1 << 20:
                    progress.advance(task, done[0])
                    done[0] = 0

        summary = replay(compiled, source, emit, reject, until_us, on_progress)
    print(f"replay: {summary.lines} lines; {summary.describe()}", file=sys.stderr)
