"""Deploy and operate, without a broker: the Dockerfile, the compose file, the worker's
HTTP server over a stand-in worker, and the Java-compatible partitioner behind the routing
of `/tickets/{id}`.

Linting: `hadolint` is not packaged for Debian nor on PyPI here, and no `docker compose`
is installed, so the Dockerfile is checked by its key properties and the compose file
against the Compose Specification's JSON Schema (`compose-spec.json` beside this file,
as vendored by the check-jsonschema package from compose-spec/compose-spec, Apache-2.0,
see `compose-spec.LICENSE`) plus its key properties.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from processors.engine.instants import parse_instant
from processors.live.http import StatusServer, murmur2, partition_for
from processors.live.metrics import Metrics
from slaclock.settings import load_settings
from tests.core.builders import Harness, created, make_policy

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# -- the partitioner ------------------------------------------------------------------------

# Java's `Utils.murmur2` (apache/kafka UtilsTest) and librdkafka's rdmurmur2 unit test.
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
    "1": -1993445489,
    "12": 126087238,
    "123": -267702483,
    "1234": -1614185708,
    "12345": -1188365604,
    "kafka": 0xD067CF64 - (1 << 32),
}


@pytest.mark.parametrize(("key", "expected"), sorted(JAVA_MURMUR2.items()))
def test_murmur2_matches_the_java_client(key: str, expected: int) -> None:
    assert murmur2(key.encode()) == expected


def test_partition_is_the_positive_hash_modulo_the_partition_count() -> None:
    # toPositive(-973932308) = -973932308 & 0x7fffffff = 1173551340
    assert partition_for("21", 2**31) == 1173551340
    assert partition_for("21", 7) == 1173551340 % 7
    assert {partition_for(f"T-{i}", 6) for i in range(200)} == set(range(6))


# -- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_image_is_a_slim_python_311_base() -> None:
    args = dict(
        rest.split("=", 1) for k, rest in dockerfile_instructions() if k == "ARG" and "=" in rest
    )
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert final_stage()[0] == ("FROM", "${PYTHON_IMAGE}")


def test_image_runs_as_a_non_root_user() -> None:
    users = [rest for k, rest in final_stage() if k == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_image_runs_the_worker_and_checks_its_health_without_curl() -> None:
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["slaclock"]
    assert json.loads(stage["CMD"]) == ["worker"]
    healthcheck = stage["HEALTHCHECK"]
    assert "/health" in healthcheck and "urllib.request" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert "6066" in stage["EXPOSE"]
    assert json.loads(stage["VOLUME"]) == ["/var/lib/slaclock"]
    env = stage["ENV"]
    assert "SLACLOCK_STORE=rocksdb" in env and "SLACLOCK_STATE_DIR=/var/lib/slaclock" in env


def test_image_installs_runtime_dependencies_only() -> None:
    runs = " ".join(rest for k, rest in dockerfile_instructions() if k == "RUN")
    installs = re.findall(r"pip install ([^&]*)", runs)
    assert installs, "the package must be pip-installed"
    for args in installs:
        extras = re.findall(r"\[([^\]]*)\]", args)
        assert all(e == "rocksdb" for e in extras), f"only the rocksdb extra in the image: {args}"
        assert "requirements-dev" not in args and "pytest" not in args
    copied = [rest for k, rest in final_stage() if k == "COPY"]
    assert all("tests" not in c and "benchmarks" not in c for c in copied)


def test_every_copied_path_exists_and_passes_the_dockerignore_allowlist() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in allowed), source


# -- the compose file -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((HERE / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    broken = {**compose, "services": {**compose["services"], "worker": {"imagee": "x"}}}
    assert list(validator.iter_errors(broken)), "the schema must catch a misspelt key"


def test_compose_dollar_signs_are_escapes_or_variables() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    bare = re.findall(r"(?<!\$)\$(?![\${])", text.replace("$$", ""))
    assert bare == [], "shell variables must be written $$name in a compose file"


def test_kafka_is_the_official_image_in_kraft_mode_with_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", kafka["image"])
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    assert kafka["environment"]["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1


def test_topics_are_created_once_the_broker_is_healthy(compose: dict[str, Any]) -> None:
    topics = compose["services"]["topics"]
    assert topics["command"] == ["topics", "create"]
    assert topics["restart"] == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_worker_scales_without_name_port_or_instance_clashes(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "hostname" not in worker
    assert all(isinstance(p, dict) and "published" not in p for p in worker["ports"])
    assert "SLACLOCK_INSTANCE_ID" not in worker["environment"]  # the host name, per replica
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" not in worker, "the image's HEALTHCHECK applies"


def test_worker_mounts_the_policy_read_only_and_gets_its_own_state_volume(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    policy = [
        v for v in worker["volumes"] if v["target"] == worker["environment"]["SLACLOCK_POLICY_PATH"]
    ]
    assert len(policy) == 1 and policy[0]["type"] == "bind" and policy[0]["read_only"] is True
    state = [v for v in worker["volumes"] if v["target"] == "/var/lib/slaclock"]
    assert state == [{"type": "volume", "target": "/var/lib/slaclock"}]  # anonymous: per replica


def test_demo_publisher_and_kafka_ui_are_optional_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["publisher"]["profiles"] == ["demo"]
    assert "slaclock publish -" in services["publisher"]["command"][0]
    assert services["kafka-ui"]["profiles"] == ["ui"]
    assert all("profiles" not in services[s] for s in ("kafka", "topics", "worker"))


# -- the HTTP server over a stand-in worker ---------------------------------------------------

POLICY = make_policy()


class FakeDirectory:
    def __init__(self, partitions: int, owners: dict[int, str]) -> None:
        self.count = partitions
        self.owners = owners

    def partitions(self) -> int:
        return self.count

    def owner_of(self, partition: int) -> str | None:
        return self.owners.get(partition)


def fake_loop(tasks: dict[int, Any] | None = None) -> SimpleNamespace:
    loop = SimpleNamespace(
        tasks=tasks or {},
        assigned=set(),
        assigned_lock=threading.Lock(),
        ready=threading.Event(),
    )
    loop.owned_partitions = lambda: sorted(loop.assigned)
    return loop


@pytest.fixture
def worker() -> Iterator[SimpleNamespace]:
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, name=n) for n in ("tickets", "ledger", "ticker")]
    for thread in threads:
        thread.start()
    yield SimpleNamespace(
        settings=load_settings(http_host="127.0.0.1", http_port=0),
        metrics=Metrics(),
        policy=POLICY,
        tickets=fake_loop(),
        ledger=fake_loop(),
        stop=stop,
        failure=None,
        threads=threads,
    )
    stop.set()


def serve(worker: SimpleNamespace, directory: FakeDirectory) -> StatusServer:
    server = StatusServer(worker, directory)  # type: ignore[arg-type]
    server.start()
    return server


def get(server: StatusServer, path: str) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(f"http://127.0.0.1:{server.port}{path}", timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def ticket_in(partition: int, partitions: int = 4, prefix: str = "T") -> str:
    return next(
        f"{prefix}{i}"
        for i in range(10_000)
        if partition_for(f"{prefix}{i}", partitions) == partition
    )


def test_health_is_ok_while_stage_threads_run_and_fails_once_one_stops(
    worker: SimpleNamespace,
) -> None:
    server = serve(worker, FakeDirectory(4, {}))
    try:
        status, _, body = get(server, "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        worker.stop.set()
        status, _, body = get(server, "/health")
        assert status == 503 and json.loads(body)["status"] == "failing"
    finally:
        server.stop()


def test_ready_only_once_both_stages_restored_an_assignment(worker: SimpleNamespace) -> None:
    server = serve(worker, FakeDirectory(4, {}))
    try:
        assert get(server, "/ready")[0] == 503
        worker.tickets.ready.set()
        worker.tickets.assigned.update({0, 1})
        assert get(server, "/ready")[0] == 503  # the ledger is still restoring
        worker.ledger.ready.set()
        worker.ledger.assigned.add(0)
        status, _, body = get(server, "/ready")
        assert status == 200
        assert json.loads(body)["stages"]["tickets"] == {"restored": True, "partitions": [0, 1]}
    finally:
        server.stop()


def test_metrics_are_prometheus_text_with_lag_per_owned_partition(
    worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = SimpleNamespace(store={}, stage=SimpleNamespace(clock=None), processed_offset=7)
    worker.tickets.tasks[2] = task
    worker.tickets.assigned.add(2)
    worker.metrics.event("ticket.created")
    server = serve(worker, FakeDirectory(4, {}))
    monkeypatch.setattr(server.lag, "_watermarks", lambda tp: (0, 10))
    try:
        status, headers, body = get(server, "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        assert samples[("slaclock_events_total", (("type", "ticket.created"),))] == 1
        assert samples[("slaclock_consumer_lag_records", (("partition", "2"),))] == 3
        assert samples[("slaclock_assigned_partitions", (("stage", "tickets"),))] == 1
    finally:
        server.stop()


def test_ticket_held_here_is_answered_as_of_its_partition_clock(worker: SimpleNamespace) -> None:
    harness = Harness().feed(created("2026-03-02T09:00:00Z", ticket="T/1"))
    clock = parse_instant("2026-03-02T09:20:00Z")
    worker.tickets.tasks[3] = SimpleNamespace(
        store=harness.replayer.store, stage=SimpleNamespace(clock=clock), processed_offset=1
    )
    server = serve(worker, FakeDirectory(4, {}))
    try:
        status, _, body = get(server, "/tickets/T%2F1")
        assert status == 200
        view = json.loads(body)
        assert view["ticket_id"] == "T/1" and view["partition"] == 3
        assert view["as_of"] == "2026-03-02T09:20:00Z"
        assert view["metrics"]["first_response"]["counted_seconds"] == 1200
    finally:
        server.stop()


def test_unknown_ticket_in_an_owned_partition_is_404(worker: SimpleNamespace) -> None:
    worker.tickets.assigned.add(1)
    server = serve(worker, FakeDirectory(4, {1: "http://elsewhere:6066"}))
    try:
        status, _, body = get(server, f"/tickets/{ticket_in(1)}")
        assert status == 404 and json.loads(body)["error"] == "unknown ticket"
    finally:
        server.stop()


def test_ticket_of_another_workers_partition_redirects_to_its_owner(
    worker: SimpleNamespace,
) -> None:
    worker.tickets.assigned.add(0)
    server = serve(worker, FakeDirectory(4, {2: "http://w2:6066"}))
    try:
        ticket = ticket_in(2)
        status, headers, _ = get(server, f"/tickets/{ticket}?verbose=1")
        assert status == 307
        assert headers["Location"] == f"http://w2:6066/tickets/{ticket}"
        status, headers, _ = get(server, f"/tickets/{ticket_in(3)}")
        assert status == 503 and headers["Retry-After"] == "1"  # nobody owns partition 3
    finally:
        server.stop()


def test_unknown_path_is_404(worker: SimpleNamespace) -> None:
    server = serve(worker, FakeDirectory(4, {}))
    try:
        assert get(server, "/nope")[0] == 404
        assert get(server, "/tickets/")[0] == 404
    finally:
        server.stop()
