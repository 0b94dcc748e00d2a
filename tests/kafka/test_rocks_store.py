"""The live pipeline with the RocksDB ticket store (`SLACLOCK_STORE=rocksdb`), compared with
`replay` of the same events, across SIGKILLs (see `test_live_pipeline.py` for the method)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka.pipeline import LivePipeline
from tests.kafka.test_live_pipeline import (
    assert_live_equals_replay,
    keyed,
    run_to_now,
    workload,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    """A pipeline whose worker keeps its tickets in RocksDB under `tmp_path / "state"`."""
    live = LivePipeline(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        extra_env={
            "SLACLOCK_STORE": "rocksdb",
            "SLACLOCK_STATE_DIR": str(tmp_path / "state"),
            "SLACLOCK_MAX_BATCH": "20",  # many small transactions: stops land mid-stream
        },
    )
    yield live
    live.close()


def instance_dir(pipeline: LivePipeline) -> Path:
    return Path(pipeline.extra_env["SLACLOCK_STATE_DIR"]) / pipeline.names["app_id"] / "w1"


def test_rocksdb_store_live_equals_replay_across_sigkills(pipeline: LivePipeline) -> None:
    lines = workload(1600, seed=61)
    pipeline.publish(keyed(lines))
    worker, mid_stream = pipeline.kill_repeatedly(4, random.Random(8), pause=(1.5, 3.0))
    clock = run_to_now(pipeline)

    # The open tickets are on disk: one RocksDB per task, under <state_dir>/<app>/<id>/.
    stores = instance_dir(pipeline)
    databases = sorted(p.name for p in stores.iterdir())
    assert databases == [f"tickets-{p}" for p in range(pipeline.partitions)]
    assert all((stores / name / "CURRENT").is_file() for name in databases)
    assert worker.stop() == 0, worker.log_tail()
    restored = re.findall(r"tickets\[\d+\]: restored (\d+) tickets", worker.log_tail(200))
    assert len(restored) == pipeline.partitions and sum(map(int, restored)) > 0

    assert mid_stream >= 2, f"only {mid_stream} of the kills hit unprocessed input"
    assert_live_equals_replay(pipeline, lines, clock)


def test_clean_restart_reuses_the_local_stores_and_still_equals_replay(
    pipeline: LivePipeline,
) -> None:
    lines = workload(2000, seed=73)
    total = pipeline.publish(keyed(lines))
    worker = pipeline.start_worker()
    deadline = time.monotonic() + 120
    while pipeline.unprocessed_input() > total * 0.6:  # stop it well into the stream
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.2)
    assert worker.stop() == 0, worker.log_tail()
    assert pipeline.unprocessed_input() > 0, "the stop should come before the end of input"
    checkpoints = sorted(p.name for p in instance_dir(pipeline).glob("*.checkpoint"))
    assert checkpoints == [f"tickets-{p}.checkpoint" for p in range(pipeline.partitions)]

    worker = pipeline.start_worker()
    clock = run_to_now(pipeline)
    assert worker.stop() == 0, worker.log_tail()
    log = worker.log_tail(400)
    assert len(re.findall(r"task \d+ reuses its local store", log)) == pipeline.partitions
    assert_live_equals_replay(pipeline, lines, clock)
