"""Deploy and operate, without a broker: the Dockerfile, the compose file, and the
Java-compatible partitioner behind the routing of `/tickets/{id}` (the HTTP server itself:
tests/unit/test_http_server.py).

Linting: `hadolint` is not packaged for Debian nor on PyPI here, and no `docker compose`
is installed, so the Dockerfile is checked by its key properties and the compose file
against the Compose Specification's JSON Schema (`compose-spec.json` beside this file,
as vendored by the check-jsonschema package from compose-spec/compose-spec, Apache-2.0,
see `compose-spec.LICENSE`) plus its key properties.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from processors.live.http import murmur2, partition_for

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
