"""Stage 1's ticket stores: the `TicketStore` protocol and its two implementations.

A `TicketStore` is a mutable mapping ticket id -> `TicketState` (what `TicketStage` reads
and writes) that also
- remembers the keys written or deleted since the last flush (`dirty`), and at the end of
  each batch hands out their changelog records (`flush`);
- publishes, at each flush, an immutable snapshot for readers on other threads (the HTTP
  server): `published(ticket_id)` is the ticket's record as serialised at the end of the
  last flushed batch, with the partition clock of that batch. The stage thread mutates
  `TicketState` objects in place, so other threads never see those objects;
- is restored from changelog records (`load`), closed, or destroyed.

`MemoryTicketStore` (`SLACLOCK_STORE=memory`, tests and the demo) keeps states as objects
and the published records beside them (so it holds every open ticket twice: once as an
object, once as bytes). `RocksTicketStore` (`SLACLOCK_STORE=rocksdb`, the default) keeps
the states serialised as the changelog has them (`orjson.dumps(state.to_record())`) in a
raw-mode RocksDB, so open tickets live on disk, not in RAM; the open batch's writes wait
in memory as objects and are serialised once each at the flush (a ticket changed by ten
events of a batch is encoded once, as it is at the batch's end), then reach the database
in one write batch, so the database itself is the published view.

The changelog stays the source of truth: a task's database is wiped and refilled from its
changelog on (re)assignment (`fresh` + `load`), so nothing on disk is trusted after a
crash; only a database checkpointed by a clean stop is reused as it is (see
`processors.live.checkpoint`).

In `RocksTicketStore`, a small cache keeps the most recently used states as objects: the
states of the last batches (each batch's written states go to its recent end at the flush,
once per ticket) and the ones read from the database since. It is correct because
`TicketStage` re-assigns `store[id] = state` after every change to a state it got from the
store: the cached object and the database then agree at the flush. The cache is bounded,
so a state that was never re-assigned could differ from the database only while cached;
`TicketStage` never does that. One lock guards the cache and the database handle: the
HTTP server's threads read (`get`) while the stage thread writes.

`RocksTicketStore` is defined in `processors.live.rocks_store` (compiled in the shipped
build) and importable from here. This module imports rocksdict (a dependency of the package) only when a database is
opened, so the memory store and the replay never load it.
"""

from __future__ import annotations

import shutil
import threading
from abc import abstractmethod
from collections.abc import ItemsView, Iterator, MutableMapping, Sequence, ValuesView
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from slaclock.processors.engine.ticket import TicketState
from slaclock.processors.live.state_records import Record as Record
from slaclock.processors.live.state_records import decode_state, encode_state

if TYPE_CHECKING:
    pass

DEFAULT_CACHE_SIZE = 1024
LOAD_BATCH_BYTES = 64 * 1024
"""Bytes per write batch of a restore. Kept under glibc's initial mmap threshold (128 KiB):
a larger buffer is mmapped, and freeing it raises the threshold for good, after which
the process keeps more freed memory (measured: +70 MiB RSS after restoring 100,000
tickets with 8 MB batches)."""


class StoreClosedError(RuntimeError):
    """A write to a store after `close()`."""


def require_rocksdict() -> None:
    """Fail early, and say how to fix it, when the optional dependency is missing."""
    try:
        import rocksdict  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            "SLACLOCK_STORE=rocksdb needs rocksdict (a dependency of slaclock): "
            "pip install rocksdict, or choose SLACLOCK_STORE=memory"
        ) from error


def remove_tree(path: Path) -> None:
    """Delete a directory and everything in it, if it exists (errors are raised)."""
    if path.exists():
        shutil.rmtree(path)


def key_text(raw_key: object) -> str:
    assert isinstance(raw_key, bytes)  # a raw-mode database has bytes keys
    return raw_key.decode()


class TicketStore(MutableMapping[str, TicketState]):
    """What stage 1 needs of a ticket store (see the module docstring).

    An abstract base rather than a `typing.Protocol` because it must also be the
    `MutableMapping` that `TicketStage` drives; implementations add the methods below.
    """

    persistent: ClassVar[bool] = False
    """Whether the store outlives its process (a clean stop can checkpoint it)."""

    dirty: set[str]

    @abstractmethod
    def load(self, key: bytes, record: Record) -> None:
        """Put a changelog record as it is (a restore): not dirty, already published."""

    def load_many(self, records: Sequence[tuple[bytes, Record]]) -> None:
        """`load` of a task's changelog records (distinct keys), as a restore does."""
        for key, record in records:
            self.load(key, record)

    @abstractmethod
    def flush(self, clock: int | None) -> list[tuple[str, Record | None]]:
        """End of a batch: the changelog records of the dirty keys (None = deleted), in
        any order; `dirty` is cleared and the records are published with `clock`."""

    @abstractmethod
    def published(self, ticket_id: str) -> tuple[Record | None, int | None]:
        """(the ticket's record as of the last flush or None, that flush's clock); safe
        from any thread."""

    @abstractmethod
    def publish_clock(self, clock: int | None) -> None:
        """Set the published clock without a flush (after a restore)."""

    def close(self) -> None:
        """Release resources (idempotent); a persistent store keeps its files."""

    def destroy(self) -> None:
        """Release resources and delete whatever the store keeps on disk."""
        self.close()


class MemoryTicketStore(dict[str, TicketState], TicketStore):
    """Ticket states as objects in a dict, plus their published records."""

    def __init__(self) -> None:
        super().__init__()
        self.dirty: set[str] = set()
        self._published: dict[str, Record] = {}
        self._clock: int | None = None
        self._lock = threading.Lock()

    def __setitem__(self, key: str, value: TicketState) -> None:
        super().__setitem__(key, value)
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.dirty.add(key)

    def load(self, key: bytes, record: Record) -> None:
        state = decode_state(record)
        dict.__setitem__(self, state.ticket_id, state)
        with self._lock:
            self._published[state.ticket_id] = record

    def flush(self, clock: int | None) -> list[tuple[str, Record | None]]:
        changes: list[tuple[str, Record | None]] = []
        for key in self.dirty:
            state = self.get(key)
            changes.append((key, None if state is None else encode_state(state)))
        self.dirty.clear()
        with self._lock:
            for key, record in changes:
                if record is None:
                    self._published.pop(key, None)
                else:
                    self._published[key] = record
            self._clock = clock
        return changes

    def published(self, ticket_id: str) -> tuple[Record | None, int | None]:
        with self._lock:
            return self._published.get(ticket_id), self._clock

    def publish_clock(self, clock: int | None) -> None:
        with self._lock:
            self._clock = clock


class _Values(ValuesView[TicketState]):
    """`values()` of a `RocksTicketStore`: decoded from one pass over its records."""

    def __init__(self, store: RocksTicketStore) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[TicketState]:
        for _, state in self._store._iter_items():
            yield state


class _Items(ItemsView[str, TicketState]):
    """`items()` of a `RocksTicketStore`."""

    def __init__(self, store: RocksTicketStore) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[tuple[str, TicketState]]:
        return self._store._iter_items()


# The RocksDB store lives in a module of its own, which the shipped build compiles with
# mypyc (setup.py). It subclasses `TicketStore`, so this module cannot import it while
# being imported: `store.RocksTicketStore` is looked up on first use (PEP 562).
if TYPE_CHECKING:
    from slaclock.processors.live.rocks_store import RocksTicketStore as RocksTicketStore


def __getattr__(name: str) -> object:
    if name == "RocksTicketStore":
        from slaclock.processors.live.rocks_store import RocksTicketStore

        return RocksTicketStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
