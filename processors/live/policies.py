"""Policy versions on Kafka: the compacted topic `sla.policies` (docs/semantics.md: Policy changes).

One partition, key = version id, value = a `PolicyPublication` (JSON); the record's
timestamp is the publish instant. Three users:

- `PoliciesFollower`: each processing loop (stage 1, the ledger, the services stage) reads
  the topic to its end on its own thread before each batch, exactly as contracts are read
  (`processors.live.contracts`), and adds each version to that loop's `PolicyBook`. A
  version takes effect at max(`effective_at`, the record's timestamp), so a record read
  late changes nothing decided for an earlier instant, and a restarted worker reading the
  same log builds the same book.
- `startup_policy`: a worker never runs rules that the log does not hold. The first worker
  to start on an empty topic records its policy file as the first version (`first: true`,
  in force from the beginning). Later, a worker starts only with a file that is the first
  version or another recorded one (same id, same document); else it refuses in one line
  naming `slaclock policy publish`. The engine always takes the first version from the log.
- `publish_version` / `read_policy_log`: what `slaclock policy publish` and
  `slaclock policy show` use.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from pydantic import ValidationError

from slaclock.client.librdkafka_log import with_logging
from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import to_us
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.live.contracts import ContractsFollower
from slaclock.processors.policy_versions import compile_version
from slaclock.processors.settings import Settings
from slaclock.schemas.policy import Policy
from slaclock.schemas.policy_versions import PolicyPublication
from slaclock.schemas.rejection import Rejected

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 10.0


class PolicyLogError(RuntimeError):
    """The worker's policy file is not in the log: one line saying what to do."""


@dataclass(frozen=True)
class Recorded:
    publication: PolicyPublication
    published_at: int  # microseconds: the record's timestamp


def publication_of(value: bytes) -> PolicyPublication:
    return PolicyPublication.model_validate_json(value)


class PoliciesFollower(ContractsFollower):
    """`sla.policies` into one loop's `PolicyBook` (see the module doc)."""

    def __init__(
        self, settings: Settings, contracts: ContractBook, versions: PolicyBook, name: str
    ) -> None:
        super().__init__(settings, contracts, name, settings.topic_policies, "policies")
        self.versions = versions

    def _apply(self, key: bytes | None, value: bytes | None, timestamp_ms: int) -> bool:
        if key is None or value is None:
            return False
        try:
            publication = publication_of(value)
        except ValidationError as error:
            self.refused += 1
            log.warning("policies: record %r refused: %s", key, error.errors(include_url=False))
            return False
        if publication.first or self.versions.find(publication.version) is not None:
            return False  # the first version is the book's own; a version is never edited
        published = timestamp_ms * 1000 if timestamp_ms > 0 else 0
        try:
            compiled = compile_version(publication, f"{self.topic}[{publication.version}]")
        except Rejected as rejected:
            self.refused += 1
            log.warning("policies: %s: %s", rejected.error_class, rejected.message)
            return False
        effective = None if publication.effective_at is None else to_us(publication.effective_at)
        version = self.versions.add(
            publication.version, compiled, published, effective, publication.applies_to
        )
        log.info(
            "policies[%s]: version %r takes effect at %d (%s)",
            self.name,
            version.version_id,
            version.effective,
            version.applies_to,
        )
        return True


def read_policy_log(settings: Settings, timeout: float = READ_TIMEOUT_S) -> list[Recorded]:
    """Every record of `sla.policies`, in log order (read_committed)."""
    consumer = Consumer(
        {
            **with_logging(settings.kafka_config()),
            "group.id": f"{settings.app_id}-policies-reader",  # never commits
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(settings.topic_policies, timeout=timeout)
        topic = metadata.topics.get(settings.topic_policies)
        if topic is None or topic.error is not None:
            raise PolicyLogError(
                f"topic {settings.topic_policies} does not exist at "
                f"{settings.bootstrap_servers}: run `slaclock topics create` first"
            )
        partitions = sorted(topic.partitions)
        pending: set[int] = set()
        deadline = time.monotonic() + timeout
        for partition in partitions:
            low, high = _watermarks(consumer, settings.topic_policies, partition, deadline)
            if high > low:
                pending.add(partition)
        consumer.assign(
            [TopicPartition(settings.topic_policies, p, OFFSET_BEGINNING) for p in partitions]
        )
        records: list[Recorded] = []
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition() or 0)
                continue
            value = message.value()
            if value is None:
                continue
            try:
                publication = publication_of(value)
            except ValidationError:
                continue
            records.append(Recorded(publication, message.timestamp()[1] * 1000))
        if pending:  # never run on part of the versions
            raise PolicyLogError(
                f"topic {settings.topic_policies} at {settings.bootstrap_servers} could not be "
                f"read to its end within {timeout:.0f} s; check the broker and retry"
            )
        return records
    finally:
        consumer.close()


# a topic created a moment ago has no leader yet: these pass within seconds
_NOT_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
}


def _watermarks(consumer: Consumer, topic: str, partition: int, deadline: float) -> tuple[int, int]:
    """A partition's (low, high) offsets, waiting out a partition that has no leader yet."""
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition),
                timeout=max(0.5, deadline - time.monotonic()),
                cached=False,
            )
            return int(low), int(high)
        except KafkaException as error:
            code = error.args[0].code() if error.args else None
            if code not in _NOT_YET or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def publish_version(
    settings: Settings, publication: PolicyPublication, timeout: float = 30.0
) -> None:
    """Write one version record and wait for the broker's acknowledgement."""
    producer = Producer({**with_logging(settings.kafka_config()), "enable.idempotence": True})
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    producer.produce(
        settings.topic_policies,
        key=publication.version.encode(),
        value=orjson.dumps(publication.model_dump(mode="json", exclude_none=True)),
        on_delivery=delivered,
    )
    left = producer.flush(timeout)
    if left or failures:
        raise PolicyLogError(
            f"policy version {publication.version!r} was not acknowledged by "
            f"{settings.bootstrap_servers}: {', '.join(failures) or 'timeout'}"
        )


def _same_rules(a: Policy, b: Policy) -> bool:
    """The same document, whatever its `customers:` (contracts have their own feed)."""
    exclude = {"customers"}
    return a.model_dump(exclude=exclude) == b.model_dump(exclude=exclude)


def policy_document(path: Path) -> dict[str, Any]:
    """A policy file as the document a version record carries (validate it first)."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    document: dict[str, Any] = orjson.loads(orjson.dumps(loaded))  # dates as text
    return document


def startup_policy(
    settings: Settings, file_policy: Policy, records: list[Recorded] | None = None
) -> Policy:
    """The first version the worker's engine runs from, once the file is checked against
    the log (see the module doc); raises `PolicyLogError` in one line."""
    if records is None:
        records = read_policy_log(settings)
    first = next((r for r in records if r.publication.first), None)
    path = settings.policy_path
    if first is None:
        if records:
            raise PolicyLogError(
                f"{settings.topic_policies} holds versions but no first version; "
                "it was not written by slaclock: check SLACLOCK_TOPIC_POLICIES"
            )
        publication = PolicyPublication(
            version=file_policy.version, policy=policy_document(path), first=True
        )
        publish_version(settings, publication)
        log.info("policies: %s recorded as the first version %r", path, file_policy.version)
        return file_policy
    recorded = {r.publication.version: r for r in records}
    mine = recorded.get(file_policy.version)
    hint = (
        f"publish it with `slaclock policy publish {path} --version <new id>` and start "
        "workers with a recorded version (`slaclock policy show` prints the one in force)"
    )
    if mine is None:
        raise PolicyLogError(
            f"policy file {path} is version {file_policy.version!r}, which "
            f"{settings.topic_policies} does not hold (recorded: {', '.join(recorded)}): {hint}"
        )
    compiled = compile_version(mine.publication, str(path))
    if compiled.raw is None or not _same_rules(compiled.raw, file_policy):
        raise PolicyLogError(
            f"policy file {path} differs from the recorded version {file_policy.version!r}; "
            f"versions are never edited: {hint}"
        )
    first_compiled = compile_version(first.publication, f"{settings.topic_policies}[first]")
    assert first_compiled.raw is not None
    return first_compiled.raw


def first_version_policy(settings: Settings, file_policy: Policy) -> CompiledPolicy:
    """The compiled first version (see `startup_policy`)."""
    from slaclock.processors.engine.policy import compile_policy

    return compile_policy(startup_policy(settings, file_policy))
