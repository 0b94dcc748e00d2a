"""A partition's due-timer index (one pending instant per key, earliest first) and its
clock rule (`PartitionClock`).

Shared by the ticket stage and the services stage. A heap of (due, key) with a dict of
each key's current instant: rescheduling pushes a new entry and leaves the old one to be
skipped when it surfaces (cheaper than removing it from the heap).
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

OutputT = TypeVar("OutputT")


class TimerIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}

    def schedule(self, key: str, due: int | None) -> None:
        """`key`'s next instant is `due` (None: it has none)."""
        if due is None:
            self._due.pop(key, None)
        elif self._due.get(key) != due:
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))

    def pop_due(self, limit: int, inclusive: bool) -> Iterator[tuple[int, str]]:
        """Yield (due, key) of every timer due before `limit` (or at it, if inclusive), in
        (due, key) order, removing each; timers scheduled while iterating are seen too."""
        heap = self._heap
        while heap:
            due, key = heap[0]
            if due > limit or (due == limit and not inclusive):
                return
            heapq.heappop(heap)
            if self._due.get(key) != due:
                continue  # superseded entry
            del self._due[key]
            yield due, key

    def pop_next(self, limit: int, inclusive: bool) -> tuple[int, str] | None:
        """`pop_due`'s next (due, key), or None: one call per timer, no generator (the
        stages call it once per event, when mostly nothing is due)."""
        heap = self._heap
        while heap:
            entry = heap[0]
            due = entry[0]
            if due > limit or (due == limit and not inclusive):
                return None
            heapq.heappop(heap)
            key = entry[1]
            if self._due.get(key) != due:
                continue  # superseded entry
            del self._due[key]
            return entry
        return None

    def due_of(self, key: str) -> int | None:
        return self._due.get(key)

    def earliest(self) -> int | None:
        """The earliest instant (possibly of a superseded entry, never a later one).

        Safe to call from another thread: one read of the heap's first item.
        """
        heap = self._heap
        try:
            return heap[0][0]
        except IndexError:
            return None

    def __len__(self) -> int:
        return len(self._due)

    def snapshot(self) -> dict[str, int]:
        """A copy: key -> due instant (for a checkpoint)."""
        return dict(self._due)

    def restore(self, scheduled: Mapping[str, int]) -> None:
        self._due = dict(scheduled)
        self._heap = [(due, key) for key, due in self._due.items()]
        heapq.heapify(self._heap)

    def clear(self) -> None:
        self._heap = []
        self._due = {}


class PartitionClock(ABC, Generic[OutputT]):
    """A stage's partition clock C and how far its timers have fired, for the ticket and
    the service stage alike.

    `fired_through`: every timer due at or before this instant has fired (the clock after
    a tick; one microsecond less after an event, whose own instant's timers are still
    due), which is what the ledger may take as the partition's watermark.
    """

    clock: int | None
    fired_through: int | None

    @abstractmethod
    def _fire(self, limit: int, inclusive: bool) -> list[OutputT]:
        """Fire the timers due before `limit` (at or before, when `inclusive`)."""

    def advance_to(self, instant: int) -> list[OutputT]:
        """A clock tick: C := max(C, instant); fire every timer due at or before C."""
        if self.clock is None or instant > self.clock:
            self.clock = instant
        outputs = self._fire(self.clock, inclusive=True)
        self.fired_through = self.clock
        return outputs

    def _fired_before(self, instant: int) -> None:
        """Every timer due before `instant` has fired."""
        if self.fired_through is None or instant - 1 > self.fired_through:
            self.fired_through = instant - 1
