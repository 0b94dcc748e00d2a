"""Instants inside the engine: integer microseconds since the Unix epoch (UTC).

Integers keep the arithmetic exact (no float drift) and fast on the hot path; they are
UTC by construction, so no naive time can sneak in. Conversion to and from aware
`datetime` happens only at the edges (parsing inputs, formatting outputs).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

US_PER_SECOND: Final = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US: Final = 86_400 * US_PER_SECOND
_EPOCH_ORDINAL: Final = 719_163  # datetime(1970, 1, 1).toordinal()


def to_us(moment: datetime) -> int:
    """Aware datetime -> microseconds since the epoch. Naive datetimes are refused."""
    if moment.tzinfo is UTC:  # the decoders' common case: no offset to apply
        seconds = (moment.toordinal() - _EPOCH_ORDINAL) * 86_400
        seconds += moment.hour * 3600 + moment.minute * 60 + moment.second
        return seconds * US_PER_SECOND + moment.microsecond
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no offset")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(instant: int) -> datetime:
    """Microseconds since the epoch -> aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=instant)


_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - formatting only; the result is tagged Z


_DATES: dict[int, str] = {}  # day since the epoch -> "YYYY-MM-DDT" (a cache)
_TWO_DIGITS: Final = [f"{n:02d}" for n in range(60)]


def format_us(instant: int) -> str:
    """RFC 3339 in UTC with `Z`; fractional seconds only when there are any.

    The text of `datetime.isoformat()` (+ "Z"), built from integers: the date part of each
    day is formatted once and cached, the time of day from a table of two-digit strings
    (about half the cost of building a datetime for every output instant)."""
    day, rest = divmod(instant, _DAY_US)
    date = _DATES.get(day)
    if date is None:
        if len(_DATES) >= 100_000:
            _DATES.clear()
        date = (_NAIVE_EPOCH + timedelta(days=day)).date().isoformat() + "T"
        _DATES[day] = date
    seconds, micro = divmod(rest, US_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    digits = _TWO_DIGITS
    text = date + digits[hour] + ":" + digits[minute] + ":" + digits[second]
    if micro:
        return text + "." + str(US_PER_SECOND + micro)[1:] + "Z"
    return text + "Z"


def parse_instant(text: str) -> int:
    """RFC 3339 text with an offset or `Z` -> microseconds. Naive text is refused."""
    return to_us(datetime.fromisoformat(text.replace("z", "Z")))


def seconds_value(duration_us: int) -> int | float:
    """A duration for JSON output: whole seconds as int, else seconds with microseconds."""
    whole, rest = divmod(duration_us, US_PER_SECOND)
    return whole if rest == 0 else duration_us / US_PER_SECOND
