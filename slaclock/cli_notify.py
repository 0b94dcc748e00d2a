"""`slaclock notify`: deliver outputs to webhooks, Slack and PagerDuty (a faust app).

Settings: the worker's `SLACLOCK_*` (broker, topic names, partitions) plus
- `SLACLOCK_NOTIFY_PATH`: the routing file (required; `--config` overrides it);
- `SLACLOCK_NOTIFY_APP_ID`: consumer group and prefix of its own topics
  (default `<SLACLOCK_APP_ID>-notify`);
- `SLACLOCK_NOTIFY_HTTP_HOST` / `SLACLOCK_NOTIFY_HTTP_PORT`: the status server
  (default 0.0.0.0:6067; port 0 = none);
- `SLACLOCK_NOTIFY_DLQ_TOPIC`: dead letters (default `sla.notifications.dlq`);
- `SLACLOCK_NOTIFY_DATADIR`: faust's data directory (default `.slaclock-state/notify`).

Exit status: 2 for an invalid routing file or settings (every problem listed), 1 when the
broker or the topics are not usable, 0 after a clean stop (SIGTERM, Ctrl-C).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated

import typer
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from slaclock.processors.broker import BrokerUnreachable, ensure_reachable
from slaclock.processors.notify.config import NotifyConfig, NotifyConfigError, parse_notify_config
from slaclock.processors.notify.settings import NotifySettings
from slaclock.processors.settings import Settings, SettingsError, load_settings

__all__ = ["notify_command", "register_notify"]


def register_notify(app: typer.Typer) -> None:
    """Add `notify` to the `slaclock` command line."""
    app.command("notify")(notify_command)


def output_topics(settings: Settings) -> list[str]:
    """Every output topic: the ticket outputs, credits, statements and availability."""
    return [
        settings.topic_warnings,
        settings.topic_breaches,
        settings.topic_completions,
        settings.topic_credits,
        getattr(settings, "topic_statements", "sla.statements"),
        getattr(settings, "topic_availability", "sla.availability"),
    ]


def load_config(path: Path) -> NotifyConfig:
    """The routing file at `path`, secrets from the environment; NotifyConfigError if bad."""
    from slaclock.processors.notify.config import NotifyProblem

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise NotifyConfigError(
            [NotifyProblem(str(path), "(file)", f"cannot read: {error.strerror}")]
        ) from None
    return parse_notify_config(text, str(path), SecretEnvironment(os.environ))


class SecretEnvironment(Mapping[str, str]):
    """The environment, where a variable `X` not set but `X_FILE` set reads that file
    (one trailing newline dropped): secrets as files, as in Compose or Kubernetes."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def __getitem__(self, name: str) -> str:
        if name in self.environ:
            return self.environ[name]
        path = self.environ.get(name + "_FILE")
        if path is None:
            raise KeyError(name)
        try:
            return Path(path).read_text(encoding="utf-8").removesuffix("\n")
        except (OSError, UnicodeDecodeError):
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.environ)

    def __len__(self) -> int:
        return len(self.environ)


def _fail(err: Console, message: str, status: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(status)


def notify_command(
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The routing file (default: SLACLOCK_NOTIFY_PATH).",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Validate the routing file and exit.")
    ] = False,
    from_latest: Annotated[
        bool,
        typer.Option(
            "--from-latest",
            help="A new consumer group starts at the end of the output topics instead of "
            "their beginning (outputs older than the maximum age go to the DLQ unsent).",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="faust log level.")] = "warning",
) -> None:
    """Deliver warnings, breaches, completions, credits (and any other output) to webhooks,
    Slack and PagerDuty, as the routing file says. At-least-once: a notification may arrive
    twice, with the same Idempotency-Key."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        notify_settings = NotifySettings()
    except ValidationError as error:
        err.print("[red]invalid settings:[/red]")
        for item in error.errors(include_url=False):
            name = "SLACLOCK_NOTIFY_" + ".".join(str(p) for p in item["loc"]).upper()
            err.print(f"  {name}: {escape(item['msg'])}")
        raise typer.Exit(2) from None
    path = config_path or notify_settings.path
    if path is None:
        raise _fail(err, "no routing file: set SLACLOCK_NOTIFY_PATH or pass --config", 2)
    try:
        config = load_config(path)
    except NotifyConfigError as error:
        err.print(f"[red]routing file refused[/red] ({len(error.problems)} problems):")
        for problem in error.problems:
            err.print(f"  {escape(str(problem))}")
        raise typer.Exit(2) from None
    if check:
        err.print(f"{path}: {len(config.targets)} targets, {len(config.routes)} routes: valid")
        return
    try:
        settings = load_settings()
    except SettingsError as error:
        err.print("[red]invalid settings:[/red]")
        for line in error.problems:
            err.print(f"  {escape(line)}")
        raise typer.Exit(2) from None
    try:
        ensure_reachable(settings)  # one line naming the address and its setting, as the worker
        topics, partitions = _prepare_topics(settings, notify_settings, config)
    except BrokerUnreachable as error:
        raise _fail(err, str(error), 1) from None
    except KafkaException as error:
        detail = error.args[0] if error.args else error
        text = detail.str() if isinstance(detail, KafkaError) else str(detail)
        raise _fail(
            err, f"Kafka at {settings.bootstrap_servers} (SLACLOCK_BOOTSTRAP_SERVERS): {text}", 1
        ) from None
    except TopicProblem as problem:
        raise _fail(err, str(problem), 1) from None
    _run(settings, notify_settings, config, topics, partitions, not from_latest, log_level, err)


class TopicProblem(Exception):
    pass


def _prepare_topics(
    settings: Settings, notify: NotifySettings, config: NotifyConfig
) -> tuple[list[str], int]:
    """The output topics that exist (one partition count), the DLQ topic created if missing."""
    admin = AdminClient({**settings.kafka_config(), "log_level": 0})  # errors: one line, ours
    metadata = admin.list_topics(timeout=15)
    wanted = config.document.topics or output_topics(settings)
    present = {
        name: len(metadata.topics[name].partitions) for name in wanted if name in metadata.topics
    }
    missing = [name for name in wanted if name not in present]
    if not present:
        raise TopicProblem(
            f"none of the output topics exists ({', '.join(wanted)}); "
            "create them with `slaclock topics create`"
        )
    counts = set(present.values())
    if len(counts) > 1:
        detail = ", ".join(f"{n}: {c}" for n, c in present.items())
        raise TopicProblem(f"the output topics must have one partition count ({detail})")
    partitions = counts.pop()
    if missing:
        logging.getLogger("slaclock.notify").warning(
            "not read (no such topic yet; restart notify once it exists): %s", ", ".join(missing)
        )
    if notify.dlq_topic not in metadata.topics:
        futures = admin.create_topics(
            [
                NewTopic(
                    notify.dlq_topic,
                    num_partitions=partitions,
                    replication_factor=settings.replication_factor,
                )
            ]
        )
        for future in futures.values():
            try:
                future.result(30)
            except KafkaException as error:
                if "TOPIC_ALREADY_EXISTS" not in str(error):
                    raise
    return list(present), partitions


def _run(
    settings: Settings,
    notify: NotifySettings,
    config: NotifyConfig,
    topics: list[str],
    partitions: int,
    from_beginning: bool,
    log_level: str,
    err: Console,
) -> None:
    import faust

    from slaclock.processors.notify.app import NotifyOptions, build_app

    options = NotifyOptions(
        app_id=notify.app_id or f"{settings.app_id}-notify",
        bootstrap_servers=settings.bootstrap_servers,
        topics=topics,
        partitions=partitions,
        replication_factor=settings.replication_factor,
        dlq_topic=notify.dlq_topic,
        web_host=notify.http_host,
        web_port=notify.http_port,
        datadir=str(notify.datadir),
        from_beginning=from_beginning,
        heap_trim_interval=settings.heap_trim_interval,
    )
    app, _ = build_app(options, config)
    err.print(
        f"notify: {len(config.targets)} targets, reading {', '.join(topics)} "
        f"(read_committed) as group {options.app_id}"
        + (
            f"; status on http://{notify.http_host}:{notify.http_port}/notify/status"
            if notify.http_port
            else ""
        )
    )
    worker = faust.Worker(app, loglevel=log_level, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # no terminal spinner codes in logs
    worker.execute_from_commandline()
