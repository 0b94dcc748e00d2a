"""Raw input record -> validated event, or a `Rejected` that says clearly what is wrong.

Shared by replay and the Kafka worker so both classify bad input identically (SPEC 8).
"""

from __future__ import annotations

from pydantic import ValidationError

from processors.engine.ticket import Rejected
from schemas.events import TicketEvent, parse_ticket_event


def decode_event(raw: bytes | str) -> TicketEvent:
    try:
        return parse_ticket_event(raw)
    except ValidationError as error:
        raise classify_validation_error(error) from None


def classify_validation_error(error: ValidationError) -> Rejected:
    problems = error.errors(include_url=False)
    if any(problem["type"] == "json_invalid" for problem in problems):
        detail = problems[0].get("ctx", {}).get("error", problems[0]["msg"])
        return Rejected("InvalidJson", f"not valid JSON: {detail}")
    parts = []
    naive = False
    for problem in problems:
        location = ".".join(str(part) for part in problem["loc"]) or "(record)"
        if problem["type"] in ("timezone_aware", "datetime_aware"):
            naive = True
        parts.append(f"{location}: {problem['msg']}")
    error_class = "NaiveTimestamp" if naive else "SchemaViolation"
    return Rejected(error_class, "; ".join(parts))


def check_key(key: bytes | None, event: TicketEvent) -> None:
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


def decode_record(value: bytes | str, key: bytes | None) -> TicketEvent:
    """A keyed input record (Kafka) -> validated event; `Rejected` as `decode_event`, or
    `KeyMismatch` when the key is missing or is not the ticket id."""
    event = decode_event(value)
    check_key(key, event)
    return event
