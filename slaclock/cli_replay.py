"""`slaclock replay`: run the engine over a JSONL file of events.

Exit status: 0 when the file held valid events (some lines may be rejected: the first few
are shown on stderr with their line number, class and reason, and all go to --dlq); 1 when nothing valid was read (the message says what the file
looks like instead, e.g. YAML or a JSON array) or the policy is refused; 2 for a bad flag
value (an --until without an offset, an --out or --dlq that cannot be written).
"""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, NoReturn

import typer

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.gc_tuning import tune_gc
from slaclock.processors.replay import OutputWriter, Rejection, replay
from slaclock.schemas.policy import PolicyError, load_policy
from slaclock.sniff import describe_file

if TYPE_CHECKING:
    from rich.console import Console

PROGRESS_MIN_BYTES = 8 * 1024 * 1024
SHOWN_REJECTIONS = 3  # rejected lines shown on stderr; --dlq keeps them all


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
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes to shard tickets over; 0: the number of cores (inputs under "
            "20,000 lines then use one). Same output as one process; input out of time "
            "order replays in one. Default 1: on two cores sharding does not pay yet.",
        ),
    ] = 1,
) -> None:
    """Replay events through the SLA engine and print the outputs, one JSON object a line."""
    try:
        compiled = compile_policy(load_policy(policy))
    except PolicyError as error:
        from rich.markup import escape

        _stderr_console().print(f"[red]policy refused[/red]\n{escape(str(error))}")
        raise typer.Exit(1) from None
    until_us = None
    if until is not None:
        try:
            until_us = parse_instant(until)
        except ValueError as error:
            _fail(f"--until {until!r}: {error}; give an RFC 3339 instant with an offset", 2)
    rejected_by_class: Counter[str] = Counter()
    first_rejections: list[Rejection] = []
    with ExitStack() as stack:
        sink: IO[bytes] = (
            _open_for_writing(stack, out, "--out") if out is not None else sys.stdout.buffer
        )
        dlq_sink = _open_for_writing(stack, dlq, "--dlq") if dlq is not None else None

        writer = OutputWriter(sink.write)  # outputs in blocks
        stack.callback(writer.flush)  # before the sink closes (its callback runs later)

        def reject(rejection: Rejection) -> None:
            rejected_by_class[rejection.error_class] += 1
            if len(first_rejections) < SHOWN_REJECTIONS:
                first_rejections.append(rejection)
            if dlq_sink is not None:
                dlq_sink.write(rejection.to_json())
                dlq_sink.write(b"\n")

        try:
            source = stack.enter_context(events.open("rb"))
            size = events.stat().st_size
        except OSError as error:
            _fail(f"cannot read --events {events}: {error.strerror or error}", 2)
        progress = None
        # rich (about 1% of a replay's start-up) only for a progress bar on a terminal
        err = _stderr_console() if size >= PROGRESS_MIN_BYTES and sys.stderr.isatty() else None
        if err is not None and err.is_terminal:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

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

        tune_gc()  # after start-up: the replay's state is long-lived
        if workers == 1:
            summary = replay(compiled, source, writer, reject, until_us, on_progress)
        else:
            # imported here: multiprocessing and the merge are start-up a one-process
            # replay does not need
            from slaclock.processors.parallel_replay import replay_parallel

            if progress is not None:
                progress.stop()
            count = None if workers == 0 else workers
            run = replay_parallel(
                compiled,
                source.readlines(),
                writer,
                reject,
                until_us,
                count,
                emit_raw=writer.write_raw,
            )
            summary = run.summary
            if run.fallback is not None:
                print(f"replay: {run.fallback}: replayed in one process", file=sys.stderr)
            elif run.workers > 1:
                print(f"replay: {run.workers} workers", file=sys.stderr)
    print(f"replay: {summary.lines} lines; {summary.describe()}", file=sys.stderr)
    if summary.applied() == 0:
        _fail(_nothing_valid(events, summary.lines, rejected_by_class, first_rejections), 1)
    rejected = sum(rejected_by_class.values())
    if rejected:
        for rejection in first_rejections:
            print(f"replay: {_rejection_line(rejection)}", file=sys.stderr)
        more = (
            f" ({rejected - len(first_rejections)} more not shown)"
            if rejected > SHOWN_REJECTIONS
            else ""
        )
        where = (
            f"written to {dlq}"
            if dlq is not None
            else "not kept: --dlq FILE writes them (line, class, reason, the raw line)"
        )
        plural = "line" if rejected == 1 else "lines"
        print(f"replay: {rejected} rejected {plural} {where}{more}", file=sys.stderr)


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)  # error lines never wrapped


def _rejection_line(rejection: Rejection) -> str:
    """`line N: Class: reason`, the reason on one line and at most 160 characters."""
    message = " ".join(rejection.message.split())
    if len(message) > 160:
        message = message[:159] + "…"
    return f"line {rejection.line}: {rejection.error_class}: {message}"


def _fail(message: str, status: int) -> NoReturn:
    """One line on stderr (never wrapped), then the exit status."""
    print(f"replay: error: {message}", file=sys.stderr)
    raise typer.Exit(status)


def _open_for_writing(stack: ExitStack, path: Path, flag: str) -> IO[bytes]:
    try:
        return stack.enter_context(path.open("wb"))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        _fail(f"cannot write {flag} {path}: {reason}; give {flag} a writable file path", 2)


def _nothing_valid(events: Path, lines: int, rejected: Counter[str], first: list[Rejection]) -> str:
    """Why a replay read nothing valid: the file's shape if it is not JSON Lines, else the
    rejections (every line was an event the engine refused)."""
    shape = describe_file(events)
    if shape is not None:
        return f"no valid events in {events}: {shape}; --events takes JSON Lines, one event object a line"
    if lines == 0 or not rejected:
        return f"no events in {events}: the file is empty"
    counts = ", ".join(f"{name} {n}" for name, n in rejected.most_common())
    detail = f"; {_rejection_line(first[0])}" if first else ""
    return f"no valid events in {events}: every line was rejected ({counts}){detail}"
