"""The `slaclock` command line: one Typer app that mounts each area's commands.

Each area keeps its commands in its own module; this file only wires them together.
"""

from __future__ import annotations

from typing import Annotated

import typer

from slaclock.build_info import describe
from slaclock.cli_demo import register_demo
from slaclock.cli_explain import register_explain
from slaclock.cli_kafka import kafka_app
from slaclock.cli_live import live_app_commands
from slaclock.cli_notify import register_notify
from slaclock.cli_policy import register_policy_versions
from slaclock.cli_policy_diff import register_policy_diff
from slaclock.cli_replay import register_replay
from slaclock.cli_report import register_report
from slaclock.cli_schemas import policy_app, schemas_app
from slaclock.cli_services import services_app
from slaclock.cli_worker import register_worker
from slaclock.processors.settings import report_unknown_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="slaclock: SLA clocks on Kafka.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(schemas_app, name="schemas")
register_policy_versions(policy_app)
app.add_typer(policy_app, name="policy")
register_policy_diff(policy_app)
app.add_typer(services_app, name="services")
register_replay(app)
register_explain(app)
register_report(app)
register_worker(app)
live_app_commands(app)
register_demo(app)
register_notify(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(describe())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and whether the core is compiled (mypyc) or pure Python.",
        ),
    ] = False,
) -> None:
    """slaclock: SLA clocks on Kafka."""


def main() -> None:
    report_unknown_settings()
    app()
