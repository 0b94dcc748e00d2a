"""Smoke-sized runs of the benchmarks that need no broker, and the profile summary."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmarks.stacks import summarise

ROOT = Path(__file__).resolve().parents[2]


def test_replay_benchmark_reports_rate_memory_and_state_size() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "replay_bench.py"), "--tickets", "200"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"replay: [\d,]+ events/s of CPU time", out), out
    assert re.search(r"serialised state \d+ B/ticket", out), out


def test_explain_benchmark_reports_the_cost_per_ticket() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "explain_bench.py"), "--tickets", "100"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"core explanation: \d+ us/ticket", done.stdout), done.stdout
    assert re.search(r"HTTP path .*: \d+ us/ticket", done.stdout), done.stdout


def test_state_benchmark_measures_records_without_a_broker() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "state_bench.py")]
    done = subprocess.run(
        [*command, "--skip", "scale,timers", "--record-tickets", "100"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"serialised state \d+ B/ticket .* in memory \d+ B/ticket", done.stdout)


def test_speed_benchmark_reports_ratios_to_json_loads_gc_share_and_decoding_cost() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "speed_bench.py"),
            "--tickets",
            "300",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for variant in ("json.loads", "pure, 1 worker", "pure, 2 workers"):
        assert re.search(rf"^{re.escape(variant)} +[\d.]+ +[\d.]+ +[\d.]+x", out, re.M), out
    assert re.search(r"tune_gc +GC +[\d.]+ s of", out), out
    assert re.search(r"decode_event +[\d.]+ µs/event", out), out


def test_stack_summary_counts_self_and_inclusive_shares() -> None:
    raw = [
        "run (a.py:1);work (a.py:5);parse (b.py:9) 30",
        "run (a.py:1);work (a.py:5) 10",
        "run (a.py:1);wait (a.py:7) 60",
        "not a sample line",
    ]
    summary = summarise(raw, top=3)
    assert summary.splitlines()[0] == "100 samples"
    assert "  60.0%  wait (a.py:7)" in summary
    assert "  30.0%  parse (b.py:9)" in summary
    inclusive = summary.split("inclusive (anywhere on the stack):")[1]
    assert "100.0%  run (a.py:1)" in inclusive and "40.0%  work (a.py:5)" in inclusive


def test_stack_summary_of_nothing_says_so() -> None:
    assert summarise([]) == "no samples"


def test_worker_cpu_benchmark_reports_cpu_per_event_and_the_same_digest_every_run() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "worker_cpu.py"),
            "--tickets",
            "150",
            "--repeat",
            "2",
            "--digest",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = re.findall(
        r"[\d,]+ events: [\d.]+ s CPU, [\d.]+ µs/event; [\d,]+ records produced, digest (\w+)",
        done.stdout,
    )
    assert len(runs) == 2 and runs[0] == runs[1] and runs[0] != "-", done.stdout
    assert re.search(r"median [\d.]+ µs/event", done.stdout), done.stdout
