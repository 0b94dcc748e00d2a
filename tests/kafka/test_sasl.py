"""Least privilege: a worker and a publisher with only the ACLs the README lists.

A broker of this module alone, with SASL/SCRAM-SHA-256 and the KRaft authorizer
(StandardAuthorizer, nothing allowed without an ACL); its users are created when its
storage is formatted. The ACLs are read from the README's "Kafka permissions" table, so
the table is what is tested.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from slaclock.client.publisher import TicketEventPublisher
from slaclock.local_kafka import LocalKafka, free_port
from slaclock.processors.settings import Settings
from tests.kafka.pipeline import ROOT
from tests.kafka.test_live_pipeline import workload
from tests.kafka.test_outage import CLI

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PASSWORDS = {
    "admin": "admin-Secret-7f3a",
    "worker": "worker-Secret-91bd",
    "publisher": "publisher-Secret-c2e8",
}
WRONG_PASSWORD = "not-the-Password-5d1e"
APP_ID = Settings.model_fields["app_id"].default

RESOURCES = {
    "Topic": ResourceType.TOPIC,
    "Group": ResourceType.GROUP,
    "TransactionalId": ResourceType.TRANSACTIONAL_ID,
}
PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
OPERATIONS = {"Read": AclOperation.READ, "Write": AclOperation.WRITE}


def readme_acls() -> list[AclBinding]:
    """The rows of the README's "Kafka permissions" table, as ACL bindings."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Kafka permissions", 1)[1].split("\n## ", 1)[0]
    bindings = []
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or cells[1] not in RESOURCES:
            continue
        principal, resource, name, pattern, operations = cells[:5]
        for operation in re.split(r",\s*", operations):
            bindings.append(
                AclBinding(
                    RESOURCES[resource],
                    name.replace("<app>", APP_ID),
                    PATTERNS[pattern],
                    f"User:{principal}",
                    "*",
                    OPERATIONS[operation],
                    AclPermissionType.ALLOW,
                )
            )
    assert len(bindings) >= 12, "the README's Kafka permissions table was not found"
    return bindings


def user_env(broker: LocalKafka, user: str, password: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "SLACLOCK_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SLACLOCK_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SLACLOCK_SASL_MECHANISM": "SCRAM-SHA-256",
        "SLACLOCK_SASL_USERNAME": user,
        "SLACLOCK_SASL_PASSWORD": password or PASSWORDS[user],
    }


def user_config(broker: LocalKafka, user: str) -> dict[str, str]:
    return {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": user,
        "sasl.password": PASSWORDS[user],
    }


def slaclock(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """The secured broker, its topics created by the admin, the README's ACLs in place."""
    port, controller = free_port(), free_port()
    while controller == port:
        controller = free_port()
    secured = LocalKafka(
        tmp_path_factory.mktemp("sasl-kafka"),
        port=port,
        controller_port=controller,
        scram_users=PASSWORDS,
        admin_user="admin",
        die_with_parent=True,
    )
    secured.up(timeout=120)
    try:
        created = slaclock(["topics", "create"], user_env(secured, "admin"))
        assert created.returncode == 0, created.stderr
        admin = AdminClient(user_config(secured, "admin"))
        for future in admin.create_acls(readme_acls()).values():
            future.result(30)
        wait_until_visible(secured, "publisher", "tickets.events")
        wait_until_visible(secured, "worker", "sla.statements")
        yield secured
    finally:
        secured.down()


def visible_topics(broker: LocalKafka, user: str) -> set[str]:
    consumer = Consumer({**user_config(broker, user), "group.id": f"{APP_ID}-visible"})
    try:
        return set(consumer.list_topics(timeout=10).topics)
    finally:
        consumer.close()


def wait_until_visible(broker: LocalKafka, user: str, topic: str) -> None:
    """ACLs reach the authorizer through the metadata log: a moment after they are made."""
    deadline = time.monotonic() + 60
    while topic not in visible_topics(broker, user):
        assert time.monotonic() < deadline, f"{user} never saw {topic}"
        time.sleep(0.5)


def read_committed(broker: LocalKafka, topic: str, until: float) -> list[dict[str, object]]:
    """Every committed record of `topic` (as admin) once some arrived, or [] by `until`."""
    consumer = Consumer(
        {
            **user_config(broker, "admin"),
            "group.id": f"test-reader-{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[dict[str, object]] = []
        quiet_since = time.monotonic()
        while time.monotonic() < until and (not found or time.monotonic() - quiet_since < 3):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(orjson.loads(message.value()))
                quiet_since = time.monotonic()
        return found
    finally:
        consumer.close()


def test_worker_and_publisher_work_with_only_the_readme_acls(
    broker: LocalKafka, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(workload(40, seed=3)) + b"\n")
    published = slaclock(["publish", str(events)], user_env(broker, "publisher"))
    assert published.returncode == 0, published.stderr
    assert re.search(r"published [1-9]\d* events", published.stderr), published.stderr

    env = {
        **user_env(broker, "worker"),
        "SLACLOCK_INSTANCE_ID": "w1",
        "SLACLOCK_STORE": "memory",
        "SLACLOCK_HTTP_PORT": "0",
        "SLACLOCK_TICK_INTERVAL": "0.5",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [*CLI, "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        until = time.monotonic() + 120
        breaches = read_committed(broker, "sla.breaches", until)
        completions = read_committed(broker, "sla.completions", until)
    finally:
        worker.terminate()
        status = worker.wait(60)
    log_text = log_path.read_text(errors="replace")
    assert breaches and completions, log_text[-3000:]
    assert status == 0, log_text[-3000:]
    assert not re.search(r"authoriz", log_text, re.IGNORECASE), log_text[-3000:]
    for password in PASSWORDS.values():
        assert password not in log_text
        assert password not in published.stdout + published.stderr


def test_publisher_can_write_ticket_events_and_nothing_else(broker: LocalKafka) -> None:
    event = {
        "event_id": "e1",
        "type": "ticket.created",
        "ticket_id": "T1",
        "occurred_at": "2026-03-02T09:00:00Z",
        "customer_id": "acme",
        "priority": "high",
    }
    config = user_config(broker, "publisher")
    for topic in ("sla.breaches", "sla.contracts", f"{APP_ID}-clock"):
        publisher = TicketEventPublisher({**config, "message.timeout.ms": 10_000}, topic=topic)
        publisher.publish(event)
        publisher.close(30)
        assert publisher.delivered == 0, topic
        assert publisher.errors and "authoriz" in publisher.errors[0].error.lower(), topic
    assert visible_topics(broker, "publisher") == {"tickets.events"}


def test_a_wrong_password_is_one_line_that_does_not_show_it(
    broker: LocalKafka, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(workload(4, seed=3)) + b"\n")
    env = user_env(broker, "publisher", WRONG_PASSWORD)
    for args in (["publish", str(events)], ["worker"]):
        done = slaclock(args, {**env, "SLACLOCK_HTTP_PORT": "0"})
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 1, (args, done.stderr)
        assert len(lines) == 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert "authentication" in lines[0].lower() and broker.bootstrap in lines[0], lines
        assert WRONG_PASSWORD not in done.stderr + done.stdout
        assert PASSWORDS["publisher"] not in done.stderr + done.stdout
