"""Checkpoints of stage 1's RocksDB stores, so a clean restart reuses them (a warm start).

A checkpoint is written only when a worker stops cleanly, after its last transaction has
committed: the database then holds exactly the changelog up to `changelog_offset` (the
changelog partition's end offset at that moment), and the checkpoint also carries the
task's clock record and its timer index, which would otherwise be rebuilt by decoding
every state. It is consumed (deleted) when the worker starts, before it processes
anything, so a database that a later crash may leave half-written is never trusted: like
Kafka Streams under exactly-once, only a clean stop leaves a reusable store, and a store
without a checkpoint is deleted and restored from the changelog.

A warm store is reused only if its checkpoint equals the changelog's end offset when the
task is assigned again, i.e. nobody wrote the changelog in between (a rolling restart
with static membership). Otherwise the task is restored from the changelog in full.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from slaclock.processors.live.store import remove_tree

log = logging.getLogger(__name__)

SUFFIX = ".checkpoint"
STORE_PREFIX = "tickets-"


@dataclass(frozen=True)
class StoreCheckpoint:
    changelog_offset: int
    meta: dict[str, Any]  # the task's clock record: clock, stream_time, processed_offset
    timers: dict[str, int]  # ticket id -> due instant (microseconds)

    def encode(self) -> bytes:
        return orjson.dumps(
            {"changelog_offset": self.changelog_offset, "meta": self.meta, "timers": self.timers}
        )

    @classmethod
    def decode(cls, raw: bytes) -> StoreCheckpoint:
        data = orjson.loads(raw)
        timers = {str(k): int(v) for k, v in data["timers"].items()}
        return cls(int(data["changelog_offset"]), dict(data["meta"]), timers)


def store_path(state_dir: Path, partition: int) -> Path:
    return state_dir / f"{STORE_PREFIX}{partition}"


def write_checkpoint(state_dir: Path, partition: int, checkpoint: StoreCheckpoint) -> None:
    """Write atomically (temporary file, fsync, rename) next to the task's store."""
    path = store_path(state_dir, partition).with_suffix(SUFFIX)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        file.write(checkpoint.encode())
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def take_checkpoints(state_dir: Path) -> dict[int, StoreCheckpoint]:
    """Read and delete every checkpoint under `state_dir`; delete stores that have none.

    What is left on disk afterwards is only the stores whose checkpoints were returned.
    """
    found: dict[int, StoreCheckpoint] = {}
    if not state_dir.exists():
        return found
    for path in sorted(state_dir.glob(f"{STORE_PREFIX}*{SUFFIX}")):
        partition_text = path.name[len(STORE_PREFIX) : -len(SUFFIX)]
        try:
            partition = int(partition_text)
            checkpoint = StoreCheckpoint.decode(path.read_bytes())
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as error:
            log.warning("ignoring unreadable checkpoint %s: %s", path, error)
        else:
            if store_path(state_dir, partition).is_dir():
                found[partition] = checkpoint
        finally:
            path.unlink()
    for leftover in state_dir.iterdir():
        if leftover.name.startswith(STORE_PREFIX) and leftover.is_dir():
            partition_text = leftover.name[len(STORE_PREFIX) :]
            if not partition_text.isdigit() or int(partition_text) not in found:
                remove_tree(leftover)
        elif leftover.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return found
