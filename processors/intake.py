"""A keyed input record -> validated event, or a `Rejected` that says clearly what is wrong.

Shared by replay and the Kafka worker so both classify bad input identically. Decoding the
value is `slaclock.schemas.rejection` (the publishing client uses it too); the key rule is
the worker's.
"""

from __future__ import annotations

from slaclock.schemas.fast_events import EngineEvent
from slaclock.schemas.rejection import Rejected, classify_validation_error, decode_event

__all__ = ["Rejected", "check_key", "classify_validation_error", "decode_event", "decode_record"]


def check_key(key: bytes | None, event: EngineEvent) -> None:
    """Raise `KeyMismatch` unless the record's key is the event's `ticket_id` (UTF-8).

    The key decides the partition, and a ticket's state lives in one partition: a record
    keyed otherwise would be applied where it landed, and the ticket's correctly keyed
    follow-ups would then find no ticket there.
    """
    expected = event.ticket_id.encode()
    if key == expected:
        return
    if key is None:
        found = "the record has no key"
    else:
        found = f"the record key is {key.decode('utf-8', 'replace')!r}"
    raise Rejected(
        "KeyMismatch",
        f"{found}, but its ticket_id is {event.ticket_id!r}: publish ticket events with "
        "key = ticket_id",
    )


def decode_record(value: bytes | str, key: bytes | None) -> EngineEvent:
    """A keyed input record (Kafka) -> validated event; `Rejected` as `decode_event`, or
    `KeyMismatch` when the key is missing or is not the ticket id."""
    event = decode_event(value)
    check_key(key, event)
    return event
