"""`slaclock demo`: broker, topics, a worker and a synthetic workload, with outputs live.

See `slaclock.demo` for what runs. Exit status: 0 when the demo ran (also when ended with
Ctrl-C or SIGTERM), 1 when something failed, 2 for invalid settings, 130 when interrupted
while starting or stopping.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.markup import escape

from slaclock.demo import DEMO_POLICY, DemoError, DemoOptions, print_summary, run_demo
from slaclock.local_kafka import LocalKafkaError
from slaclock.processors.settings import SettingsError
from slaclock.processors.topics import TopicError
from slaclock.schemas.policy import PolicyError
from slaclock.signals import interrupt_on_sigterm

__all__ = ["demo_command", "register_demo"]


def register_demo(app: typer.Typer) -> None:
    """Add `demo` to the `slaclock` command line."""
    app.command("demo")(demo_command)


def demo_command(
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            min=1.0,
            metavar="SECONDS",
            help="Stop after this many seconds of workload (default: run until Ctrl-C).",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[float, typer.Option("--rate", min=0.01, help="New tickets per second.")] = 2.0,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            "--bootstrap",
            help="Use the Kafka broker at this address; the demo then never starts or stops "
            "one. Default: SLACLOCK_BOOTSTRAP_SERVERS, where a local broker is started "
            "(and stopped at exit) if none answers.",
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        Path,
        typer.Option("--policy", exists=True, dir_okay=False, help="The policy file."),
    ] = DEMO_POLICY,
    app_id: Annotated[
        str | None,
        typer.Option(
            "--app-id",
            help="App id, also the prefix of every topic (default: slaclock-demo-<UTC time>, "
            "new each run).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the workload (default: random).", show_default=False),
    ] = None,
    keep_topics: Annotated[
        bool, typer.Option("--keep-topics", help="Keep the demo's topics at exit.")
    ] = False,
    plain: Annotated[
        bool, typer.Option("--plain", help="Plain lines even on a terminal (as in CI).")
    ] = False,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify",
            help="Also run `slaclock notify`: breaches and late warnings reach a local "
            "Slack-like receiver, shown in the feed.",
        ),
    ] = False,
) -> None:
    """The live demo: a broker, topics, a worker and a synthetic workload; outputs live.

    Tickets arrive in real time at --rate per second; agents answer some in time, some late.

    Targets are seconds (examples/demo-policy.yaml): breaches and credits within a minute.

    Runs until Ctrl-C or --duration, stops everything it started, then prints a summary.
    """
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if app_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", app_id):
        err.print("[red]--app-id:[/red] letters, digits, '.', '_' and '-' only")
        raise typer.Exit(2)
    options = DemoOptions(
        bootstrap=bootstrap,
        duration=duration,
        rate=rate,
        app_id=app_id,
        policy_path=policy,
        seed=seed,
        keep_topics=keep_topics,
        plain=plain,
        notify=notify,
    )
    restore = interrupt_on_sigterm()
    try:
        result = run_demo(options, console)
    except KeyboardInterrupt:
        # Ctrl-C while the workload runs is the normal end; this one came while starting
        # or stopping.
        err.print("demo interrupted; what it had started is stopped")
        raise typer.Exit(130) from None
    except PolicyError as error:
        err.print(f"[red]policy refused:[/red]\n{escape(str(error))}")
        raise typer.Exit(1) from None
    except SettingsError as error:
        err.print("[red]invalid settings:[/red]")
        for problem in error.problems:
            err.print(f"  {escape(problem)}")
        raise typer.Exit(2) from None
    except (DemoError, LocalKafkaError, TopicError) as error:
        err.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    except KafkaException as error:
        detail = error.args[0] if error.args else error
        err.print(f"[red]error:[/red] {escape(str(detail))}")
        raise typer.Exit(1) from None
    finally:
        restore()
    print_summary(console, result, plain=plain or not console.is_terminal)
    if result.worker_exit != 0:
        raise typer.Exit(1)
