"""Fixtures of the notification tests: receivers and a `slaclock notify` run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CreateTopics
from tests.notify.harness import OUTPUT_TOPICS, NotifyRun
from tests.notify.receivers import Kind, Receiver

MakeReceiver = Callable[..., Receiver]
MakeRun = Callable[..., NotifyRun]


@pytest.fixture
def receiver() -> Iterator[MakeReceiver]:
    made: list[Receiver] = []

    def make(
        kind: Kind, script: list[tuple[int, dict[str, str]]] | None = None, delay: float = 0.0
    ) -> Receiver:
        made.append(Receiver(kind, script, delay))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def notify_run(
    kafka_bootstrap: str, topic_prefix: str, create_topics: CreateTopics, tmp_path: Path
) -> Iterator[MakeRun]:
    runs: list[NotifyRun] = []

    def make(routing: str, env: dict[str, str] | None = None, partitions: int = 2) -> NotifyRun:
        create_topics([topic_prefix + t for t in OUTPUT_TOPICS], partitions=partitions)
        run = NotifyRun(kafka_bootstrap, topic_prefix, tmp_path, routing, env or {})
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()
