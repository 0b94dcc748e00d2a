"""Fixtures of the container tier: the engine, the images, the compose stack.

Every test here is `slow` (run by `make test-containers`, never by `make test`) and is
skipped with one line when no container engine answers. `scripts/containers-setup.sh`
(run by `make test-containers`) installs Podman, runc, mmdebstrap and the Docker Compose
plugin and makes the stand-in base images; the fixtures build slaclock's image, start
Podman's Docker API service on a private socket, run docker-compose.yml unchanged under
the project name `slaclock-ctest` and remove everything they started at the end.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.containers import kafka_io
from tests.containers.engine import (
    REAL_PYTHON,
    ROOT,
    SETUP,
    STANDIN_PYTHON,
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

PROJECT = "slaclock-ctest"
HOST_BOOTSTRAP = "127.0.0.1:29092"  # the broker's HOST listener, published by the compose file
RESULTS = ROOT / "build" / "containers"


@pytest.hookimpl(trylast=True)  # after `-m "not slow"` has deselected them under `make test`
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a container engine: one skipped test says why, the rest are deselected."""
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    if not ours or (problem := engine_problem()) is None:
        return
    ours[0].add_marker(pytest.mark.skip(reason=f"{len(ours)} container tests: {problem}"))
    rest = set(ours[1:])
    if rest:
        config.hook.pytest_deselected(items=list(rest))
        items[:] = [item for item in items if item not in rest]


@pytest.fixture(scope="session")
def podman() -> Podman:
    problem = engine_problem()
    if problem is not None:
        pytest.skip(problem)
    return Podman()


@dataclass
class BuiltImage:
    tag: str
    size: int  # bytes, as `podman image inspect` reports it
    build_seconds: float
    layers: list[dict[str, Any]]  # newest first: size (bytes) and the instruction


@dataclass
class Images:
    base: str
    base_size: int
    built: dict[str, BuiltImage] = field(default_factory=dict)


@pytest.fixture(scope="session")
def images(podman: Podman) -> Images:
    """Every variant of VARIANTS built from this checkout's Dockerfile; sizes recorded in
    build/containers/images.json."""
    base = python_base(podman)
    if base is None:
        pytest.skip(f"no Python base image ({REAL_PYTHON} or {STANDIN_PYTHON}): run `bash {SETUP}`")
    found = Images(base, image_size(podman, base))
    for name, (tag, args) in VARIANTS.items():
        seconds = build_image(podman, tag, base, args)
        found.built[name] = BuiltImage(
            tag, image_size(podman, tag), seconds, image_layers(podman, tag)
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "images.json").write_text(
        json.dumps(
            {
                "base": {"image": found.base, "size": found.base_size},
                "variants": {
                    name: {
                        "tag": b.tag,
                        "size": b.size,
                        "build_seconds": round(b.build_seconds, 1),
                        "layers": b.layers,
                    }
                    for name, b in found.built.items()
                },
            },
            indent=2,
        )
        + "\n"
    )
    return found


@pytest.fixture(scope="session")
def service(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanService]:
    """Podman's Docker API on a private socket, for the docker CLI and docker compose."""
    started = PodmanService(tmp_path_factory.mktemp("podman"), podman).start()
    try:
        yield started
    finally:
        started.stop()


@dataclass
class Stack:
    """The compose project as the tests drive it; `published` is every input record sent."""

    compose: Compose
    ticker: HealthTicker
    token: str
    workdir: Path
    published: list[tuple[bytes | None, bytes]] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return HOST_BOOTSTRAP

    def workers(self) -> list[str]:
        return self.compose.containers("worker")

    def publish(self, records: list[tuple[bytes | None, bytes]]) -> None:
        kafka_io.publish(self.bootstrap, records)
        self.published += records

    def http(self, worker: str, path: str, token: str | None = None) -> tuple[int, Any]:
        """(status, JSON body) of GET `path` on a worker's published HTTP port."""
        request = urllib.request.Request(f"http://{self.compose.published(worker, 6066)}{path}")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, None

    def readiness(self, worker: str) -> dict[str, Any] | None:
        try:
            status, body = self.http(worker, "/ready")
        except (OSError, ValueError):
            return None
        return body if status == 200 else None

    def tickets_partitions(self, worker: str) -> list[int] | None:
        ready = self.readiness(worker)
        return None if ready is None else list(ready["stages"]["tickets"]["partitions"])

    def wait_ready(self, workers: list[str], timeout: float = 180) -> dict[str, list[int]]:
        """Until every worker is ready and they own all six partitions between them."""

        def split() -> dict[str, list[int]] | None:
            owned = {w: self.tickets_partitions(w) for w in workers}
            if any(not p for p in owned.values()):
                return None
            every = sorted(p for parts in owned.values() for p in parts or [])
            return owned if every == list(range(6)) else None

        result: dict[str, list[int]] = wait_for(f"{workers} ready", split, timeout)
        return result


@pytest.fixture(scope="module")
def stack(
    images: Images, service: PodmanService, podman: Podman, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """docker-compose.yml up: the broker and the topics first, then the example events
    published from the host, then two workers (they start on a backlog, as after an outage
    of theirs). Everything the project created is removed afterwards."""
    workdir = tmp_path_factory.mktemp("stack")
    token = secrets.token_hex(32)
    token_file = workdir / "http-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o644)  # readable by the image's uid 10001, as `make compose-secrets`
    env = service.docker_env(SLACLOCK_HTTP_TOKEN_SECRET=str(token_file))
    for name in ("SLACLOCK_POLICY_FILE", "COMPOSE_PROFILES", "COMPOSE_FILE"):
        env.pop(name, None)  # the compose file's defaults, whatever the caller's shell says
    compose = Compose(PROJECT, env)
    compose.run("down", "--volumes", "--remove-orphans", check=False)  # a previous run's leftovers
    ticker = HealthTicker(podman, PROJECT, enabled=needs_health_ticker()).start()
    stack = Stack(compose, ticker, token, workdir)
    try:
        compose.run("up", "--detach", "--no-build", "topics", timeout=600)
        (topics,) = compose.containers("topics")
        wait_for(
            "the topics container to exit",
            lambda: compose.inspect(topics)["State"]["Status"] == "exited",
            timeout=180,
        )
        stack.publish(
            kafka_io.keyed((ROOT / "examples" / "events.jsonl").read_bytes().splitlines())
        )
        compose.run("up", "--detach", "--no-build", "--scale", "worker=2", timeout=600)
        stack.wait_ready(stack.workers())
        yield stack
    finally:
        try:
            (workdir / "compose-logs.txt").write_text(
                compose.run("logs", "--no-color", check=False)
            )
            compose.run("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)
        finally:
            ticker.stop()
