"""Run the two replays of a what-if, in parallel processes, and keep only outcomes by key."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.gc_tuning import tune_gc
from slaclock.processors.parallel_replay import default_workers, replay_parallel
from slaclock.processors.replay import Rejection
from slaclock.processors.report.whatif import (
    KeyOutcome,
    NaturalKey,
    OutcomeCollector,
    calendar_projection,
)
from slaclock.schemas.policy import load_policy


def replay_outcomes(
    policy_path: str, events_path: str, until_us: int | None, workers: int | None = 1
) -> tuple[dict[NaturalKey, KeyOutcome], str]:
    """One replay of `events_path` under `policy_path`: outcomes by key and a summary line
    (sharded over `workers` processes, `replay --workers`)."""
    compiled = compile_policy(load_policy(policy_path))
    collector = OutcomeCollector(calendar_projection(compiled))
    rejected = [0]

    def reject(_rejection: Rejection) -> None:
        rejected[0] += 1

    tune_gc()
    with Path(events_path).open("rb") as source:
        run = replay_parallel(compiled, source, collector, reject, until_us, workers)
    return collector.result(), run.summary.describe()


def replay_both(
    policy_a: Path, policy_b: Path, events: Path, until_us: int | None, parallel: bool = True
) -> tuple[tuple[dict[NaturalKey, KeyOutcome], str], tuple[dict[NaturalKey, KeyOutcome], str]]:
    """Both replays; in two processes when `parallel` (tickets are independent per replay),
    each sharded over half the cores; one after the other, each over all the cores."""
    if not parallel:
        return (
            replay_outcomes(str(policy_a), str(events), until_us, None),
            replay_outcomes(str(policy_b), str(events), until_us, None),
        )
    half = max(1, default_workers() // 2)
    # Not forked from this process: a forked child inherits its garbage, and the collection
    # each replay starts with (`tune_gc`) would run the destructors of native handles whose
    # threads stayed behind (a RocksDB or Kafka client of a long-lived host process, such as
    # a test run), which can crash the child. A fork server's children start clean.
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        first = pool.submit(replay_outcomes, str(policy_a), str(events), until_us, half)
        second = pool.submit(replay_outcomes, str(policy_b), str(events), until_us, half)
        return first.result(), second.result()
