"""Hand the heap memory freed by a restore back to the system (glibc's `malloc_trim`).

A restore decodes a whole changelog (often tens of MiB of records) into tickets, then frees
the records; a revocation frees every ticket of the task. glibc keeps freed memory in its
arenas for reuse, so a worker's RSS stepped up 10-30 MiB at every rebalance of a soak (a
broker restart, another worker killed) and stayed there until the process died. Trimming
after those two moments returns what is free; it costs a few milliseconds, never happens per
record, and does nothing where the C library is not glibc (musl, macOS).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger("slaclock.heap")


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
