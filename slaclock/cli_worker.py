"""`slaclock worker`: run a live worker (both stages, ticker, contracts feed)."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from slaclock.processors.broker import BrokerUnreachable, ensure_reachable
from slaclock.processors.settings import SettingsError, load_settings
from slaclock.schemas.policy import PolicyError


def register_worker(app: typer.Typer) -> None:
    app.command("worker")(worker_command)


def worker_command(
    bootstrap: Annotated[
        str | None, typer.Option(help="Broker address (else SLACLOCK_BOOTSTRAP_SERVERS).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
    health: Annotated[
        bool,
        typer.Option(
            "--health",
            help="Only check the worker running with these settings (its health file): "
            "exit 0 if healthy, else 1. For container healthchecks; needs no HTTP port.",
        ),
    ] = False,
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
    from slaclock.processors.live.health_file import HealthFile, check_health_file, health_path

    if health:
        ok, message = check_health_file(health_path(settings))
        print(f"{'healthy' if ok else 'unhealthy'}: {message}", file=sys.stderr)
        raise typer.Exit(0 if ok else 1)
    from confluent_kafka import KafkaException

    from slaclock.processors.live.http import HttpBindError, LiveWorkerView, check_http_port
    from slaclock.processors.live.policies import PolicyLogError
    from slaclock.processors.live.worker import Worker  # heavy imports only when running

    try:
        check_http_port(settings)  # before Kafka: a taken port is said at once
        ensure_reachable(settings, from_flag=bootstrap is not None)  # one line, in seconds
        worker = Worker(settings)
    except PolicyError as error:
        print(f"policy refused:\n{error}", file=sys.stderr)
        raise typer.Exit(2) from None
    except HttpBindError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    except BrokerUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    except PolicyLogError as error:  # a file the log does not hold: one line
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    except RuntimeError as error:
        print(error, file=sys.stderr)
        raise typer.Exit(2) from None
    except KafkaException as error:  # e.g. the broker went away during start-up
        detail = error.args[0].str() if error.args and hasattr(error.args[0], "str") else error
        print(
            f"error: Kafka at {settings.bootstrap_servers} failed during start-up ({detail}); "
            "the worker exits 1 for its supervisor to start it again",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None
    worker.install_signal_handlers()
    print(f"worker {settings.instance_id}: started; SIGTERM stops it cleanly", file=sys.stderr)
    heartbeat = HealthFile(LiveWorkerView(worker).health, health_path(settings)).start()
    try:
        status = worker.run()
    except HttpBindError as error:  # taken between the check and the start
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    finally:
        heartbeat.stop()
    raise typer.Exit(status)
