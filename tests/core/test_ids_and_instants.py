"""Output ids and instant formatting: exact, deterministic, and equal to the stdlib forms."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

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
