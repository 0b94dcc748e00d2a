"""Kills at deterministic points of the transactional loop, then the whole output compared.

The workers kill themselves (`SLACLOCK_TEST_CRASH`, a test-only hook of the loop, see
processors/live/testcrash.py) after N commits, or inside an open transaction whose records
the broker has already acknowledged; each is restarted at once. The committed content of
every output topic and of the dead-letter topic must then equal `slaclock replay --until`
of the same input (see test_live_pipeline.py for the method): nothing missing, nothing
duplicated. A read_uncommitted reader shows the aborted records that were in the log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slaclock.processors.live.testcrash import AFTER_COMMITS, BETWEEN_PRODUCE_AND_COMMIT
from tests.kafka.pipeline import LivePipeline, WorkerProcess, assert_whole_output_equals_replay
from tests.kafka.test_live_pipeline import FINAL_CLOCK, keyed, with_poison, workload

pytestmark = [pytest.mark.kafka]

SHORT_PLAN = (
    f"{BETWEEN_PRODUCE_AND_COMMIT}:3:tickets",
    f"{AFTER_COMMITS}:4:tickets",
    f"{BETWEEN_PRODUCE_AND_COMMIT}:2:ledger",
    f"{BETWEEN_PRODUCE_AND_COMMIT}:5:tickets",
    f"{AFTER_COMMITS}:2:ledger",
)


SMALL_BATCHES = {"SLACLOCK_MAX_BATCH": "20"}


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    live = LivePipeline(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        manual_clock=True,
    )
    yield live
    live.close()


def crash_and_compare(
    pipeline: LivePipeline, plan: tuple[str, ...], tickets: int, seed: int
) -> str:
    lines = with_poison(workload(tickets, seed=seed), random.Random(seed), share=0.005)
    pipeline.publish(keyed(lines))
    with pipeline.ticking(FINAL_CLOCK):
        # small transactions in the workers that crash: many boundaries to be killed around
        worker, report = pipeline.run_crash_plan(plan, crash_env=SMALL_BATCHES)
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()

    opened = sum(point.startswith(BETWEEN_PRODUCE_AND_COMMIT) for point in plan)
    assert len(report.kills) == len(plan)
    assert report.inside_open_transaction == opened, report.kills
    outputs, dead = assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
    assert outputs.expected > 300 and dead.expected >= 2

    # The open transactions' records were in the log, and read_committed never saw them.
    aborted = pipeline.aborted_records()
    assert sum(aborted.values()) >= opened, aborted
    assert pipeline.unprocessed_input() == 0
    return (
        f"kills {len(report.kills)}, inside an open transaction {report.inside_open_transaction}; "
        f"outputs {outputs.live} (expected {outputs.expected}): missing {len(outputs.missing)}, "
        f"duplicated {len(outputs.duplicated)}, unexpected {len(outputs.unexpected)}; "
        f"dead letters {dead.live} (expected {dead.expected}): missing {len(dead.missing)}, "
        f"duplicated {len(dead.duplicated)}; aborted records by topic {dict(aborted)}; "
        f"kills: {report.kills}"
    )


def test_kills_after_commits_and_inside_open_transactions_lose_and_duplicate_nothing(
    pipeline: LivePipeline,
) -> None:
    print(crash_and_compare(pipeline, SHORT_PLAN, tickets=600, seed=83))


@pytest.mark.slow
def test_many_deterministic_kills_with_rocksdb_lose_and_duplicate_nothing(
    pipeline: LivePipeline, tmp_path: Path
) -> None:
    pipeline.extra_env["SLACLOCK_STORE"] = "rocksdb"
    pipeline.extra_env["SLACLOCK_STATE_DIR"] = str(tmp_path / "state")
    rng = random.Random(97)
    plan = tuple(
        f"{rng.choice((BETWEEN_PRODUCE_AND_COMMIT, AFTER_COMMITS))}:{rng.randint(1, 12)}:"
        f"{rng.choice(('tickets', 'tickets', 'ledger'))}"
        for _ in range(8)
    )
    print(crash_and_compare(pipeline, plan, tickets=1600, seed=89))


def wait_for_line(worker: WorkerProcess, pattern: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while pattern not in worker.log_path.read_text(errors="replace"):
        assert worker.process.poll() is None, worker.log_tail()
        assert time.monotonic() < deadline, f"no {pattern!r} in {timeout}s\n{worker.log_tail()}"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_zombie_resumed_after_its_successor_took_over_commits_nothing(
    pipeline: LivePipeline,
) -> None:
    """A worker frozen inside an open transaction (records in the log, offsets sent) is
    replaced by a successor with the same instance id; woken up, it must be fenced."""
    lines = with_poison(workload(800, seed=101), random.Random(101), share=0.005)
    pipeline.publish(keyed(lines))
    with pipeline.ticking(FINAL_CLOCK):
        zombie = pipeline.start_worker(
            env={
                **SMALL_BATCHES,
                "SLACLOCK_TEST_CRASH": f"{BETWEEN_PRODUCE_AND_COMMIT}:4:tickets:stop",
            }
        )
        wait_for_line(zombie, "0 records unacknowledged, stopping")
        _, status = os.waitpid(zombie.process.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        before, _ = pipeline.input_progress()
        successor = pipeline.start_worker()  # same instance id: same transactional id
        deadline = time.monotonic() + 120
        while pipeline.input_progress()[0] <= before:  # it took over and committed
            assert time.monotonic() < deadline, successor.log_tail()
            time.sleep(0.2)
        zombie.process.send_signal(signal.SIGCONT)
        try:
            zombie.process.wait(60)  # fenced: it cannot commit, it ends
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "the zombie still runs a minute after it woke up: it was not fenced out\n"
                f"zombie: {zombie.log_tail(8)}\nsuccessor: {successor.log_tail(8)}"
            ) from None
        pipeline.settle(FINAL_CLOCK)
    assert successor.stop() == 0, successor.log_tail()
    print(f"zombie exit status {zombie.process.returncode}: {zombie.log_tail(3)}")
    outputs, dead = assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
    assert outputs.expected > 300 and dead.expected >= 2
    assert sum(pipeline.aborted_records().values()) > 0
