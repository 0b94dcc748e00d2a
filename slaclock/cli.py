"""The `slaclock` command line: one Typer app that mounts each area's commands.

Each area keeps its commands in its own module; this file only wires them together.
`slaclock replay` imports only its own command (a replay is often a short process, and
the Kafka, report and demo commands are most of the start-up); every other command line
builds the whole app. `app` is that whole app (built on first use).
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Annotated, Any

import typer

from slaclock.build_info import describe

HELP = "slaclock: SLA clocks on Kafka."


def _version(value: bool) -> None:
    if value:
        typer.echo(describe())
        raise typer.Exit()


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


def _new_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
    app.callback()(_root)
    return app


@cache
def full_app() -> typer.Typer:
    """Every command."""
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

    app = _new_app()
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
    return app


def replay_app() -> typer.Typer:
    """`slaclock replay` alone: the same command, options and help."""
    from slaclock.cli_replay import register_replay

    app = _new_app()
    register_replay(app)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _may_name_settings() -> bool:
    """Whether the environment or a `.env` file could name a `SLACLOCK_*` setting: only
    then is the settings module (pydantic-settings and every settings model, about 1% of
    a replay's CPU) imported to check them."""
    return os.path.exists(".env") or any(
        name.upper().startswith("SLACLOCK_") for name in os.environ
    )


def main() -> None:
    if _may_name_settings():
        from slaclock.processors.settings import report_unknown_settings

        report_unknown_settings()
    if sys.argv[1:2] == ["replay"]:
        replay_app()()
    else:
        full_app()()
