"""Prometheus metrics of a worker (one registry per worker, so tests can run several)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Every `reason` of a dead-lettered record (the error classes of `Rejected`) and of an
# untracked ticket: their series exist at 0 from the start, so an alert on their rate sees
# the first one (tests/unit/test_metrics_initialised.py checks the list against the code).
REJECTION_REASONS = (
    "InvalidJson",
    "NaiveTimestamp",
    "SchemaViolation",
    "KeyMismatch",
    "FutureEvent",
    "UnknownTicket",
    "DuplicateTicket",
    "UnknownTier",
    "UnknownService",
    "ContractTimezoneChange",
    "InvalidPolicy",
    "IncompatiblePolicy",
    "DuplicateVersion",
)
UNTRACKED_REASONS = ("no_contract", "no_target")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "slaclock_events_total", "Ticket events applied", ["type"], registry=r
        )
        self.rejected_total = Counter(
            "slaclock_rejected_total",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "slaclock_duplicates_total", "Repeated event ids dropped", registry=r
        )
        self.outputs = Counter("slaclock_outputs_total", "Outputs emitted", ["type"], registry=r)
        self.untracked_tickets = Counter(
            "slaclock_untracked_tickets_total",
            "Tickets created with no SLA target for any metric (no_contract: default tier "
            "for a customer without a contract; no_target: the priority has none in its tier)",
            ["reason"],
            registry=r,
        )
        self.late_events = Counter(
            "slaclock_late_events_total",
            "Events older than their partition's SLA clock, applied as of the clock",
            registry=r,
        )
        self.statements = Counter(
            "slaclock_statements_total", "Monthly statements emitted", registry=r
        )
        self.credits_amount = Counter(
            "slaclock_credits_amount_total",
            "Service credits allocated (sum of amounts, capped ones at their cut amount)",
            ["currency"],
            registry=r,
        )
        self.open_tickets = Gauge(
            "slaclock_open_tickets", "Tickets held in state", ["partition"], registry=r
        )
        self.pending_timers = Gauge(
            "slaclock_pending_timers", "Tickets with a scheduled timer", ["partition"], registry=r
        )
        self.clock_lag = Gauge(
            "slaclock_clock_lag_seconds",
            "Wall time minus the partition's SLA clock",
            ["partition"],
            registry=r,
        )
        self.broker_up = Gauge(
            "slaclock_broker_up",
            "1 while the worker reaches the Kafka broker, 0 during an outage (it retries)",
            registry=r,
        )
        self.abandoned_calls = Counter(
            "slaclock_transactional_calls_abandoned",
            "Transactional calls still running long after their timeout; their producer was "
            "replaced (a librdkafka hang after a broker restart)",
            ["loop"],
            registry=r,
        )
        # policy versions (docs/semantics.md: Policy changes), per stage-1 partition
        self.policy_versions_applied = Gauge(
            "slaclock_policy_versions_applied",
            "Policy versions the partition has applied to its open tickets",
            ["partition"],
            registry=r,
        )
        self.policy_recomputed_tickets = Gauge(
            "slaclock_policy_recomputed_tickets",
            "Open tickets recomputed at the partition's last policy version",
            ["partition"],
            registry=r,
        )
        self.policy_breaches_at_change = Gauge(
            "slaclock_policy_breaches_at_change",
            "Breaches decided at the partition's last policy version's instant P",
            ["partition"],
            registry=r,
        )
        self.breach_delay_seconds = Histogram(
            "slaclock_breach_emission_delay_seconds",
            "Wall time of emission minus the breach instant",
            buckets=(0.1, 0.25, 0.5, 1, 2, 2.5, 3, 5, 10, 30, 60, 300, float("inf")),
            registry=r,
        )

        for reason in REJECTION_REASONS:
            self.rejected_total.labels(reason)
        for reason in UNTRACKED_REASONS:
            self.untracked_tickets.labels(reason)

        # labelled children cached: `labels()` costs microseconds on the per-event path
        self._events: dict[str, Counter] = {}
        self._outputs: dict[str, Counter] = {}

    def event(self, kind: str, count: int = 1) -> None:
        child = self._events.get(kind)
        if child is None:
            child = self._events[kind] = self.events.labels(kind)
        child.inc(count)

    def rejected(self, reason: str) -> None:
        self.rejected_total.labels(reason).inc()

    def duplicate(self) -> None:
        self.duplicates.inc()

    def untracked(self, reason: str) -> None:
        self.untracked_tickets.labels(reason).inc()

    def late_event(self) -> None:
        self.late_events.inc()

    def output(self, kind: str, count: int = 1) -> None:
        child = self._outputs.get(kind)
        if child is None:
            child = self._outputs[kind] = self.outputs.labels(kind)
        child.inc(count)

    def breach_delay(self, seconds: float) -> None:
        self.breach_delay_seconds.observe(seconds)

    def set_open_tickets(self, partition: int, count: int) -> None:
        self.open_tickets.labels(str(partition)).set(count)

    def set_pending_timers(self, partition: int, count: int) -> None:
        self.pending_timers.labels(str(partition)).set(count)

    def clock(self, partition: int, clock_us: int | None, wall_s: float) -> None:
        if clock_us is not None:
            self.clock_lag.labels(str(partition)).set(wall_s - clock_us / 1e6)

    def policy_versions(self, partition: int, applied: int, recomputed: int, breaches: int) -> None:
        self.policy_versions_applied.labels(str(partition)).set(applied)
        self.policy_recomputed_tickets.labels(str(partition)).set(recomputed)
        self.policy_breaches_at_change.labels(str(partition)).set(breaches)

    def forget_partition(self, partition: int) -> None:
        for gauge in (
            self.open_tickets,
            self.pending_timers,
            self.clock_lag,
            self.policy_versions_applied,
            self.policy_recomputed_tickets,
            self.policy_breaches_at_change,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(str(partition))
