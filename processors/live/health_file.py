"""Liveness without HTTP: the worker writes its health to a file, `slaclock worker --health`
reads it.

A container healthcheck must not depend on the HTTP server being enabled
(`SLACLOCK_HTTP_PORT=0`) nor on a port: every `INTERVAL_S` the worker writes
`{"ok": ..., "at": <unix seconds>, "threads": {...}}` to
`<state_dir>/<app_id>/<instance_id>.health.json` (beside, not inside, the instance's store
directory, which holds only the RocksDB stores and their checkpoints)
(atomically: a temporary file renamed over it), from the first time it is live on. The
check passes when the file says ok and is younger than `MAX_AGE_S`; a hung worker stops
refreshing it, a dead one too, and a clean stop removes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slaclock.processors.settings import Settings

log = logging.getLogger(__name__)

INTERVAL_S = 5.0
STARTING_POLL_S = 0.5  # until the worker is live for the first time
MAX_AGE_S = 30.0


def health_path(settings: Settings) -> Path:
    return settings.state_dir / settings.app_id / f"{settings.instance_id}.health.json"


class HealthFile:
    """A thread that writes `probe()` to `path` every `interval` seconds until stopped."""

    def __init__(
        self,
        probe: Callable[[], tuple[bool, dict[str, Any]]],
        path: Path,
        interval: float = INTERVAL_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.probe = probe
        self.path = path
        self.interval = interval
        self.wall_clock = wall_clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-file", daemon=True)

    def start(self) -> HealthFile:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop writing and remove the file: a stopped worker is not healthy."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 1)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _run(self) -> None:
        started = False  # nothing is written while the worker starts: no file = not live yet
        while True:
            try:
                started = self.write_once(only_if_ok=not started) or started
            except OSError as error:  # a full disk must not kill the worker
                log.warning("health file %s not written: %s", self.path, error)
            if self._stop.wait(self.interval if started else STARTING_POLL_S):
                return

    def write_once(self, only_if_ok: bool = False) -> bool:
        """Write the probe's answer (unless `only_if_ok` and it is not ok); True if written."""
        ok, detail = self.probe()
        if only_if_ok and not ok:
            return False
        body = {"ok": ok, "at": self.wall_clock(), **detail}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(body))
        temporary.replace(self.path)
        return True


def check_health_file(
    path: Path, max_age: float = MAX_AGE_S, now: float | None = None
) -> tuple[bool, str]:
    """(healthy, one line saying why) from the file a running worker keeps fresh."""
    try:
        body = json.loads(path.read_text())
        ok, at = bool(body["ok"]), float(body["at"])
    except FileNotFoundError:
        return (
            False,
            f"no health file at {path}: the worker is not running (or has another SLACLOCK_STATE_DIR, SLACLOCK_APP_ID or SLACLOCK_INSTANCE_ID)",
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        return False, f"unreadable health file {path}: {error}"
    age = (time.time() if now is None else now) - at
    if age > max_age:
        return (
            False,
            f"the worker last reported {age:.0f} s ago (more than {max_age:.0f} s): hung or stopped",
        )
    if not ok:
        return False, f"the worker reports failing: {json.dumps(body.get('threads', {}))}"
    return True, f"ok ({age:.0f} s ago)"
