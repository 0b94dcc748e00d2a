"""Replay speed as ratios measured side by side (issue: a compiled core, parallel replay;
BENCHMARKS.md section 1).

    make test-compiled   # builds build/compiled/venv: the wheel with the mypyc-compiled core
    .venv/bin/python benchmarks/speed_bench.py --tickets 25000 \\
        --compiled-python build/compiled/venv/bin/python --base-tree /tmp/slaclock-base

One seeded workload, written once as JSONL; then, round-robin and `--repeat` times (the
median is reported), each variant as a whole process (`slaclock replay ... --out
/dev/null`, its CPU time including its workers' and its wall time):
- `json.loads` of every line by a Python process: the floor every ratio is taken against;
- `before, pure`: the replay of another source tree (`--base-tree`, e.g. `git archive
  <commit>`), pure Python; `before, compiled`: a compiled install of it
  (`--base-compiled-python`);
- `pure`, `compiled`: this checkout and the compiled wheel;
each with `--workers 1` and `2` (`--workers`).
In this process, on the same lines: the share of CPU the cyclic GC takes with default
thresholds and with `tune_gc`, and the decoding cost per event of pydantic alone against
the msgspec fast path. The machine may be shared: absolute figures are noisy, ratios of
variants run alternately much less so.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slaclock.processors.engine.policy import compile_policy  # noqa: E402
from slaclock.processors.gc_tuning import tune_gc  # noqa: E402
from slaclock.processors.replay import Replayer  # noqa: E402
from slaclock.schemas.events import parse_ticket_event  # noqa: E402
from slaclock.schemas.policy import load_policy  # noqa: E402
from slaclock.schemas.rejection import Rejected, decode_event  # noqa: E402
from slaclock.workload import WorkloadShape, ticket_events  # noqa: E402

# Variants run outside the checkout: `python -c` puts the working directory first on
# sys.path, where `slaclock/` would shadow the installed (compiled) package.
_OUTSIDE = tempfile.gettempdir()
LOADS = "import json, sys\nfor line in open(sys.argv[1], 'rb'):\n    json.loads(line)\n"
REPLAY = "from slaclock.cli import main; main()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=25_000)
    parser.add_argument("--policy", type=Path, default=ROOT / "examples" / "policy.yaml")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compiled-python", type=Path, help="python of a MYPYC=1 install")
    parser.add_argument("--base-tree", type=Path, help="a source tree to compare against")
    parser.add_argument(
        "--base-compiled-python", type=Path, help="python of a MYPYC=1 install of the base"
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    args = parser.parse_args()
    # absolute (the variants run elsewhere), not resolved (a venv's python is a symlink)
    for name in ("policy", "compiled_python", "base_tree", "base_compiled_python"):
        if getattr(args, name) is not None:
            setattr(args, name, Path(os.path.abspath(getattr(args, name))))

    policy = compile_policy(load_policy(args.policy))
    shape = WorkloadShape(
        tickets=args.tickets, customers=(*policy.contracts, "walk-in"), seed=args.seed
    )
    lines = [orjson.dumps(e) for e in ticket_events(shape)]
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(b"\n".join(lines) + b"\n")
        path = f.name
    print(f"workload: {args.tickets} tickets, {len(lines):,} events, seed {args.seed}")
    print(f"machine: {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.2f}")

    me = Path(sys.executable)
    variants: dict[str, tuple[list[str], dict[str, str]]] = {
        "json.loads": ([str(me), "-c", LOADS, path], {}),
    }
    replay_args = ["replay", "--policy", str(args.policy), "--events", path, "--out", os.devnull]
    workers = [int(w) for w in args.workers.split(",")]
    builds: list[tuple[str, Path, dict[str, str]]] = []
    if args.base_tree is not None:
        builds.append(("before, pure", me, {"PYTHONPATH": str(args.base_tree)}))
    if args.base_compiled_python is not None:
        builds.append(("before, compiled", args.base_compiled_python, {}))
    builds.append(("pure", me, {}))
    if args.compiled_python is not None:
        builds.append(("compiled", args.compiled_python, {}))
    for build, python, env in builds:
        for n in workers:
            command = [str(python), "-c", REPLAY, *replay_args, "--workers", str(n)]
            variants[f"{build}, {n} worker{'s' if n > 1 else ''}"] = (command, env)
    for name, (command, env) in variants.items():
        _check(name, command, env)

    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, (command, env) in variants.items():
            runs[name].append(_measure(command, env))
    os.unlink(path)

    loads_cpu = statistics.median(cpu for cpu, _ in runs["json.loads"])
    loads_wall = statistics.median(wall for _, wall in runs["json.loads"])
    print(f"\nmedian of {args.repeat}, whole processes; ratios to json.loads of the same lines")
    print(f"{'variant':30} {'CPU s':>7} {'wall s':>7} {'CPU/loads':>10} {'wall/loads':>11}")
    for name, samples in runs.items():
        cpu = statistics.median(c for c, _ in samples)
        wall = statistics.median(w for _, w in samples)
        print(
            f"{name:30} {cpu:7.2f} {wall:7.2f} {cpu / loads_cpu:9.1f}x {wall / loads_wall:10.1f}x"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    _gc_share(policy, lines[: min(len(lines), 150_000)])
    _decode_cost(lines[: min(len(lines), 50_000)])


def _check(name: str, command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, cwd=_OUTSIDE
    )
    if done.returncode != 0:
        sys.exit(f"{name}: exit {done.returncode}: {done.stderr[-2000:]}")


def _measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """CPU seconds (the process and its children) and wall seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(
        command,
        cwd=_OUTSIDE,
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def _gc_share(policy: object, lines: list[bytes]) -> None:
    """CPU share of the cyclic GC in an in-process replay, default thresholds vs tune_gc."""
    print(f"\ncyclic GC during a replay of {len(lines):,} events (this process, in-process):")
    spent = [0.0, 0.0]

    def clock(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]

    gc.callbacks.append(clock)
    defaults = gc.get_threshold()
    for label, tune in (("default thresholds", False), ("tune_gc", True)):
        gc.unfreeze()
        gc.set_threshold(*defaults)
        gc.collect()
        if tune:
            tune_gc()
        spent[0] = 0.0
        replayer = Replayer(policy, lambda output: None)  # type: ignore[arg-type]
        rss_before = _rss_mib()
        began = time.process_time()
        for raw in lines:
            with contextlib.suppress(Rejected):
                replayer.on_line(raw)
        cpu = time.process_time() - began
        print(
            f"  {label:19} GC {spent[0]:5.2f} s of {cpu:5.2f} s CPU ({spent[0] / cpu:5.1%}); "
            f"RSS grew {_rss_mib() - rss_before:,.0f} MiB"
        )
        del replayer
    gc.callbacks.remove(clock)
    gc.unfreeze()
    gc.set_threshold(*defaults)


def _decode_cost(lines: list[bytes]) -> None:
    print(f"\ndecoding {len(lines):,} events (this process):")
    results = {}
    for label, decode in (
        ("pydantic validate_json", parse_ticket_event),
        ("decode_event", decode_event),
    ):
        began = time.process_time()
        for raw in lines:
            decode(raw)
        results[label] = (time.process_time() - began) / len(lines) * 1e6
    for label, us in results.items():
        print(f"  {label:23} {us:5.2f} µs/event")


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    main()
