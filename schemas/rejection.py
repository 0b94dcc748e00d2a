"""Raw ticket-event record -> validated event, or a `Rejected` that says what is wrong.

The one classification of bad input: the engine, replay, the worker's intake and the
publishing client (`slaclock.client`) all raise or report these error classes, which are
the `reason` of a dead-letter record (InvalidJson, NaiveTimestamp, SchemaViolation, and the
engine's own: UnknownTicket, KeyMismatch, ...).
"""

from __future__ import annotations

from pydantic import ValidationError

from slaclock.schemas.events import parse_ticket_event
from slaclock.schemas.fast_decode import decode_fast
from slaclock.schemas.fast_events import EngineEvent, from_model

__all__ = ["Rejected", "classify_validation_error", "decode_event"]


class Rejected(Exception):
    """An input the engine cannot apply; the runtime sends it to the dead-letter topic."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


def decode_event(raw: bytes | str) -> EngineEvent:
    """The validated event (the engine's Struct, `fast_events`), or `Rejected`. msgspec
    decodes what it can vouch for; everything else, every rejection included, is
    pydantic's (an event it accepts is converted to the same Struct)."""
    event = decode_fast(raw)
    if event is not None:
        return event
    try:
        model = parse_ticket_event(raw)
    except ValidationError as error:
        raise classify_validation_error(error) from None
    return from_model(model)


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
