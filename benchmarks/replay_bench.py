"""Replay throughput, memory and state size (issue: engine core; BENCHMARKS.md section 1).

    .venv/bin/python benchmarks/replay_bench.py --tickets 50000

Generates a seeded workload with the shared generator, writes it as JSONL, then measures
on one core: bare `json.loads` of the lines (the floor), the full replay (parse, validate,
engine, ledger, serialise outputs), peak RSS, and the serialised state per open ticket.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slaclock.processors.engine.policy import CompiledPolicy, compile_policy  # noqa: E402
from slaclock.processors.engine.ticket import Rejected  # noqa: E402
from slaclock.processors.replay import Replayer  # noqa: E402
from slaclock.schemas.policy import load_policy  # noqa: E402
from slaclock.workload import WorkloadShape, ticket_events  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--policy", type=Path, default=ROOT / "examples" / "policy.yaml")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    policy = compile_policy(load_policy(args.policy))
    customers = (*policy.contracts, "walk-in")
    shape = WorkloadShape(tickets=args.tickets, customers=customers, seed=args.seed)
    t = time.perf_counter()
    events = ticket_events(shape)
    lines = [orjson.dumps(e) for e in events]
    del events
    generated = time.perf_counter() - t
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        for line in lines:
            f.write(line + b"\n")
        path = f.name
    n = len(lines)
    print(f"workload: {args.tickets} tickets, {n} events ({generated:.1f}s to generate)")

    gc.collect()
    t = time.process_time()
    for line in lines:
        json.loads(line)
    loads_s = time.process_time() - t

    outputs = 0

    def emit(output: dict[str, object]) -> None:
        nonlocal outputs
        orjson.dumps(output)
        outputs += 1

    replayer = Replayer(policy, emit)
    rejected = 0
    gc.collect()
    t = time.perf_counter()
    cpu = time.process_time()
    with open(path, "rb") as source:
        for raw in source:
            try:
                replayer.on_line(raw)
            except Rejected:
                rejected += 1
    replay_s = time.process_time() - cpu  # CPU time: robust to other load on the machine
    wall_s = time.perf_counter() - t
    open_states = [s for s in replayer.store.values() if s.closed_at is None]
    state_bytes = sum(len(orjson.dumps(s.to_record())) for s in open_states)
    replayer.finish(None)
    os.unlink(path)
    in_memory = _in_memory_bytes_per_ticket(policy, lines[: min(n, 100_000)])

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    eps = n / replay_s
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"json.loads only: {n / loads_s:,.0f} lines/s (CPU time)")
    print(
        f"replay: {eps:,.0f} events/s of CPU time, {n / wall_s:,.0f} events/s wall "
        f"({replay_s:.2f}s CPU; {outputs} outputs; {rejected} rejected)"
    )
    print(f"replay cost / json.loads cost: {replay_s / loads_s:.1f}x")
    print(f"peak RSS: {rss_mib:,.0f} MiB")
    per_ticket = state_bytes / max(1, len(open_states))
    print(
        f"open tickets at end of input: {len(open_states)}; "
        f"serialised state {per_ticket:.0f} B/ticket; in memory {in_memory:.0f} B/ticket"
    )


def _in_memory_bytes_per_ticket(policy: CompiledPolicy, lines: list[bytes]) -> float:
    """Python heap held by the ticket store per ticket (tracemalloc, on a prefix of the input)."""
    replayer = Replayer(policy, lambda output: None)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for raw in lines:
        with contextlib.suppress(Rejected):
            replayer.on_line(raw)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / max(1, len(replayer.store))


if __name__ == "__main__":
    main()
