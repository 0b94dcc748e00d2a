"""Which offset the notifier commits: never past a record still being delivered."""

from __future__ import annotations

from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from slaclock.processors.notify.driver import ReadCommittedApp
from slaclock.processors.notify.offsets import OffsetLedger

P0 = TP("sla.breaches", 0)


def test_a_later_record_acked_first_does_not_move_the_commit_past_an_earlier_one() -> None:
    ledger = OffsetLedger()
    ledger.positioned(P0, 10)
    for offset in (10, 11, 12):
        ledger.read(P0, offset)
    ledger.acked(P0, 11)
    ledger.acked(P0, 12)
    assert ledger.committable(P0) == 10
    ledger.acked(P0, 10)
    assert ledger.committable(P0) == 13


def test_offsets_never_read_below_the_last_read_need_no_ack() -> None:
    # 1 and 5 are transaction markers: the consumer never hands them over.
    ledger = OffsetLedger()
    ledger.positioned(P0, 0)
    for offset in (0, 2, 3, 4, 6):
        ledger.read(P0, offset)
        ledger.acked(P0, offset)
    assert ledger.committable(P0) == 7


def test_a_partition_never_positioned_commits_nothing() -> None:
    ledger = OffsetLedger()
    ledger.read(P0, 4)
    ledger.acked(P0, 4)
    assert ledger.committable(P0) is None


def test_positioning_again_keeps_what_is_still_being_delivered() -> None:
    # A rebalance positions the partition at its committed offset again; records handed
    # over before are either delivered meanwhile or still pending: the commit waits.
    ledger = OffsetLedger()
    ledger.positioned(P0, 0)
    for offset in (0, 1, 2):
        ledger.read(P0, offset)
    ledger.acked(P0, 0)
    ledger.positioned(P0, 1)
    assert ledger.committable(P0) == 1
    ledger.read(P0, 1)  # read again
    ledger.acked(P0, 1)  # one of its two deliveries done
    assert ledger.committable(P0) == 1
    ledger.acked(P0, 1)
    ledger.acked(P0, 2)
    assert ledger.committable(P0) == 2  # 2 not read again since the positioning


def test_a_record_handed_over_before_the_positioning_holds_the_commit() -> None:
    # Fetched before the seek that ends a rebalance; faust drops its second reading.
    ledger = OffsetLedger()
    ledger.read(P0, 5)
    ledger.positioned(P0, 5)
    ledger.read(P0, 6)
    ledger.acked(P0, 6)
    assert ledger.committable(P0) == 5
    ledger.acked(P0, 5)
    assert ledger.committable(P0) == 7


def test_records_behind_the_position_are_forgotten() -> None:
    ledger = OffsetLedger()
    ledger.read(P0, 3)
    ledger.positioned(P0, 10)  # e.g. --from-latest
    assert ledger.committable(P0) == 10


@given(st.permutations(list(range(12))), st.integers(0, 12))
def test_the_commit_is_never_past_an_unacknowledged_record(
    order: list[int], acked_count: int
) -> None:
    ledger = OffsetLedger()
    ledger.positioned(P0, 0)
    for offset in range(12):
        ledger.read(P0, offset)
    acked = order[:acked_count]
    for offset in acked:
        ledger.acked(P0, offset)
    committable = ledger.committable(P0)
    assert committable is not None
    assert all(offset in acked for offset in range(committable))
    assert committable == min(set(range(12)) - set(acked), default=12)


def test_the_notify_consumer_commits_what_the_ledger_says_not_what_faust_would() -> None:
    app = ReadCommittedApp("offsets-test", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    app.offsets.positioned(P0, 10)
    for offset in (10, 11, 12):
        app.offsets.read(P0, offset)
    app.offsets.acked(P0, 11)
    app.offsets.acked(P0, 12)
    # What faust's own bookkeeping holds at this point (committed 10, acked 11 and 12):
    consumer._committed_offset[P0] = 10
    consumer._acked[P0] = [11, 12]
    assert consumer._new_offset(P0) == 10  # stock faust: 13, past the record in delivery


def test_the_notify_consumer_never_drops_a_record_as_already_read() -> None:
    # faust's drain loop drops a record whose offset is below its "read offset"; after a
    # seek back, records read again must be handed over.
    app = ReadCommittedApp("offsets-test", broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    consumer._read_offset[P0] = 50  # what faust's loop records after handing over 50
    assert consumer._read_offset[P0] is None
