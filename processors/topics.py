"""The topics slaclock reads and writes (docs/operations.md: What runs), and `ensure_topics` to create them.

Two groups of topics must be *co-partitioned* (same partition count), because a worker
owns partition p of each topic in the group together:
- the input `tickets.events`, its clock topic and the ticket-state changelog (the state of
  the tickets of input partition p is restored from changelog partition p);
- the ledger input and the ledger changelog.

Changing the partition count of a co-partitioned topic after the fact would silently move
keys to other partitions, so `ensure_topics` never alters an existing topic: it refuses
to go on when an existing one does not have the partition count the settings ask for.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from slaclock.client.librdkafka_log import with_logging
from slaclock.processors.settings import Settings

__all__ = ["TopicError", "TopicSpec", "ensure_topics", "topic_specs", "worker_partition_counts"]

CLOCK_RETENTION_MS = 24 * 3600 * 1000
"""Ticks are only needed until the worker has applied them; one day is plenty."""

COMPACT: Mapping[str, str] = {"cleanup.policy": "compact"}

CONTRACT_HISTORY: Mapping[str, str] = {"min.compaction.lag.ms": str(90 * 24 * 3600 * 1000)}
"""A contract version stays in `sla.contracts` at least 90 days after it was published,
though a newer one replaced it: a worker that starts reads the versions still in force for
the instants it may decide (a change scheduled ahead, a late event under the older one)."""


class TopicError(Exception):
    """Topics cannot be created, or existing ones do not match the settings."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: its name, partition count and topic-level configuration.

    `copartition` names the group of topics that must have equal partition counts
    (None: the topic's count may differ from the settings without harm).
    """

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    copartition: str | None = None


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of docs/operations.md: What runs plus the internal ones, in a stable order."""
    n = settings.partitions
    events, ledger = "events", "ledger"
    return [
        TopicSpec(settings.topic_events, n, copartition=events),
        TopicSpec(
            settings.topic_clock,
            n,
            {"cleanup.policy": "delete", "retention.ms": str(CLOCK_RETENTION_MS)},
            copartition=events,
        ),
        TopicSpec(settings.topic_ticket_changelog, n, dict(COMPACT), copartition=events),
        TopicSpec(settings.topic_ledger_input, n, copartition=ledger),
        TopicSpec(settings.topic_ledger_changelog, n, dict(COMPACT), copartition=ledger),
        TopicSpec(settings.topic_contracts, n, {**COMPACT, **CONTRACT_HISTORY}),
        # one partition: at one P the later record wins, so versions need one order
        TopicSpec(settings.topic_policies, 1, dict(COMPACT)),
        TopicSpec(settings.topic_warnings, n),
        TopicSpec(settings.topic_breaches, n),
        TopicSpec(settings.topic_completions, n),
        TopicSpec(settings.topic_credits, n),
        TopicSpec(settings.topic_statements, n),
        TopicSpec(settings.topic_dlq, n),
        # service availability: input, its clock and state changelog (co-partitioned), output
        TopicSpec(settings.topic_services, n, copartition="services"),
        TopicSpec(
            settings.topic_services_clock,
            n,
            {"cleanup.policy": "delete", "retention.ms": str(CLOCK_RETENTION_MS)},
            copartition="services",
        ),
        TopicSpec(settings.topic_services_changelog, n, dict(COMPACT), copartition="services"),
        TopicSpec(settings.topic_availability, n),
    ]


def ensure_topics(
    settings: Settings, admin: AdminClient | None = None, timeout: float = 30.0
) -> list[str]:
    """Create the missing topics of `topic_specs(settings)`; returns the names created.

    Idempotent: existing topics are left as they are. Before anything is created, every
    existing co-partitioned topic is checked, and a `TopicError` names each one whose
    partition count differs from `settings.partitions`. A topic created concurrently by
    someone else counts as existing. Returns once every created topic has a leader for
    each partition, so producing to it right away works.
    """
    admin = admin or AdminClient(with_logging(settings.kafka_config()))
    specs = topic_specs(settings)
    existing = _partition_counts(admin, timeout)
    _check_copartitioned(specs, existing, settings)

    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return []
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=settings.replication_factor,
            config=spec.config,
        )
        for spec in missing
    ]
    created: list[str] = []
    problems: list[str] = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # lost a race with another creator: checked below like the rest
            problems.append(f"{name}: {error.str() if isinstance(error, KafkaError) else exc}")
    if problems:
        raise TopicError("cannot create topics:\n" + "\n".join(f"  {p}" for p in problems))

    _check_copartitioned(specs, _partition_counts(admin, timeout), settings)
    partitions = {spec.name: spec.partitions for spec in missing}
    _wait_for_leaders(admin, {name: partitions[name] for name in created}, timeout)
    return created


def worker_partition_counts(
    settings: Settings, admin: AdminClient | None = None, timeout: float = 15.0
) -> tuple[int, int]:
    """(input partitions, ledger partitions): what a worker needs before it starts.

    Every topic the worker reads or writes must exist (the broker does not create topics
    on first use: a topic created that way would have the broker's default partition
    count), and each co-partitioned group must agree on its partition count: the input,
    its clock and the ticket changelog; the ledger input and its changelog. Raises
    `TopicError` with a one-line message naming the topics and what to do.
    """
    admin = admin or AdminClient(with_logging(settings.kafka_config()))
    existing = _partition_counts(admin, timeout)
    events_group = [
        settings.topic_events,
        settings.topic_clock,
        settings.topic_ticket_changelog,
    ]
    ledger_group = [settings.topic_ledger_input, settings.topic_ledger_changelog]
    outputs = [
        settings.topic_warnings,
        settings.topic_breaches,
        settings.topic_completions,
        settings.topic_credits,
        settings.topic_statements,
        settings.topic_dlq,
        settings.topic_policies,
    ]
    missing = [name for name in [*events_group, *ledger_group, *outputs] if name not in existing]
    if missing:
        raise TopicError(
            f"topic{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'do' if len(missing) > 1 else 'does'} not exist at {settings.bootstrap_servers}: "
            "run `slaclock topics create` with the same SLACLOCK_* settings first"
        )
    for group, what in (
        (events_group, "the input topic, its clock topic and the ticket changelog"),
        (ledger_group, "the ledger input and the ledger changelog"),
    ):
        counts = {name: existing[name] for name in group}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{name} has {count}" for name, count in counts.items())
            raise TopicError(
                f"co-partitioned topics disagree ({listed} partitions): {what} must have "
                "the same partition count; recreate the odd one with that count, or start "
                "afresh with a new SLACLOCK_APP_ID"
            )
    return existing[settings.topic_events], existing[settings.topic_ledger_input]


def _partition_counts(admin: AdminClient, timeout: float) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot list topics: {exc.args[0]}") from None
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None or topic.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART
    }


def _check_copartitioned(
    specs: list[TopicSpec], existing: Mapping[str, int], settings: Settings
) -> None:
    wrong = [
        f"  {spec.name} has {existing[spec.name]} partitions, {spec.partitions} required"
        for spec in specs
        if spec.copartition is not None
        and spec.name in existing
        and existing[spec.name] != spec.partitions
    ]
    if wrong:
        raise TopicError(
            "co-partitioned topics must have SLACLOCK_PARTITIONS "
            f"({settings.partitions}) partitions:\n" + "\n".join(wrong) + "\n"
            "Set SLACLOCK_PARTITIONS to the existing input topic's partition count, or "
            "use a new SLACLOCK_APP_ID and topic names; existing topics are never altered."
        )


def _wait_for_leaders(admin: AdminClient, wanted: Mapping[str, int], timeout: float) -> None:
    """Creation returns once the controller knows a topic; its leaders may come later."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout)
        pending = [
            name
            for name, count in wanted.items()
            if (topic := metadata.topics.get(name)) is None
            or topic.error is not None
            or len(topic.partitions) != count
            or any(p.leader < 0 for p in topic.partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicError(f"topics without a leader after {timeout} s: {', '.join(pending)}")
        time.sleep(0.1)


def services_partition_count(
    settings: Settings, admin: AdminClient | None = None, timeout: float = 15.0
) -> int:
    """Partitions of `services.events`, once it, its clock topic, its changelog and
    `sla.availability` exist and the co-partitioned three agree (else `TopicError`)."""
    admin = admin or AdminClient(with_logging(settings.kafka_config()))
    existing = _partition_counts(admin, timeout)
    group = [
        settings.topic_services,
        settings.topic_services_clock,
        settings.topic_services_changelog,
    ]
    missing = [name for name in [*group, settings.topic_availability] if name not in existing]
    if missing:
        raise TopicError(
            f"the policy has services, but topic{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} {'do' if len(missing) > 1 else 'does'} not exist at "
            f"{settings.bootstrap_servers}: run `slaclock topics create` with the same "
            "SLACLOCK_* settings first"
        )
    counts = {name: existing[name] for name in group}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{name} has {count}" for name, count in counts.items())
        raise TopicError(
            f"co-partitioned topics disagree ({listed} partitions): the services input, its "
            "clock topic and its changelog must have the same partition count"
        )
    return existing[settings.topic_services]
