"""Smoke-sized runs of the Kafka benchmarks, so they keep working (the figures are not
checked here: BENCHMARKS.md has them, from full-sized runs)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def run_benchmark(script: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_pipeline_benchmark_measures_workers_and_the_plain_loop(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    profile = tmp_path / "worker.raw"
    out = run_benchmark(
        "pipeline_bench.py",
        "--tickets", "300",
        "--workers", "1",
        "--guarantees", "exactly_once,at_least_once",
        "--bootstrap", kafka_bootstrap,
        "--profile", str(profile),
    )  # fmt: skip
    for label in ("slaclock, 1 worker, exactly_once", "plain loop, 1 process, at_least_once"):
        assert re.search(rf"{label}\s+steady\s+[\d,]+ ev/s", out), out
    assert out.count(" / plain: steady") == 2, out
    assert "self (leaf function):" in out and profile.stat().st_size > 0, out


def test_state_benchmark_measures_state_recovery_and_timers(kafka_bootstrap: str) -> None:
    out = run_benchmark(
        "state_bench.py",
        "--scale", "300",
        "--stores", "rocksdb",  # the memory store shares every step but the warm restart
        "--timer-tickets", "200",
        "--timer-ticks", "on",
        "--timer-seconds", "3",
        "--bootstrap", kafka_bootstrap,
    )  # fmt: skip
    assert re.search(r"\[rocksdb\] 300 open tickets: .* B/ticket over baseline", out), out
    assert re.search(r"\[rocksdb\] recovery of 300 tickets after SIGKILL", out), out
    assert "[rocksdb] recovery of 300 tickets after clean stop (4 warm tasks)" in out, out
    assert "[timers] 200 tickets created" in out, out


def test_faust_experiment_runs_and_reports(kafka_bootstrap: str) -> None:
    out = run_benchmark(
        "faust_eos_experiment.py",
        "--bootstrap", kafka_bootstrap,
        "--inputs", "300",
        "--keys", "20",
        "--kills", "1",
        "--seed", "3",
        "--timeout", "240",
    )  # fmt: skip
    assert re.search(r"^JSON \{", out, re.MULTILINE), out


def test_soak_smoke_loses_and_repeats_nothing_through_kills(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Two minutes of the soak (benchmarks/soak.py): worker and notifier SIGKILLs on the
    session's broker (no broker restart: it is shared)."""
    out = run_benchmark(
        "soak.py",
        "--minutes", "2",
        "--bootstrap", kafka_bootstrap,
        "--kill-worker-every", "0.5",
        "--kill-notifier-every", "0.75",
        "--sample-every", "10",
        "--out", str(tmp_path),
        timeout=900,
    )  # fmt: skip
    assert "outputs vs replay: missing 0, duplicated 0" in out, out
    delivered = re.search(r"breaches delivered: (\d+) of (\d+)", out)
    assert delivered is not None and delivered.group(1) == delivered.group(2), out
    assert int(delivered.group(2)) > 0, out
    assert re.search(r"faults: w [1-9]\d*, notifier [1-9]", out), out
    assert (tmp_path / "soak-samples.csv").stat().st_size > 0
