"""The ticker's schedule: regular ticks every interval, extra ticks at due timers."""

from __future__ import annotations

from slaclock.processors.live.schedule import TickSchedule

START = 1_000.0  # wall-clock seconds
GRACE = 2.0
US = 1_000_000


def schedule(interval: float = 1.0) -> TickSchedule:
    return TickSchedule(interval, GRACE, START, min_gap=0.1, margin=0.001)


def test_without_timers_ticks_every_interval() -> None:
    s = schedule()
    assert s.wait(START, None) == 1.0
    assert not s.should_tick(START + 0.5)
    assert s.should_tick(START + 1.0)
    assert s.wait(START + 1.0, None) == 1.0


def test_due_timer_brings_a_tick_at_its_instant_plus_grace() -> None:
    s = schedule()
    due = int((START - GRACE + 0.3) * US)  # due + grace = START + 0.3
    assert abs(s.wait(START, due) - 0.301) < 1e-9
    assert not s.should_tick(START + 0.2)
    assert s.should_tick(START + 0.301)
    # the regular cadence is kept
    assert abs(s.wait(START + 0.301, None) - 0.699) < 1e-9


def test_timer_already_past_waits_for_the_regular_tick() -> None:
    s = schedule()
    long_past = int((START - 60) * US)
    assert s.wait(START, long_past) == 1.0
    assert not s.should_tick(START + 0.5)


def test_extra_ticks_keep_a_minimum_gap() -> None:
    s = schedule()
    assert s.should_tick(START + 1.0)
    due_now = int((START + 1.0 + 0.01 - GRACE) * US)  # 10 ms after that tick
    assert abs(s.wait(START + 1.0, due_now) - 0.1) < 1e-9


def test_earlier_timer_rearms_the_extra_tick() -> None:
    s = schedule(interval=10.0)
    later = int((START + 5 - GRACE) * US)
    sooner = int((START + 2 - GRACE) * US)
    s.wait(START, later)
    assert abs(s.wait(START + 0.5, sooner) - 1.501) < 1e-9


def test_falling_behind_resumes_the_cadence_from_now() -> None:
    s = schedule()
    assert s.should_tick(START + 5.5)
    assert s.wait(START + 5.5, None) == 1.0


def test_recently_due_timer_still_pending_brings_ticks_min_gap_apart() -> None:
    s = schedule()
    due = int((START - GRACE + 0.2) * US)
    s.wait(START, due)
    assert s.should_tick(START + 0.201)  # its tick; it did not fire (partition behind)
    assert abs(s.wait(START + 0.201, due) - 0.1) < 1e-9
    assert s.should_tick(START + 0.301)
