"""The fast path of input decoding: msgspec decodes a ticket event straight into the
engine's Struct (`schemas.fast_events`), or steps aside for pydantic.

A module of its own so the `MYPYC=1` build compiles it (setup.py): it runs once per input
line. `decode_fast(raw)` returns the Struct `schemas.rejection.decode_event(raw)` would,
or None when it cannot vouch for pydantic's verdict (then pydantic decides, and every
rejection keeps its exact class and wording).

Where msgspec and pydantic disagree on an input both accept, the fast path steps aside
before decoding (each case has a test in tests/unit/test_fast_decode.py, and a hypothesis
differential test compares both paths on random valid and invalid records):
- more than 6 fractional digits in a timestamp: msgspec rounds, pydantic truncates;
- bytes that are not UTF-8 (inside a string msgspec does not check them).
The other known differences are inputs msgspec refuses and pydantic accepts (an epoch
inside a string, `HH:MMZ` without seconds, a comma before the fraction, `NaN` or
`Infinity` in an unknown field, a repeated `type`): refused here, they take the pydantic
path too.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Final

import msgspec

from slaclock.schemas.fast_events import EngineEvent

__all__ = ["decode_fast"]

_DECODER: Final = msgspec.json.Decoder(EngineEvent)
_LONG_FRACTION: Final = re.compile(rb"\.[0-9]{7}")


def decode_fast(raw: bytes | str) -> EngineEvent | None:
    """The event `decode_event(raw)` returns, or None: decide with pydantic."""
    if isinstance(raw, str):
        if not raw.isascii():
            return None
        data = raw.encode()
    else:
        data = raw
        if not data.isascii():
            try:
                data.decode()
            except UnicodeDecodeError:
                return None
    if _LONG_FRACTION.search(data) is not None:
        return None
    try:
        event: EngineEvent = _DECODER.decode(data)
        occurred_at = event.occurred_at
        if occurred_at.tzinfo is not UTC:
            return msgspec.structs.replace(event, occurred_at=occurred_at.astimezone(UTC))
    except (msgspec.DecodeError, OverflowError):  # ValidationError is a DecodeError
        return None
    return event
