"""TEST-ONLY crash points of the transactional loop: never set this in production.

The fault tests need kills at known instants, not only at random ones. With the
environment variable `SLACLOCK_TEST_CRASH=<point>:<n>[:<loop>[:stop]]` a worker SIGKILLs
itself (no clean-up, no flush, exactly like `kill -9`) when one of its transactional
loops (`tickets` or `ledger`; any loop if not named, each counting its own) reaches:

- `between_produce_and_commit:<n>` — its n-th batch, after every record of the batch
  and its input offsets went into the transaction and the broker acknowledged the
  records (a flush), before `commit_transaction`: the kill provably lands inside an open
  transaction, whose records are in the log but never become visible to read_committed
  readers (the successor's `init_transactions` aborts it);
- `after_commits:<n>` — right after its n-th committed batch.

With `:stop` it SIGSTOPs itself instead: a zombie, frozen there until a SIGCONT, for
the fencing tests. Before the signal one line goes to stderr:
`slaclock test crash: <point> #<n> in <loop> ...` (`..., stopping` with `:stop`).
Unset (always, outside tests) the loop holds no crash point and nothing here runs.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

ENV_VAR = "SLACLOCK_TEST_CRASH"
BETWEEN_PRODUCE_AND_COMMIT = "between_produce_and_commit"
AFTER_COMMITS = "after_commits"
POINTS = (BETWEEN_PRODUCE_AND_COMMIT, AFTER_COMMITS)
LOOPS = ("tickets", "ledger")


class Flushable(Protocol):
    def flush(self, timeout: float) -> int: ...


@dataclass
class CrashPoint:
    """Where one loop of this worker process kills the process (test-only)."""

    point: str
    count: int
    loop: str
    stop: bool = False  # SIGSTOP (a zombie) instead of SIGKILL
    seen: int = 0

    @classmethod
    def from_env(cls, loop: str, environ: Mapping[str, str] | None = None) -> CrashPoint | None:
        """The crash point for `loop`, or None (the variable is unset or names another loop)."""
        value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        if not value:
            return None
        parts = value.split(":")
        point = parts[0]
        valid = (
            len(parts) in (2, 3, 4)
            and point in POINTS
            and parts[1].isdigit()
            and int(parts[1]) >= 1
            and (len(parts) == 2 or parts[2] in LOOPS)
            and (len(parts) < 4 or parts[3] == "stop")
        )
        if not valid:
            raise ValueError(
                f"{ENV_VAR}={value!r} (test-only): expected <point>:<n>[:<loop>[:stop]] with "
                f"point one of {', '.join(POINTS)}, n >= 1 and loop one of {', '.join(LOOPS)}; "
                f"unset it outside tests"
            )
        if len(parts) >= 3 and parts[2] != loop:
            return None
        return cls(point, int(parts[1]), loop, stop=len(parts) == 4)

    def reached(self, point: str, producer: Flushable) -> None:
        """Called by the loop at `point`; kills the process at the configured occurrence."""
        if point != self.point:
            return
        self.seen += 1
        if self.seen != self.count:
            return
        detail = ""
        if point == BETWEEN_PRODUCE_AND_COMMIT:
            # every record of the open transaction acknowledged: it is in the log
            unsent = producer.flush(30)
            detail = f", transaction open, {unsent} records unacknowledged"
        if self.stop:
            detail += ", stopping"
        print(
            f"slaclock test crash: {point} #{self.seen} in {self.loop}{detail}",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGSTOP if self.stop else signal.SIGKILL)
