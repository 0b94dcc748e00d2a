"""Hand freed heap memory back to the system (glibc's `malloc_trim`).

glibc keeps memory that was freed in its arenas for reuse and returns to the system only
what lies at the top of the main heap. Two patterns of ours made a process's RSS grow for
good although the live data did not:

- A restore decodes a whole changelog (often tens of MiB of records) into tickets, then
  frees the records; a revocation frees every ticket of the task. A worker's RSS stepped up
  10-30 MiB at every rebalance of a soak and stayed there until the process died.
- Every thread other than the main one allocates from an arena of its own (the worker's
  stage threads; the notifier's consumer thread, which decodes every fetch). Free chunks
  inside an arena stay resident: a notifier's RSS rose 20-36 MiB an hour early in its life
  while its live objects did not grow, up to the high-water mark of its allocations.

So the worker trims after a restore or a revocation, and both processes trim every
`SLACLOCK_HEAP_TRIM_INTERVAL` seconds (60; 0 turns the periodic trim off). A trim takes
5-30 ms on a heap of 100-200 MiB, never happens per record, and does nothing where the C
library is not glibc (musl, macOS). BENCHMARKS.md, "Soak", has the measurements.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    found: Callable[[int], int] = trim
    return found


_TRIM = _malloc_trim()


def release_free_heap() -> bool:
    """Return the C heap's free memory to the system; False where that is not possible
    (not glibc) or nothing could be returned."""
    if _TRIM is None:
        return False
    return _TRIM(0) == 1
