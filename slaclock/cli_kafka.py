"""`slaclock kafka up|down|status` (placeholder until the local-broker module lands)."""

import typer

kafka_app = typer.Typer(no_args_is_help=True, help="Run a local single-node Kafka broker.")
