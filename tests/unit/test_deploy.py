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
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from slaclock.processors.live.http import murmur2, partition_for

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
    # the health file, not HTTP: it works with SLACLOCK_HTTP_PORT=0
    assert healthcheck.endswith('CMD ["slaclock", "worker", "--health"]')
    assert "http" not in healthcheck and "curl" not in healthcheck
    assert "6066" in stage["EXPOSE"]
    assert json.loads(stage["VOLUME"]) == ["/var/lib/slaclock"]
    env = stage["ENV"]
    assert "SLACLOCK_STORE=rocksdb" in env and "SLACLOCK_STATE_DIR=/var/lib/slaclock" in env


def test_image_installs_runtime_dependencies_only() -> None:
    runs = " ".join(rest for k, rest in dockerfile_instructions() if k == "RUN")
    installs = re.findall(r"pip install ([^&]*)", runs)
    assert installs, "the package must be pip-installed"
    for args in installs:
        assert "requirements-dev" not in args and "pytest" not in args and "dev" not in args
    # the package spec as the build's shell expands it: no extra by default, `reports` on demand
    (spec,) = re.findall(r'constraints\.txt ("[^"]*")', runs)
    arg = next(rest for k, rest in dockerfile_instructions() if k == "ARG" and "EXTRAS" in rest)
    assert arg == 'EXTRAS=""'
    for extras, expected in (("", "."), ("reports", ".[reports]")):
        expanded = subprocess.run(
            ["sh", "-c", f"printf %s {spec}"],
            env={"EXTRAS": extras},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert expanded == expected
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "matplotlib" not in requirement_names(project["dependencies"])
    assert "matplotlib" in requirement_names(project["optional-dependencies"]["reports"])
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


# -- reproducible builds and time zones ---------------------------------------------------------


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def requirement_names(requirements: list[str]) -> list[str]:
    return [
        re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0]).lower()
        for r in requirements
    ]


def test_constraints_pin_every_dependency_and_the_venv_and_image_use_them() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = pinned()
    wanted = requirement_names(project["dependencies"]) + [
        name
        for extra in ("dev", "reports")
        for name in requirement_names(project["optional-dependencies"][extra])
    ]
    unpinned = [name for name in wanted if not pins.get(name)]
    assert unpinned == [], f"run `make lock`: {unpinned} not in constraints.txt"
    assert "tzdata" in requirement_names(project["dependencies"])
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -c constraints.txt -e '.[dev,reports]'" in makefile
    runs = " ".join(rest for k, rest in dockerfile_instructions() if k == "RUN")
    assert 'pip install --no-compile -c constraints.txt ".${EXTRAS:+[$EXTRAS]}"' in runs


def test_the_image_takes_time_zones_from_the_pinned_tzdata_not_the_host() -> None:
    env = dict(final_stage()).get("ENV", "")
    assert 'PYTHONTZPATH=""' in env
    # what that setting does: no system zone files, zones from the tzdata package
    probe = (
        "import zoneinfo, importlib.resources as r; assert zoneinfo.TZPATH == (), zoneinfo.TZPATH; "
        "zoneinfo.ZoneInfo('Europe/Berlin'); "
        "assert r.files('tzdata.zoneinfo').joinpath('Europe/Berlin').is_file()"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONTZPATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# -- compose hardening ---------------------------------------------------------------------------


def test_every_container_drops_capabilities_and_privileges_and_has_a_memory_limit(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert re.fullmatch(r"\d+[mg]", str(service.get("mem_limit", ""))), name


def test_slaclock_containers_have_a_read_only_root_file_system(compose: dict[str, Any]) -> None:
    services = compose["services"]
    slaclock = [n for n, s in services.items() if s.get("image") == "slaclock:local"]
    assert {"topics", "worker", "publisher"} <= set(slaclock)
    for name in slaclock:
        assert services[name]["read_only"] is True and "/tmp" in services[name]["tmpfs"], name


def test_kafka_keeps_its_topics_in_a_named_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    data_dir = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{data_dir}" in kafka["volumes"]
    assert "kafka-data" in compose["volumes"]


def test_worker_secrets_come_from_files(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["secrets"] == ["http-token"] and "file" in compose["secrets"]["http-token"]
    assert worker["environment"]["SLACLOCK_HTTP_TOKEN_FILE"] == "/run/secrets/http-token"
    assert not any("PASSWORD" in k or k.endswith("TOKEN") for k in worker["environment"]), (
        "secrets are files, never environment values"
    )


def test_dot_env_and_compose_secrets_are_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and "/secrets/" in ignored


def test_make_test_fast_runs_the_core_and_unit_tiers() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile[makefile.index("\ntest-fast:") :].split("\n\n")[0]
    assert "tests/core tests/unit" in target and "tests/kafka" not in target


def test_the_wheel_installs_one_import_name_with_its_data_files(tmp_path: Path) -> None:
    """What the image installs: `slaclock` only (schemas and processors below it, real files
    rather than links), the report templates and JSON Schemas included, and every module
    importable from the wheel alone."""
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("slaclock-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    top = {name.split("/")[0] for name in names if not name.startswith("slaclock-")}
    assert top == {"slaclock"}
    assert "slaclock/schemas/json/output-event.schema.json" in names
    assert "slaclock/processors/report/templates/report.html.j2" in names
    assert "slaclock/client/publisher.py" in names
    probe = (
        "import importlib, pkgutil, sys, slaclock; "
        "assert slaclock.__file__.startswith(sys.argv[1]), slaclock.__file__; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(slaclock.__path__, 'slaclock.')]; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('processors', 'schemas')]"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "site")],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
