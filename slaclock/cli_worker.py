"""`slaclock worker`: run a live worker (both stages, ticker, contracts feed)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from schemas.policy import PolicyError
from slaclock.settings import SettingsError, load_settings


def register_worker(app: typer.Typer) -> None:
    app.command("worker")(worker_command)


def worker_command(
    bootstrap: Annotated[
        str | None, typer.Option(help="Broker address (else SLACLOCK_BOOTSTRAP_SERVERS).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run a worker until SIGTERM/SIGINT. Configured by SLACLOCK_* variables (see README)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {"bootstrap_servers": bootstrap} if bootstrap else {}
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise typer.Exit(2) from None
    from processors.live.http import HttpBindError, check_http_port
    from processors.live.worker import Worker  # heavy imports only when running

    try:
        check_http_port(settings)  # before Kafka: a taken port is said at once
        worker = Worker(settings)
    except PolicyError as error:
        print(f"policy refused:\n{error}", file=sys.stderr)
        raise typer.Exit(2) from None
    except HttpBindError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    except RuntimeError as error:
        print(error, file=sys.stderr)
        raise typer.Exit(2) from None
    worker.install_signal_handlers()
    try:
        status = worker.run()
    except HttpBindError as error:  # taken between the check and the start
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    raise typer.Exit(status)
