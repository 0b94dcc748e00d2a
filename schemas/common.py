"""Vocabulary shared by every schema and by the engine: priorities, statuses, metrics."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


class Metric(StrEnum):
    """SLA metrics, declared in their canonical order (used to order credits, docs/semantics.md: Credits)."""

    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    PERIODIC_UPDATE = "periodic_update"
    RESOLUTION = "resolution"


METRIC_ORDER: dict[str, int] = {m.value: i for i, m in enumerate(Metric)}


class GroupMetric(StrEnum):
    """Operational-level metrics of an internal group (docs/semantics.md: Groups)."""

    GROUP_RESPONSE = "group_response"
    GROUP_RESOLUTION = "group_resolution"
