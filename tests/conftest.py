"""Fixtures shared by every test tier: one Kafka broker per session, unique names per test.

The broker starts only when a test asks for `kafka_bootstrap` (directly or through `admin`
or `create_topics`), so the core and unit tiers never start anything. Fixtures of one
area belong in `tests/<area>/conftest.py`, not here.

Where the broker comes from, first match wins:
1. `KAFKA_BOOTSTRAP_SERVERS` (e.g. `KAFKA_BOOTSTRAP_SERVERS=$(slaclock kafka up) make test`):
   used as is, never started or stopped here;
2. a Docker engine that answers a ping: testcontainers' `KafkaContainer` (KRaft);
3. otherwise the Maven-jar broker of `slaclock.local_kafka` on free ports, its data in a
   session temp dir, its jars in the shared cache (resolved with Maven on first use).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from slaclock.build_info import core_compiled, describe
from slaclock.local_kafka import LocalKafka, docker_available

# Confluent Platform 7.9 is Apache Kafka 3.9; testcontainers' KafkaContainer only knows
# Confluent images.
KAFKA_IMAGE = os.environ.get("SLACLOCK_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0")


def pytest_report_header() -> str:
    """Which build of the core this run tests (`make test-compiled` runs the compiled one)."""
    return describe()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("SLACLOCK_EXPECT_COMPILED") == "1" and not core_compiled():
        raise pytest.UsageError(
            f"SLACLOCK_EXPECT_COMPILED=1 but the core imported is pure Python "
            f"({describe()}): install a wheel built with MYPYC=1 (make test-compiled)"
        )


CreateTopics = Callable[..., list[str]]
"""`create_topics(names, partitions=1, config=None, timeout=30.0) -> names`."""


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of the session's broker (see the module docstring)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
    elif docker_available():
        yield from _kafka_container()
    else:
        # die_with_parent: even a session killed outright (pytest-timeout's thread
        # method, SIGKILL) takes its broker with it.
        broker = LocalKafka.on_free_ports(tmp_path_factory.mktemp("kafka"), die_with_parent=True)
        try:
            yield broker.up(timeout=120)
        finally:
            broker.down()


def _kafka_container() -> Iterator[str]:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.kafka import KafkaContainer

    container = (
        KafkaContainer(KAFKA_IMAGE)
        .with_kraft()
        # Single broker: the transaction log cannot have the default 3 replicas.
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    )
    container.start(timeout=120)
    try:
        yield container.get_bootstrap_server()
    finally:
        container.stop()


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, e.g. `t1a2b3c4d.`; prepend it to every topic name."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def group_id() -> str:
    """A consumer group id no other test uses; derive more with a suffix."""
    return f"g{uuid.uuid4().hex[:8]}"


@pytest.fixture
def create_topics(admin: AdminClient) -> Iterator[CreateTopics]:
    """Create topics and wait until every partition has a leader; returns the names.

    The topics are deleted (best effort) when the test ends.
    """
    created: list[str] = []

    def create(
        names: Iterable[str] | str,
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> list[str]:
        wanted = [names] if isinstance(names, str) else list(names)
        new = [NewTopic(n, num_partitions=partitions, config=dict(config or {})) for n in wanted]
        for future in admin.create_topics(new, operation_timeout=timeout).values():
            future.result(timeout)
        created.extend(wanted)
        _wait_for_leaders(admin, wanted, partitions, timeout)
        return wanted

    yield create
    if created:
        for future in admin.delete_topics(created, operation_timeout=10).values():
            # Already gone, or the broker is going down: nothing left to clean.
            with contextlib.suppress(KafkaException):
                future.result(15)


def _wait_for_leaders(
    admin: AdminClient, names: list[str], partitions: int, timeout: float
) -> None:
    """Creation returns once the controller has the topic; a broker may not serve it yet."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout)
        pending = [
            name
            for name in names
            if (topic := metadata.topics.get(name)) is None
            or topic.error is not None
            or len(topic.partitions) != partitions
            or any(p.leader < 0 for p in topic.partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout} s: {pending}")
        time.sleep(0.1)
