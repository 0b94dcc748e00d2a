"""Freed heap memory goes back to the system after a restore (processors/heap.py)."""

from __future__ import annotations

import os
import platform

import pytest

from slaclock.processors.heap import release_free_heap

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_memory_freed_inside_the_heap_is_returned_by_the_trim() -> None:
    # Records bigger than pymalloc's 512 bytes come from malloc, as a changelog's do; the
    # last one stays alive, so free() alone cannot shrink the heap from its top.
    records = [bytes(2048) + i.to_bytes(4, "big") for i in range(40_000)]
    pinned = bytes(2048) + b"pin"
    del records
    before = rss_bytes()
    assert release_free_heap()
    after = rss_bytes()
    assert before - after > 40 * 2**20, (before, after)
    assert pinned
