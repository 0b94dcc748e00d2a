"""Raw `services.events` record -> validated service event, or a classified `Rejected`.

The same error classes as ticket events (`processors.intake`): InvalidJson,
SchemaViolation (a window whose `ends_at` is not after `starts_at` too), NaiveTimestamp.
Shared by replay and the Kafka worker so both classify bad input identically.
"""

from __future__ import annotations

from pydantic import ValidationError

from slaclock.processors.intake import classify_validation_error
from slaclock.schemas.services import ServiceEvent, parse_service_event

__all__ = ["decode_service_event"]


def decode_service_event(raw: bytes | str) -> ServiceEvent:
    """Raises `processors.engine.ticket.Rejected` for a record to dead-letter."""
    try:
        return parse_service_event(raw)
    except ValidationError as error:
        raise classify_validation_error(error) from None
