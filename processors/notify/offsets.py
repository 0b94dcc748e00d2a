"""Which offset of each partition the notifier may commit (pure: no Kafka, no clock).

faust's own bookkeeping cannot be trusted with acknowledgements that come out of order, as
the notifier's do (deliveries for different keys run concurrently): with committed offset
10 and records 11 and 12 acknowledged while 10 is still being delivered it commits 13, and
with no committed offset yet it commits past any unacknowledged head; it also counts the
first record after a transaction marker as acknowledged once a later one is. A crash then
loses the records it committed past. The rule here is the plain one: a partition's
committable offset is the lowest offset still being handled, else the one after the highest
offset handled since the partition was last positioned (its committed offset, else the
configured start). Offsets never handled below that (transaction markers, aborted records)
need no acknowledgement.

A record handed over stays pending until acknowledged, across a positioning too: faust can
hand over records fetched before the positioning that follows a rebalance, and drops their
second reading (offsets below the last one it handed over); their deliveries are the only
ones, so the commit must wait for them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable


class OffsetLedger:
    def __init__(self) -> None:
        self._pending: dict[Hashable, Counter[int]] = {}
        self._next: dict[Hashable, int] = {}

    def positioned(self, tp: Hashable, offset: int) -> None:
        """The partition's consumer was positioned at `offset` (nothing is committable for
        it before). Records below `offset` are behind the committed one: forgotten."""
        pending = self._pending.setdefault(tp, Counter())
        for old in [o for o in pending if o < offset]:
            del pending[old]
        self._next[tp] = offset

    def read(self, tp: Hashable, offset: int) -> None:
        """A record was handed to the notifier (pending until acknowledged)."""
        self._pending.setdefault(tp, Counter())[offset] += 1
        if tp in self._next:
            self._next[tp] = max(self._next[tp], offset + 1)

    def acked(self, tp: Hashable, offset: int) -> None:
        pending = self._pending.get(tp)
        if pending is None or pending[offset] <= 0:
            return  # behind the committed offset: forgotten
        pending[offset] -= 1
        if pending[offset] == 0:
            del pending[offset]

    def committable(self, tp: Hashable) -> int | None:
        """The offset to commit for `tp`, None when the partition was never positioned."""
        if tp not in self._next:
            return None
        pending = self._pending[tp]
        return min(min(pending), self._next[tp]) if pending else self._next[tp]

    def forget(self, tp: Hashable) -> None:
        self._pending.pop(tp, None)
        self._next.pop(tp, None)
