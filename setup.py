"""Build hook: the compiled core is opt-in.

`MYPYC=1` at build time compiles the pure core (every module of `processors/engine`) and
the replay adapters (`COMPILED`) with mypyc into the wheel, next to their sources; without
it (and always for editable installs) the wheel is pure Python, so no compiled file can
shadow a source being edited. mypyc
type-checks what it compiles, so build with mypy and the runtime dependencies installed
and without build isolation:

    MYPYC=1 pip wheel --no-build-isolation --no-deps -w dist .

(`make test-compiled` and the Dockerfile's `MYPYC` build argument do this.) Everything
else is in pyproject.toml.
"""

from __future__ import annotations

import glob
import os
import sys

from setuptools import setup

COMPILED = [
    "slaclock/processors/engine/*.py",  # the pure core
    # the replay adapter and input classification around it: about 5% more on a replay
    "slaclock/processors/replay.py",
    "slaclock/processors/intake.py",
    "slaclock/processors/services_intake.py",
    # `replay --workers`: the shards' loop over every line and the parent's merge
    "slaclock/processors/parallel_replay.py",
    # the fast path of input decoding, once per line (the Structs it decodes into stay
    # Python classes: schemas/fast_events.py)
    "slaclock/schemas/fast_decode.py",
    # the live worker's work per record: stage 1's loop over a batch, decoding, outputs,
    # and the RocksDB ticket store it reads and writes per event
    "slaclock/processors/live/ticket_input.py",
    "slaclock/processors/live/records.py",
    "slaclock/processors/live/rocks_store.py",
    "slaclock/processors/live/state_records.py",
]


def ext_modules() -> list[object]:
    if os.environ.get("MYPYC", "").strip().lower() not in ("1", "true", "yes"):
        return []
    if "editable_wheel" in sys.argv or "develop" in sys.argv:
        print("MYPYC ignored: an editable install stays pure Python", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.exit(
            "MYPYC=1: mypyc is not importable in the build environment; install mypy "
            "(constraints.txt pins it) and the runtime dependencies, then build with "
            "`pip wheel --no-build-isolation`"
        )
    paths = sorted(p for pattern in COMPILED for p in glob.glob(pattern))
    return list(mypycify(paths, opt_level="3", debug_level="0"))


setup(ext_modules=ext_modules())
