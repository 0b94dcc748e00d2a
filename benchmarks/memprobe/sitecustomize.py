"""Memory probes for a worker or notifier process, switched on by environment variables.

Put this directory first on `PYTHONPATH` of the process to watch (the soak and the shadow
notifiers pass their environment on), and set any of:

- `MEMPROBE_ALLOC_FILE=path`: every 30 s a JSON line with the RSS (KiB) and
  `sys.getallocatedblocks()` (live objects of Python's allocator); every fourth line also
  the 40 most common GC-tracked types. Live objects flat while RSS grows means the growth
  is memory the allocator keeps, not objects the program keeps.
- `MEMPROBE_TRACEMALLOC_DIR=dir` (and `MEMPROBE_TRACEMALLOC_EVERY=seconds`, 120): start
  tracemalloc (8 frames) and dump a snapshot every interval, `<pid>-<n>.snap`; compare two
  with `tracemalloc.Snapshot.load(a).compare_to(...)`. Snapshots cost memory themselves:
  read the traced totals, not the RSS, of a run with this on.

Only processes whose command line names `worker` or `notify` are probed.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import sys
import threading
import time
import tracemalloc


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def _alloc_probe(path: str) -> None:
    n = 0
    while True:
        time.sleep(30)
        n += 1
        row: dict[str, object] = {
            "t": round(time.time()),
            "rss_kib": _rss_kib(),
            "blocks": sys.getallocatedblocks(),
        }
        if n % 4 == 0:
            counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
            row["types"] = counts.most_common(40)
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def _tracemalloc_dumps(directory: str, every: float) -> None:
    n = 0
    while True:
        time.sleep(every)
        n += 1
        snapshot = tracemalloc.take_snapshot()
        snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        snapshot.dump(os.path.join(directory, f"{os.getpid()}-{n:03d}.snap"))


if "worker" in sys.argv or "notify" in sys.argv:
    _alloc = os.environ.get("MEMPROBE_ALLOC_FILE")
    if _alloc:
        threading.Thread(target=_alloc_probe, args=(_alloc,), daemon=True).start()
    _dumps = os.environ.get("MEMPROBE_TRACEMALLOC_DIR")
    if _dumps:
        tracemalloc.start(8)
        _every = float(os.environ.get("MEMPROBE_TRACEMALLOC_EVERY", "120"))
        threading.Thread(target=_tracemalloc_dumps, args=(_dumps, _every), daemon=True).start()
