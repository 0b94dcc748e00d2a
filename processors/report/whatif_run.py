"""Run the two replays of a what-if, in parallel processes, and keep only outcomes by key."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.gc_tuning import tune_gc
from slaclock.processors.replay import Rejection, replay
from slaclock.processors.report.whatif import KeyOutcome, NaturalKey, OutcomeCollector
from slaclock.schemas.policy import load_policy


def replay_outcomes(
    policy_path: str, events_path: str, until_us: int | None
) -> tuple[dict[NaturalKey, KeyOutcome], str]:
    """One replay of `events_path` under `policy_path`: outcomes by key and a summary line."""
    compiled = compile_policy(load_policy(policy_path))
    collector = OutcomeCollector()
    rejected = [0]

    def reject(_rejection: Rejection) -> None:
        rejected[0] += 1

    tune_gc()
    with Path(events_path).open("rb") as source:
        summary = replay(compiled, source, collector, reject, until_us)
    return collector.result(), summary.describe()


def replay_both(
    policy_a: Path, policy_b: Path, events: Path, until_us: int | None, parallel: bool = True
) -> tuple[tuple[dict[NaturalKey, KeyOutcome], str], tuple[dict[NaturalKey, KeyOutcome], str]]:
    """Both replays; in two processes when `parallel` (tickets are independent per replay)."""
    if not parallel:
        return (
            replay_outcomes(str(policy_a), str(events), until_us),
            replay_outcomes(str(policy_b), str(events), until_us),
        )
    with ProcessPoolExecutor(max_workers=2) as pool:
        first = pool.submit(replay_outcomes, str(policy_a), str(events), until_us)
        second = pool.submit(replay_outcomes, str(policy_b), str(events), until_us)
        return first.result(), second.result()
