"""A partition's due-timer index: one pending instant per key, earliest first.

Shared by the ticket stage and the services stage. A heap of (due, key) with a dict of
each key's current instant: rescheduling pushes a new entry and leaves the old one to be
skipped when it surfaces (cheaper than removing it from the heap).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping


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
