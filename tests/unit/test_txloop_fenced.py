"""A producer fenced while this worker was paused is replaced; a real zombie stops.

No broker: the loop's clients never connect (see tests/unit/test_txloop_rewind.py).
"""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException

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


def test_a_producer_fenced_across_a_pause_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    loop, replaced = fenced_loop(monkeypatch)
    # the process was paused since the last commit: the broker aborted the transaction
    loop.outages_at_commit = loop.broker.interruptions() - 1
    loop._recover(PRODUCE_FAILED)
    assert len(replaced) == 1 and "fenced" in replaced[0]


def test_a_producer_fenced_with_nothing_in_between_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    loop, replaced = fenced_loop(monkeypatch)
    loop.outages_at_commit = loop.broker.interruptions()
    with caplog.at_level(logging.ERROR), pytest.raises(KafkaException):
        loop._recover(PRODUCE_FAILED)
    assert replaced == []
    assert "fenced by a newer instance" in caplog.text


def test_the_cause_is_read_from_the_producer_when_its_callback_has_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Unpolled(FencedProducer):
        def flush(self, timeout: float) -> int:
            raise KafkaException(FENCED)

    loop, replaced = fenced_loop(monkeypatch)
    loop.fatal_error = None
    monkeypatch.setattr(loop, "producer", Unpolled())
    loop.outages_at_commit = loop.broker.interruptions() - 1
    loop._recover(PRODUCE_FAILED)
    assert len(replaced) == 1 and "fenced" in replaced[0]
