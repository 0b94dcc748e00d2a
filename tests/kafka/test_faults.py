"""Kills at deterministic points of the transactional loop, then the whole output compared.

The workers kill themselves (`SLACLOCK_TEST_CRASH`, a test-only hook of the loop, see
processors/live/testcrash.py) after N commits, or inside an open transaction whose records
the broker has already acknowledged; each is restarted at once. The committed content of
every output topic and of the dead-letter topic must then equal `slaclock replay --until`
of the same input (see test_live_pipeline.py for the method): nothing missing, nothing
duplicated. A read_uncommitted reader shows the aborted records that were in the log.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.live.testcrash import AFTER_COMMITS, BETWEEN_PRODUCE_AND_COMMIT
from tests.kafka.pipeline import LivePipeline, assert_whole_output_equals_replay
from tests.kafka.test_live_pipeline import FINAL_CLOCK, keyed, with_poison, workload

pytestmark = [pytest.mark.kafka]

SHORT_PLAN = (
    f"{BETWEEN_PRODUCE_AND_COMMIT}:3:tickets",
    f"{AFTER_COMMITS}:4:tickets",
    f"{BETWEEN_PRODUCE_AND_COMMIT}:2:ledger",
    f"{BETWEEN_PRODUCE_AND_COMMIT}:5:tickets",
    f"{AFTER_COMMITS}:2:ledger",
)


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    live = LivePipeline(
        kafka_bootstrap,
        topic_prefix,
        tmp_path,
        manual_clock=True,
        extra_env={"SLACLOCK_MAX_BATCH": "20"},  # many transactions to kill in
    )
    yield live
    live.close()


def crash_and_compare(
    pipeline: LivePipeline, plan: tuple[str, ...], tickets: int, seed: int
) -> str:
    lines = with_poison(workload(tickets, seed=seed), random.Random(seed), share=0.005)
    pipeline.publish(keyed(lines))
    with pipeline.ticking(FINAL_CLOCK):
        worker, report = pipeline.run_crash_plan(plan)
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
        for _ in range(12)
    )
    print(crash_and_compare(pipeline, plan, tickets=2400, seed=89))
