"""Cyclic garbage collection tuned for a process that holds a large, long-lived state.

The engine's state (ticket states, timer indexes, the ledger) is built from acyclic objects
that reference counting frees; what the cyclic collector does with them is rescan them:
with CPython's default young-generation threshold (700 allocations) a replay of 430,000
events spent 11-15% of its CPU time in collections that found nothing (BENCHMARKS.md
section 1). After start-up, `tune_gc` freezes what exists (the policy, compiled calendars,
imported modules: never garbage) and raises the thresholds, so collections run about 70
times less often; garbage cycles are still collected, later. Peak RSS did not change in
the measurement.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 50, 100)
"""gen-0 allocations, gen-0 collections per gen-1, gen-1 collections per gen-2."""


def tune_gc() -> None:
    """Collect once, freeze the survivors and raise the thresholds (process-wide; for
    command-line entry points and workers, not for library callers)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
