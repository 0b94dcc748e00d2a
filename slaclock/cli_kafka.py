"""`slaclock kafka up|down|status`: the local single-node broker of `slaclock.local_kafka`.

The bootstrap address goes to stdout alone (`BOOTSTRAP=$(slaclock kafka up)`); progress,
timings and errors go to stderr.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from slaclock.local_kafka import ENV_PORT, LocalKafka, LocalKafkaError, kafka_version

kafka_app = typer.Typer(no_args_is_help=True, help="Run a local single-node Kafka broker.")

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        envvar=ENV_PORT,
        min=1,
        max=65534,
        help="Broker port (the controller uses port+1). Default 9092.",
        show_default=False,
    ),
]


def _fail(exc: LocalKafkaError) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(1)


@kafka_app.command()
def up(
    port: PortOption = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker to answer.")
    ] = 90.0,
) -> None:
    """Start the broker (resolving its jars with Maven on first use) unless it runs."""
    started = time.monotonic()
    try:
        broker = LocalKafka.for_cli(port)
        before = broker.status()
        jar_seconds = 0.0
        if not before.running and not broker.jars.is_complete():
            version = kafka_version(broker.jars.pom)
            _err.print(f"Resolving Kafka {version} jars into {broker.jars.libs} (first use)...")
            broker.jars.ensure()
            jar_seconds = time.monotonic() - started
        bootstrap = broker.up(timeout=timeout)
    except LocalKafkaError as exc:
        raise _fail(exc) from None
    total = time.monotonic() - started
    if before.running:
        _err.print(f"Kafka already running at {bootstrap} (pid {before.pid}).")
        if port is not None and bootstrap != broker.bootstrap:
            _err.print(f"[yellow]--port {port} ignored:[/yellow] run `slaclock kafka down` first.")
    else:
        detail = f" (jars {jar_seconds:.1f} s, broker {total - jar_seconds:.1f} s)"
        _err.print(
            f"Kafka up at {bootstrap} in {total:.1f} s{detail if jar_seconds else ''}; "
            f"log: {broker.log_file}"
        )
    _out.print(bootstrap)


@kafka_app.command()
def down(
    wipe: Annotated[
        bool, typer.Option("--wipe", help="Also delete the broker's data (topics, offsets).")
    ] = False,
) -> None:
    """Stop the broker that `slaclock kafka up` started."""
    try:
        broker = LocalKafka.for_cli()
        pid = broker.status().pid
        stopped = broker.down()
        if wipe:
            broker.wipe()
    except LocalKafkaError as exc:
        raise _fail(exc) from None
    _err.print(f"Stopped Kafka (pid {pid})." if stopped else "No local Kafka broker was running.")
    if wipe:
        _err.print(f"Deleted {broker.config.data_dir}.")


@kafka_app.command()
def status() -> None:
    """Show whether the broker runs and answers; exit code 1 unless it does."""
    try:
        state = LocalKafka.for_cli().status()
    except LocalKafkaError as exc:
        raise _fail(exc) from None
    if not state.running:
        _err.print("Kafka is not running.")
        raise typer.Exit(1)
    answering = "answering" if state.answering else "[red]not answering[/red]"
    _err.print(f"Kafka running at {state.bootstrap} (pid {state.pid}), {answering}.")
    _err.print(f"log: {state.log_file}")
    _out.print(state.bootstrap)
    if not state.answering:
        raise typer.Exit(1)
