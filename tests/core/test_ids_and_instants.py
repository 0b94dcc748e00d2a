"""Output ids and instant formatting: exact, deterministic, and equal to the stdlib forms."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from slaclock.processors.engine.ids import NAMESPACE, output_event_id
from slaclock.processors.engine.instants import format_us, parse_instant, to_us


@given(st.text(min_size=1, max_size=20), st.integers(min_value=0, max_value=99))
def test_output_event_id_is_the_uuid5_of_the_natural_key(ticket: str, cycle: int) -> None:
    natural = "\x1f".join(["sla.breach", ticket, "resolution", str(cycle)])
    assert output_event_id("sla.breach", ticket, "resolution", cycle) == str(
        uuid.uuid5(NAMESPACE, natural)
    )


@given(st.integers(min_value=0, max_value=4_102_444_800_000_000))
def test_formatted_instant_parses_back_to_the_same_microsecond(instant: int) -> None:
    text = format_us(instant)
    assert text.endswith("Z") and "+" not in text
    assert parse_instant(text) == instant


def test_whole_seconds_are_formatted_without_a_fraction() -> None:
    assert format_us(to_us(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))) == "2026-03-02T09:00:00Z"
    assert format_us(to_us(datetime(2026, 3, 2, 9, 0, 0, 500, tzinfo=UTC))) == (
        "2026-03-02T09:00:00.000500Z"
    )


_FIRST_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
_LAST_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


@given(st.integers(min_value=_FIRST_US, max_value=_LAST_US))
def test_formatted_instant_is_the_isoformat_of_the_datetime(instant: int) -> None:
    naive = datetime(1970, 1, 1) + timedelta(microseconds=instant)  # noqa: DTZ001
    assert format_us(instant) == naive.isoformat() + "Z"


def test_instants_around_the_epoch_and_day_ends_are_formatted_like_isoformat() -> None:
    assert format_us(0) == "1970-01-01T00:00:00Z"
    assert format_us(-1) == "1969-12-31T23:59:59.999999Z"
    assert format_us(_FIRST_US) == "0001-01-01T00:00:00Z"
    assert format_us(_LAST_US) == "9999-12-31T23:59:59.999999Z"
    assert format_us(86_400_000_000 - 1) == "1970-01-01T23:59:59.999999Z"


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_to_us_counts_the_microseconds_since_the_epoch(moment: datetime) -> None:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    assert to_us(moment) == delta // timedelta(microseconds=1)
