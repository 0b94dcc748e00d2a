"""slaclock.local_kafka without a broker: generated config, cache layout, error messages.

Maven is replaced by a small script where resolution is exercised; nothing here starts Java.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from slaclock.local_kafka import (
    BrokerConfig,
    KafkaJars,
    LocalKafka,
    LocalKafkaError,
    default_home,
    docker_available,
    find_java,
    free_port,
    kafka_version,
    new_cluster_id,
    read_server_properties,
    render_log4j2_properties,
    render_server_properties,
)

POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <properties><kafka.version>{version}</kafka.version></properties>
</project>
"""

# Stands in for `mvn`: counts its runs, then "copies" one jar or fails as told.
FAKE_MVN = """#!/bin/sh
echo run >> "$FAKE_MVN_RUNS"
if [ -n "$FAKE_MVN_FAIL" ]; then echo "$FAKE_MVN_FAIL"; exit 1; fi
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac
done
mkdir -p "$out" && touch "$out/kafka_2.13-9.9.9.jar" "$out/kafka-clients-9.9.9.jar"
"""


def write_pom(path: Path, version: str = "9.9.9") -> Path:
    path.write_text(POM.format(version=version))
    return path


def properties(config: BrokerConfig, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "server.properties"
    path.write_text(render_server_properties(config))
    return read_server_properties(path)


@pytest.fixture
def fake_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Makes `KafkaJars.ensure()` run FAKE_MVN; returns the file that counts its runs."""
    script = tmp_path / "fake-mvn"
    script.write_text(FAKE_MVN)
    script.chmod(0o755)
    runs = tmp_path / "mvn-runs"
    monkeypatch.setenv("SLACLOCK_MVN", str(script))
    monkeypatch.setenv("FAKE_MVN_RUNS", str(runs))
    monkeypatch.delenv("FAKE_MVN_FAIL", raising=False)
    return runs


def mvn_runs(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


# ---- cluster id


def test_cluster_ids_are_16_random_bytes_in_22_base64url_characters() -> None:
    ids = [new_cluster_id() for _ in range(500)]

    assert len(set(ids)) == len(ids)
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_cluster_ids_never_start_with_a_dash_the_storage_tool_would_read_as_an_option() -> None:
    assert not any(new_cluster_id().startswith("-") for _ in range(2000))


# ---- server.properties


def test_server_properties_describe_one_kraft_node_on_loopback_ports(tmp_path: Path) -> None:
    config = BrokerConfig(data_dir=tmp_path / "data", port=19092, controller_port=19093)

    props = properties(config, tmp_path)

    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert config.bootstrap == "127.0.0.1:19092"


def test_server_properties_let_transactions_and_groups_work_on_a_single_node(
    tmp_path: Path,
) -> None:
    props = properties(BrokerConfig(tmp_path, port=1, controller_port=2), tmp_path)

    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_server_property_overrides_replace_defaults_once(tmp_path: Path) -> None:
    config = BrokerConfig(
        tmp_path,
        port=1,
        controller_port=2,
        overrides={"num.partitions": "6", "auto.create.topics.enable": "false"},
    )

    text = render_server_properties(config)
    props = properties(config, tmp_path)

    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "false"
    assert len(re.findall(r"^num\.partitions=", text, re.MULTILINE)) == 1


def test_log4j2_config_sends_warnings_and_worse_to_stdout() -> None:
    lines = set(render_log4j2_properties().splitlines())

    assert "rootLogger.level = WARN" in lines
    assert "appender.out.type = Console" in lines


# ---- cache layout and ports


def test_kafka_version_is_read_from_the_pom(tmp_path: Path) -> None:
    assert kafka_version(write_pom(tmp_path / "pom.xml", "9.9.9")) == "9.9.9"


def test_missing_pom_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(LocalKafkaError, match="pom not found"):
        kafka_version(tmp_path / "nope.xml")


def test_cache_dir_is_per_kafka_version_under_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACLOCK_KAFKA_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert default_home("9.9.9") == tmp_path / "slaclock" / "kafka-9.9.9"


def test_cache_dir_env_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACLOCK_KAFKA_HOME", str(tmp_path / "kafka"))

    assert default_home("9.9.9") == tmp_path / "kafka"


def test_cli_broker_takes_its_port_from_the_env_and_the_next_one_for_the_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACLOCK_KAFKA_HOME", str(tmp_path))
    monkeypatch.setenv("SLACLOCK_KAFKA_PORT", "19092")

    broker = LocalKafka.for_cli()

    assert broker.bootstrap == "127.0.0.1:19092"
    assert broker.config.controller_port == 19093
    assert broker.state_dir == tmp_path / "instance"
    assert broker.jars.libs == tmp_path / "libs"


def test_cli_port_option_beats_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACLOCK_KAFKA_HOME", str(tmp_path))
    monkeypatch.setenv("SLACLOCK_KAFKA_PORT", "19092")

    assert LocalKafka.for_cli(port=29092).bootstrap == "127.0.0.1:29092"


def test_brokers_on_free_ports_get_two_distinct_ports(tmp_path: Path) -> None:
    jars = KafkaJars(tmp_path / "home", write_pom(tmp_path / "pom.xml"))

    broker = LocalKafka.on_free_ports(tmp_path / "state", jars=jars)

    assert broker.config.port != broker.config.controller_port


# ---- jar resolution


def test_jars_are_resolved_once_and_again_only_when_the_pom_changes(
    tmp_path: Path, fake_mvn: Path
) -> None:
    pom = write_pom(tmp_path / "pom.xml", "9.9.9")
    jars = KafkaJars(tmp_path / "home", pom)
    assert not jars.is_complete()

    libs = jars.ensure()
    jars.ensure()
    assert mvn_runs(fake_mvn) == 1
    assert jars.is_complete()
    assert (libs / "kafka_2.13-9.9.9.jar").is_file()

    write_pom(pom, "9.9.10")
    assert not jars.is_complete()
    jars.ensure()
    assert mvn_runs(fake_mvn) == 2


def test_maven_failure_is_reported_with_maven_output(
    tmp_path: Path, fake_mvn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MVN_FAIL", "Could not resolve dependencies for project")
    jars = KafkaJars(tmp_path / "home", write_pom(tmp_path / "pom.xml"))

    with pytest.raises(LocalKafkaError, match="Could not resolve dependencies"):
        jars.ensure()
    assert not jars.is_complete()


def test_missing_maven_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACLOCK_MVN", str(tmp_path / "no-such-mvn"))
    jars = KafkaJars(tmp_path / "home", write_pom(tmp_path / "pom.xml"))

    with pytest.raises(LocalKafkaError, match="Maven"):
        jars.ensure()


def test_missing_java_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(LocalKafkaError, match="Java not found"):
        find_java()


# ---- process bookkeeping (no broker is started)


def test_a_broker_never_started_is_reported_stopped(tmp_path: Path) -> None:
    jars = KafkaJars(tmp_path / "home", write_pom(tmp_path / "pom.xml"))
    broker = LocalKafka(tmp_path / "state", port=free_port(), jars=jars)

    status = broker.status()

    assert not status.running
    assert status.pid is None
    assert not broker.down()


def test_down_never_signals_a_pid_file_that_names_another_process(tmp_path: Path) -> None:
    jars = KafkaJars(tmp_path / "home", write_pom(tmp_path / "pom.xml"))
    broker = LocalKafka(tmp_path / "state", port=free_port(), jars=jars)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        broker.state_dir.mkdir()
        broker.pid_file.write_text(f"{other.pid}\n")

        assert not broker.status().running
        assert not broker.down()
        assert other.poll() is None
        assert not broker.pid_file.exists()
    finally:
        other.kill()
        other.wait()


def test_docker_is_unavailable_when_no_daemon_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")

    assert docker_available(timeout=2) is False
