"""The due-timer index (processors/engine/timers.py): `pop_next`, the stages' loop, takes
timers in exactly the order of `pop_due`, superseded entries skipped, timers scheduled
while taking them seen too."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from slaclock.processors.engine.timers import TimerIndex

KEYS = st.sampled_from(["T1", "T2", "T3", "T4"])
SCHEDULES = st.lists(st.tuples(KEYS, st.one_of(st.none(), st.integers(0, 20))), max_size=30)


def _index(schedules: list[tuple[str, int | None]]) -> TimerIndex:
    index = TimerIndex()
    for key, due in schedules:
        index.schedule(key, due)
    return index


@given(SCHEDULES, SCHEDULES, st.integers(0, 20), st.booleans())
def test_pop_next_takes_the_timers_pop_due_takes_in_the_same_order(
    before: list[tuple[str, int | None]],
    during: list[tuple[str, int | None]],
    limit: int,
    inclusive: bool,
) -> None:
    """`during`: rescheduled after each timer taken (as firing a ticket does)."""
    by_generator, by_call = _index(before), _index(before)
    taken_by_generator = []
    pending = list(during)
    for entry in by_generator.pop_due(limit, inclusive):
        taken_by_generator.append(entry)
        if pending:
            by_generator.schedule(*pending.pop(0))
    taken_by_call = []
    pending = list(during)
    while (entry := by_call.pop_next(limit, inclusive)) is not None:
        taken_by_call.append(entry)
        if pending:
            by_call.schedule(*pending.pop(0))
    assert taken_by_call == taken_by_generator
    assert by_call.snapshot() == by_generator.snapshot()
    assert by_call.earliest() == by_generator.earliest()


def test_a_superseded_timer_is_not_taken() -> None:
    index = _index([("T1", 5), ("T1", 9), ("T2", 7)])
    assert index.pop_next(10, inclusive=False) == (7, "T2")
    assert index.pop_next(10, inclusive=False) == (9, "T1")
    assert index.pop_next(10, inclusive=False) is None
