"""Report and what-if timings on a generated workload (BENCHMARKS.md, "Reports and what-if").

    .venv/bin/python benchmarks/report_bench.py --events 1000000

Runs the commands a user runs, as subprocesses, and times each (wall clock):
`slaclock generate` (about --events events of examples/policy.yaml's customers over three
months), `slaclock replay --out` once (the yardstick), `slaclock report` for the middle month,
and `slaclock whatif` of the policy against a copy with the enterprise urgent first-response
target at 30m instead of 15m, with the two replays in parallel and one after the other.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLACLOCK = [sys.executable, "-c", "from slaclock.cli import main; main()"]
EVENTS_PER_TICKET = 8.5  # what the shared generator yields on average


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU: dict[str, float] = {}


def run(label: str, *args: str) -> float:
    began, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run([*SLACLOCK, *args], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - began
    CPU[label] = _children_cpu() - cpu
    if done.returncode != 0:
        sys.exit(f"{label} failed:\n{done.stderr}")
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    print(f"{label:<28} {elapsed:7.1f} s wall {CPU[label]:7.1f} s CPU   {last}", flush=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--policy", type=Path, default=ROOT / "examples" / "policy.yaml")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="slaclock-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    events, outputs = work / "events.jsonl", work / "outputs.jsonl"
    policy_b = work / "policy-b.yaml"
    text = args.policy.read_text()
    changed = text.replace(
        "first_response: {urgent: 15m, high: 1h, normal: 4h, low: 8h}",
        "first_response: {urgent: 30m, high: 1h, normal: 4h, low: 8h}",
        1,
    )
    if changed == text:
        sys.exit(f"{args.policy}: no enterprise first_response line to change")
    policy_b.write_text(changed)
    tickets = int(args.events / EVENTS_PER_TICKET)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; work dir {work}"
    )
    timings = {}
    timings["generate"] = run(
        "generate",
        "generate",
        "--policy",
        str(args.policy),
        "--tickets",
        str(tickets),
        "--from",
        "2026-10-01",
        "--to",
        "2026-12-31",
        "--seed",
        "7",
        "--out",
        str(events),
    )
    with events.open("rb") as source:
        lines = sum(1 for _ in source)
    timings["replay"] = run(
        "replay --out (one replay)",
        "replay",
        "--policy",
        str(args.policy),
        "--events",
        str(events),
        "--out",
        str(outputs),
        "--until",
        "2027-01-15T00:00:00Z",
    )
    with outputs.open("rb") as source:
        output_lines = sum(1 for _ in source)
    timings["report"] = run(
        "report --period 2026-11",
        "report",
        "--outputs",
        str(outputs),
        "--period",
        "2026-11",
        "--policy",
        str(args.policy),
        "--out",
        str(work / "report"),
    )
    common = [
        "whatif",
        "--events",
        str(events),
        "--policy",
        str(args.policy),
        "--policy",
        str(policy_b),
        "--until",
        "2027-01-15T00:00:00Z",
    ]
    timings["whatif"] = run("whatif (parallel replays)", *common, "--out", str(work / "w"))
    timings["whatif_serial"] = run(
        "whatif --serial", *common, "--serial", "--out", str(work / "ws")
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"\nevents {lines:,}, tickets {tickets:,}, outputs {output_lines:,}; "
        f"largest child peak RSS {peak:,.0f} MiB"
    )
    print("| step | wall s | CPU s (all processes) |\n|---|---|---|")
    for (name, seconds), cpu in zip(timings.items(), CPU.values(), strict=True):
        print(f"| {name} | {seconds:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
