"""A worker stopped (SIGSTOP) and continued is not a Kafka outage."""

from __future__ import annotations

import logging

import pytest

from slaclock.processors.broker import BrokerState, PauseWatch


def watched(now: list[float]) -> tuple[BrokerState, PauseWatch]:
    pauses = PauseWatch(clock=lambda: now[0], threshold=5.0, window=15.0)
    state = BrokerState("kafka-1:9092", clock=lambda: now[0], pauses=pauses)
    pauses.beat()
    return state, pauses


def test_a_timeout_right_after_a_pause_is_logged_as_the_pause_not_as_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    state, pauses = watched(now)
    now[0] += 40.0  # stopped for 40 s; the first call to run again times out
    with caplog.at_level(logging.INFO, logger="slaclock.processors.broker"):
        state.down("ticker", TimeoutError("Failed to get watermark offsets: Local: Timed out"))
        pauses.beat()
        state.up()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(lines) == 1, lines
    level, message = lines[0]
    assert level == logging.INFO
    assert "paused for 40 s" in message and "not a broker outage" in message
    assert "unreachable" not in message
    assert state.is_up and state.outages == 0


def test_an_outage_well_after_a_pause_is_still_an_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    state, pauses = watched(now)
    now[0] += 40.0
    pauses.beat()  # the pause noticed
    for _ in range(60):  # a minute of normal running
        now[0] += 0.5
        pauses.beat()
    with caplog.at_level(logging.INFO, logger="slaclock.processors.broker"):
        state.down("ticker", TimeoutError("no answer"))
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "kafka-1:9092 unreachable" in record.message
    assert state.outages == 1


def test_the_watch_reports_a_pause_only_for_a_while_after_it() -> None:
    now = [0.0]
    pauses = PauseWatch(clock=lambda: now[0], threshold=5.0, window=15.0)
    pauses.beat()
    now[0] += 2.0
    pauses.beat()
    assert pauses.pause_behind() is None  # 2 s between beats: no pause
    now[0] += 30.0
    assert pauses.pause_behind() == 30.0  # running again, the watch has not beaten yet
    pauses.beat()

    def run_for(seconds: float) -> None:
        for _ in range(int(seconds * 2)):
            now[0] += 0.5
            pauses.beat()

    run_for(10.0)
    assert pauses.pause_behind() == 30.0
    run_for(10.0)
    assert pauses.pause_behind() is None
