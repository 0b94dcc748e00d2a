"""Producers abandoned in a call that never returns do not pile up without bound.

No broker (see tests/unit/test_txloop_rewind.py).
"""

from __future__ import annotations

import logging
import threading

import pytest

from slaclock.processors.live.txloop import MAX_ABANDONED, CallStuck, TooManyAbandoned
from tests.unit.test_txloop_rewind import RecordingLoop


def loop_with_abandoned(
    monkeypatch: pytest.MonkeyPatch, blocked: int, returned: int
) -> tuple[RecordingLoop, list[str]]:
    loop = RecordingLoop()
    replaced: list[str] = []
    monkeypatch.setattr(loop, "_replace_producer", lambda reason, **_: replaced.append(reason))
    monkeypatch.setattr(loop, "_retry", lambda what, call: None)
    for n in range(blocked + returned):
        done = threading.Event()
        if n >= blocked:
            done.set()  # that call returned in the end
        loop.abandoned.append(done)
    return loop, replaced


def test_past_the_cap_of_blocked_producers_the_loop_stops_with_a_clear_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop, replaced = loop_with_abandoned(monkeypatch, blocked=MAX_ABANDONED + 1, returned=0)
    with caplog.at_level(logging.ERROR), pytest.raises(TooManyAbandoned):
        loop._abandon_producer(CallStuck("send offsets"))
    assert replaced == []
    assert f"{MAX_ABANDONED + 1} abandoned producers are still blocked" in caplog.text
    assert "supervisor restarts the worker" in caplog.text


def test_abandoned_producers_whose_call_returned_do_not_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop, replaced = loop_with_abandoned(monkeypatch, blocked=MAX_ABANDONED, returned=5)
    loop._abandon_producer(CallStuck("send offsets"))
    assert len(replaced) == 1 and len(loop.abandoned) == MAX_ABANDONED
