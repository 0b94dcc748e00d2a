"""Instants inside the engine: integer microseconds since the Unix epoch (UTC).

Integers keep the arithmetic exact (no float drift) and fast on the hot path; they are
UTC by construction, so no naive time can sneak in. Conversion to and from aware
`datetime` happens only at the edges (parsing inputs, formatting outputs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

US_PER_SECOND = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Aware datetime -> microseconds since the epoch. Naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no offset")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(instant: int) -> datetime:
    """Microseconds since the epoch -> aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=instant)


_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - formatting only; the result is tagged Z


def format_us(instant: int) -> str:
    """RFC 3339 in UTC with `Z`; fractional seconds only when there are any."""
    return (_NAIVE_EPOCH + timedelta(microseconds=instant)).isoformat() + "Z"


def parse_instant(text: str) -> int:
    """RFC 3339 text with an offset or `Z` -> microseconds. Naive text is refused."""
    return to_us(datetime.fromisoformat(text.replace("z", "Z")))


def seconds_value(duration_us: int) -> int | float:
    """A duration for JSON output: whole seconds as int, else seconds with microseconds."""
    whole, rest = divmod(duration_us, US_PER_SECOND)
    return whole if rest == 0 else duration_us / US_PER_SECOND
