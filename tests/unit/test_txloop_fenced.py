"""A producer fenced after an outage is replaced; fenced with the broker there all along,
the loop stops (a zombie must, whatever the error a later call reports), and says whether
the process had been paused.

No broker: the loop's clients never connect (see tests/unit/test_txloop_rewind.py).
"""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException

from slaclock.processors.broker import PauseWatch
from tests.unit.test_txloop_rewind import RecordingLoop

FENCED = KafkaError(
    KafkaError._FENCED,
    "Failed to add partitions to transaction: This instance has been fenced",
    fatal=True,
)
# What every later call on that producer raises: no cause, not even flagged fatal.
PRODUCE_FAILED = KafkaException(
    KafkaError(KafkaError._FATAL, "Unable to produce message: Local: Fatal error")
)


class FencedProducer:
    """A producer past its fatal error: its client reported why (error callback)."""

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def fenced_loop(monkeypatch: pytest.MonkeyPatch) -> tuple[RecordingLoop, list[str]]:
    loop = RecordingLoop()
    monkeypatch.setattr(loop, "producer", FencedProducer())
    replaced: list[str] = []
    monkeypatch.setattr(loop, "_replace_producer", lambda reason, **_: replaced.append(reason))
    monkeypatch.setattr(loop, "_retry", lambda what, call: None)
    loop._on_client_error(FENCED)  # the client reports why the producer failed
    return loop, replaced


def test_a_producer_fenced_after_an_outage_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    loop, replaced = fenced_loop(monkeypatch)
    # an outage since the last commit: the broker aborted the transaction it outlived
    loop.outages_at_commit = loop.broker.outages - 1
    loop._recover(PRODUCE_FAILED)
    assert len(replaced) == 1 and "fenced" in replaced[0]


def test_a_producer_fenced_with_nothing_in_between_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop, replaced = fenced_loop(monkeypatch)
    loop.outages_at_commit = loop.broker.outages
    with caplog.at_level(logging.ERROR), pytest.raises(KafkaException):
        loop._recover(PRODUCE_FAILED)
    assert replaced == []
    assert "fenced by a newer instance" in caplog.text


def test_fenced_right_after_a_pause_the_loop_stops_and_says_both_causes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # SIGSTOP/SIGCONT: a successor may have taken over (a zombie must end), or the broker
    # aborted the transaction left open past its timeout; one error for both.
    loop, replaced = fenced_loop(monkeypatch)
    now = [1000.0]
    pauses = PauseWatch(clock=lambda: now[0])
    pauses.beat()
    now[0] += 45.0
    monkeypatch.setattr(loop.broker, "pauses", pauses)
    loop.outages_at_commit = loop.broker.outages
    with caplog.at_level(logging.ERROR), pytest.raises(KafkaException):
        loop._recover(PRODUCE_FAILED)
    assert replaced == []
    assert "paused for 45 s" in caplog.text and "aborted the transaction" in caplog.text


def test_the_cause_is_read_from_the_producer_when_its_callback_has_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Unpolled(FencedProducer):
        def flush(self, timeout: float) -> int:
            raise KafkaException(FENCED)

    loop, replaced = fenced_loop(monkeypatch)
    loop.fatal_error = None
    monkeypatch.setattr(loop, "producer", Unpolled())
    loop.outages_at_commit = loop.broker.outages - 1
    loop._recover(PRODUCE_FAILED)
    assert len(replaced) == 1 and "fenced" in replaced[0]
