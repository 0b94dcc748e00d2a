"""The container engine of the container tier: Podman, its Docker API service, Docker Compose.

- `Podman` runs `podman` with this tier's `containers.conf` (runc, cgroupfs, no rlimits:
  see the file), never the machine's own configuration.
- `PodmanService` serves the Docker API on a private socket (never the default
  `/var/run/docker.sock`, so other test sessions on the machine do not suddenly find a
  "Docker engine") for the `docker` CLI and `docker compose`; stopped by its pid.
- `HealthTicker` runs the containers' health checks when they are due. Podman schedules
  them with systemd timers; without systemd (these machines) nothing runs them, and a
  `depends_on: condition: service_healthy` would wait forever. It records every status a
  container's health goes through.
- `Compose` runs `docker compose` on the repository's docker-compose.yml under its own
  project name, against the service.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
SETUP = "scripts/containers-setup.sh"


class EngineError(AssertionError):
    pass


def _run(
    command: Sequence[str],
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(command), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise EngineError(
            f"`{' '.join(command)}` exited {done.returncode}:\n{done.stdout[-3000:]}"
            f"{done.stderr[-3000:]}"
        )
    return done


class Podman:
    def __init__(self) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
        # Podman also reads DOCKER_CONFIG (for registry logins) and fails when it names a
        # directory without a config.json: that setting is for the docker CLI only.
        self.env.pop("DOCKER_CONFIG", None)

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return _run(["podman", *args], self.env, timeout, check).stdout

    def inspect(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.run("inspect", "--type", "container", name))
        return found[0]

    def image_exists(self, image: str) -> bool:
        return _run(["podman", "image", "exists", image], self.env, check=False).returncode == 0


STANDIN_PYTHON = "localhost/slaclock-python-standin:3.11-bookworm"  # the setup script's
REAL_PYTHON = "docker.io/library/python:3.11-slim-bookworm"  # the Dockerfile's default


def python_base(podman: Podman) -> str | None:
    """The Dockerfile's PYTHON_IMAGE here: SLACLOCK_TEST_PYTHON_IMAGE, else the real
    python:3.11-slim-bookworm if it is here, else the stand-in; None if neither is."""
    chosen = os.environ.get("SLACLOCK_TEST_PYTHON_IMAGE")
    if chosen:
        return chosen
    return next((i for i in (REAL_PYTHON, STANDIN_PYTHON) if podman.image_exists(i)), None)


COMPOSE_IMAGE = "slaclock:local"  # what docker-compose.yml runs
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "default": (COMPOSE_IMAGE, {}),
    "reports": ("slaclock:local-reports", {"EXTRAS": "reports"}),
    "compiled": ("slaclock:local-compiled", {"MYPYC": "1"}),
}
"""Image variants built and measured: name -> (tag, build arguments)."""
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def build_image(podman: Podman, tag: str, python_image: str, args: dict[str, str]) -> float:
    """Build the repository's Dockerfile as `tag`; returns the seconds it took.

    `--format docker`: Podman's default OCI format cannot carry HEALTHCHECK and drops it
    with a warning. The host's CA bundle is mounted for pip (PyPI over TLS), `--network
    host` as the image registry-less machines need it.
    """
    command = ["build", "--format", "docker", "--network", "host", "--quiet", "-t", tag]
    if CA_BUNDLE.is_file():
        command += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    command += ["--build-arg", f"PYTHON_IMAGE={python_image}"]
    for key, value in args.items():
        command += ["--build-arg", f"{key}={value}"]
    started = time.monotonic()
    podman.run(*command, str(ROOT), timeout=900)
    return time.monotonic() - started


def image_size(podman: Podman, image: str) -> int:
    return int(podman.run("image", "inspect", "--format", "{{.Size}}", image))


def image_layers(podman: Podman, image: str) -> list[dict[str, Any]]:
    """Newest first: each layer's size in bytes and the instruction that made it."""
    history = json.loads(podman.run("history", "--format", "json", image))
    return [
        {"size": int(h.get("size", 0)), "created_by": str(h.get("CreatedBy", ""))[:200]}
        for h in history
    ]


def engine_problem() -> str | None:
    """None if Podman, the docker CLI and its compose plugin answer; else why not, in a line."""
    if shutil.which("podman") is None:
        return f"no container engine: podman is not installed (`bash {SETUP}` installs it)"
    try:
        Podman().run("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=30)
    except (EngineError, subprocess.TimeoutExpired) as error:
        first = str(error).strip().splitlines()[-1:] or ["?"]
        return f"no container engine: `podman info` fails: {first[0]}"
    if shutil.which("docker") is None:
        return f"no docker CLI to run docker-compose.yml (`bash {SETUP}` installs it)"
    if _run(["docker", "compose", "version"], check=False).returncode != 0:
        return f"no Docker Compose plugin (`docker compose`; `bash {SETUP}` builds it)"
    return None


class PodmanService:
    """`podman system service` on a private unix socket: the Docker API for docker/compose."""

    def __init__(self, directory: Path, podman: Podman) -> None:
        self.socket = directory / "podman.sock"
        self.log = directory / "podman-service.log"
        self.podman = podman
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def docker_env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.docker_host, **extra}

    def start(self, timeout: float = 30) -> PodmanService:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.docker_host],
                env=self.podman.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            done = _run(
                ["docker", "version", "--format", "{{.Server.Version}}"],
                self.docker_env(),
                check=False,
                timeout=10,
            )
            if done.returncode == 0:
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise EngineError(f"podman system service did not answer: {self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def needs_health_ticker() -> bool:
    """Podman runs health checks from systemd timers: without systemd, nobody does."""
    return not Path("/run/systemd/system").is_dir()


@dataclass
class _Checked:
    started_at: str
    interval: float
    next_due: float


@dataclass
class HealthTicker:
    """Runs `podman healthcheck run` for the running containers of a compose project when
    each one's interval has passed (first after one interval, as Docker does), and records
    each container's health statuses as they change."""

    podman: Podman
    project: str
    enabled: bool = True
    history: dict[str, list[str]] = field(default_factory=dict)
    _state: dict[str, _Checked] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> HealthTicker:
        self._thread = threading.Thread(target=self._run, name="health-ticker", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def statuses(self, name: str) -> list[str]:
        with self._lock:
            return list(self.history.get(name, []))

    def check_now(self, name: str) -> str:
        """Run one check at once (as a due timer would) and return the status after it."""
        self.podman.run("healthcheck", "run", name, check=False, timeout=60)
        return self._observe(name)

    def _observe(self, name: str) -> str:
        status = self.podman.run(
            "inspect",
            "--type",
            "container",
            "--format",
            "{{.State.Health.Status}}",
            name,
            check=False,
        ).strip()
        with self._lock:
            seen = self.history.setdefault(name, [])
            if status and (not seen or seen[-1] != status):
                seen.append(status)
        return status

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._tick()
            except Exception:  # a container that vanished between two commands
                continue

    def _tick(self) -> None:
        names = self.podman.run(
            "ps",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            "{{.Names}}",
            check=False,
        ).split()
        now = time.monotonic()
        for name in names:
            info = self.podman.inspect(name)
            config = info["Config"].get("Healthcheck") or {}
            if not config.get("Test") or config["Test"] == ["NONE"]:
                continue
            started = info["State"]["StartedAt"]
            interval = (config.get("Interval") or 30_000_000_000) / 1e9
            state = self._state.get(name)
            if state is None or state.started_at != started:
                state = self._state[name] = _Checked(started, interval, now + interval)
                self._observe(name)
            if self.enabled and now >= state.next_due:
                self.podman.run("healthcheck", "run", name, check=False, timeout=120)
                state.next_due = time.monotonic() + state.interval
                self._observe(name)


@dataclass
class Compose:
    """`docker compose -p PROJECT` on the repository's docker-compose.yml."""

    project: str
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        command = ["docker", "compose", "-p", self.project, "-f", "docker-compose.yml", *args]
        return _run(command, self.env, timeout, check).stdout

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return _run(["docker", *args], self.env, timeout, check).stdout

    def containers(self, service: str | None = None, all_states: bool = True) -> list[str]:
        args = ["ps", "--format", "{{.Names}}"] + (["-a"] if all_states else [])
        names = self.docker(*args, "--filter", f"label=com.docker.compose.project={self.project}")
        found = sorted(names.split())
        if service is not None:
            found = [n for n in found if n.startswith(f"{self.project}-{service}-")]
        return found

    def inspect(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.docker("inspect", name))
        return found[0]

    def exec(
        self, name: str, *command: str, user: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        as_user = ["--user", user] if user is not None else []
        return _run(["docker", "exec", *as_user, name, *command], self.env, 60, check)

    def published(self, name: str, port: int) -> str:
        """host:port where a container's port is published."""
        return self.docker("port", name, f"{port}/tcp").split()[0]

    def logs(self, name: str) -> str:
        done = _run(["docker", "logs", name], self.env, 60, check=False)
        return done.stdout + done.stderr


def wait_for(what: str, probe: Any, timeout: float, every: float = 1.0) -> Any:
    """Poll `probe()` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def listening_ports(proc_net: Iterator[str]) -> set[int]:
    """Ports in LISTEN state (0A) in /proc/net/tcp or tcp6 lines."""
    ports = set()
    for line in proc_net:
        parts = line.split()
        if len(parts) > 3 and parts[3] == "0A" and ":" in parts[1]:
            ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports
