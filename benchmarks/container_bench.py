"""The worker image's sizes and a worker container's start-to-ready time, on Podman.

Sizes: the base image, each image variant and its own layers (`podman history`).
Start-to-ready: docker-compose.yml's broker and topics come up (not timed), then, `--runs`
times, a new worker container is started with `docker compose up -d worker` and the clock
runs from that command until the worker's `GET /ready` answers 200 (partitions assigned,
stores restored; a fresh container, so an empty state volume). Then the same worker is
stopped (`docker stop`: SIGTERM, a clean stop that checkpoints its stores; timed) and
started again (`docker start`: it reuses its stores from its volume), timed from that
command until `/ready` answers 200. Between two new containers the script waits out the
10 s session timeout of the previous one's static group membership, which would otherwise
hold its partitions. Everything it started is removed at the end.

Needs what `make test-containers` needs (`bash scripts/containers-setup.sh`):

    .venv/bin/python benchmarks/container_bench.py            # sizes of the images there, 3 runs
    .venv/bin/python benchmarks/container_bench.py --build    # build the variants first
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.containers.engine import (  # noqa: E402
    VARIANTS,
    Compose,
    HealthTicker,
    Podman,
    PodmanService,
    build_image,
    engine_problem,
    image_layers,
    image_size,
    needs_health_ticker,
    python_base,
    wait_for,
)

PROJECT = "slaclock-cbench"
MIB = 2**20


def sizes(podman: Podman, base: str) -> dict[str, object]:
    base_size = image_size(podman, base)
    print(f"base {base}: {base_size / MIB:.1f} MiB")
    found: dict[str, object] = {"base": {"image": base, "size": base_size}}
    for name, (tag, _) in VARIANTS.items():
        if not podman.image_exists(tag):
            print(f"{name}: {tag} not built (--build builds it)")
            continue
        size = image_size(podman, tag)
        base_layers = len(image_layers(podman, base))
        own = image_layers(podman, tag)[: -base_layers or None]
        print(
            f"{name} {tag}: {size / MIB:.1f} MiB, {(size - base_size) / MIB:.1f} MiB over the base"
        )
        for layer in own:
            if layer["size"] >= MIB // 10:
                print(f"    {layer['size'] / MIB:7.1f} MiB  {layer['created_by'][-90:]}")
        found[name] = {"tag": tag, "size": size, "own_layers": own}
    return found


def ready(compose: Compose, worker: str) -> bool:
    try:
        address = compose.published(worker, 6066)
        with urllib.request.urlopen(f"http://{address}/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError, AssertionError):
        return False


def start_to_ready(compose: Compose, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "new container to ready": [],
        "clean stop": [],
        "restart to ready (warm store)": [],
    }
    for run in range(runs):
        if run:
            compose.run("rm", "--stop", "--force", "--volumes", "worker")  # and its state volume
            time.sleep(12)  # the removed worker's static membership expires (10 s)
        started = time.monotonic()
        compose.run("up", "--detach", "--no-build", "--no-deps", "worker")
        (worker,) = compose.containers("worker")
        wait_for("the worker ready", lambda w=worker: ready(compose, w), 180, every=0.1)
        times["new container to ready"].append(time.monotonic() - started)
        time.sleep(3)
        started = time.monotonic()
        compose.docker("stop", "--time", "30", worker)  # SIGTERM: checkpoints its stores
        times["clean stop"].append(time.monotonic() - started)
        started = time.monotonic()
        compose.docker("start", worker)
        wait_for("the worker ready again", lambda w=worker: ready(compose, w), 180, every=0.1)
        times["restart to ready (warm store)"].append(time.monotonic() - started)
        assert "reuses its local store" in compose.logs(worker)
    for what, seconds in times.items():
        shown = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{what}: median {statistics.median(seconds):.1f} s ({shown})")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="build the image variants first")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    problem = engine_problem()
    if problem:
        sys.exit(problem)
    podman = Podman()
    base = python_base(podman)
    if base is None:
        sys.exit("no Python base image: run `bash scripts/containers-setup.sh`")
    if args.build:
        for name, (tag, build_args) in VARIANTS.items():
            print(f"built {name} in {build_image(podman, tag, base, build_args):.0f} s")
    results: dict[str, object] = {"sizes": sizes(podman, base)}
    with tempfile.TemporaryDirectory() as scratch:
        token = Path(scratch) / "http-token"
        token.write_text("0123456789abcdef0123456789abcdef\n")
        token.chmod(0o644)
        service = PodmanService(Path(scratch), podman).start()
        compose = Compose(PROJECT, service.docker_env(SLACLOCK_HTTP_TOKEN_SECRET=str(token)))
        ticker = HealthTicker(podman, PROJECT, enabled=needs_health_ticker()).start()
        try:
            compose.run("up", "--detach", "--no-build", "topics", timeout=600)
            (topics,) = compose.containers("topics")
            wait_for("topics", lambda: compose.inspect(topics)["State"]["Status"] == "exited", 180)
            results["start_to_ready_seconds"] = start_to_ready(compose, args.runs)
        finally:
            compose.run("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)
            ticker.stop()
            service.stop()
    out = ROOT / "build" / "containers" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
