"""The cost of an explanation (docs/semantics.md: Explanations; BENCHMARKS.md).

    .venv/bin/python benchmarks/explain_bench.py --tickets 20000

Replays the shared workload (`slaclock.workload`, the replay benchmark's) under
examples/policy.yaml to its last event, then explains every ticket as of that instant, three
ways, each timed on one core (CPU time):
- the core: `explain_with_policy(state, policy, at)` on the live state objects;
- what `GET /tickets/{id}?explain=true` does: decode the changelog record (JSON), rebuild
  the state, explain, encode the JSON answer;
- the JSON alone (`orjson.dumps` of the explanation), for scale.
It also prints the cycles and segments per ticket, and what `slaclock explain` costs end to
end on the same file (the replay to the instant dominates).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slaclock.processors.engine.explain import explain_with_policy  # noqa: E402
from slaclock.processors.engine.policy import compile_policy  # noqa: E402
from slaclock.processors.engine.ticket import TicketState  # noqa: E402
from slaclock.processors.explain_replay import replay_to  # noqa: E402
from slaclock.schemas.policy import load_policy  # noqa: E402
from slaclock.workload import WorkloadShape, ticket_events  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")

    policy = compile_policy(load_policy(ROOT / "examples" / "policy.yaml"))
    shape = WorkloadShape(
        tickets=args.tickets, customers=(*policy.contracts, "walk-in"), seed=args.seed
    )
    lines = [orjson.dumps(event) for event in ticket_events(shape)]
    replayer, at = replay_to(policy, lines, None)
    assert at is not None
    states = list(replayer.store.values())
    records = [orjson.dumps(state.to_record()) for state in states]

    for state in states:  # warm the calendars' week caches, as a running worker has them
        explain_with_policy(state, policy, at)
    gc.collect()
    gc.freeze()  # the replayed states are old objects: no collection walks them while timed
    cpu = time.process_time()
    explanations = [explain_with_policy(state, policy, at) for state in states]
    core_s = time.process_time() - cpu

    cpu = time.process_time()
    answers = [
        orjson.dumps(explain_with_policy(TicketState.from_record(orjson.loads(r)), policy, at))
        for r in records
    ]
    http_s = time.process_time() - cpu

    cpu = time.process_time()
    for explanation in explanations:
        orjson.dumps(explanation)
    dumps_s = time.process_time() - cpu

    n = len(states)
    cycles = sum(len(e["cycles"]) for e in explanations)
    segments = sum(len(c["segments"]) for e in explanations for c in e["cycles"])
    size = sum(len(a) for a in answers) / n
    print(
        f"{n} tickets, {len(lines)} events; {cycles / n:.2f} cycles and {segments / n:.1f} "
        f"segments per ticket; answer {size:.0f} B/ticket"
    )
    print(f"core explanation: {core_s / n * 1e6:.0f} us/ticket ({n / core_s:,.0f} tickets/s)")
    print(f"HTTP path (record -> state -> explanation -> JSON): {http_s / n * 1e6:.0f} us/ticket")
    print(f"orjson.dumps of the explanation alone: {dumps_s / n * 1e6:.1f} us/ticket")

    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(b"\n".join(lines) + b"\n")
        path = f.name
    cpu = time.process_time()
    with open(path, "rb") as source, contextlib.redirect_stdout(None):
        replayed, when = replay_to(policy, source, None)
        assert when is not None
        explain_with_policy(replayed.store[states[n // 2].ticket_id], policy, when)
    os.unlink(path)
    print(
        f"`slaclock explain` equivalent on this file (replay + one explanation): "
        f"{time.process_time() - cpu:.2f} s CPU"
    )


if __name__ == "__main__":
    main()
