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

In `RocksTicketStore`, a small write-through cache keeps the most recently used states as objects. It is correct
because `TicketStage` re-assigns `store[id] = state` after every change to a state it got
from the store: the cached object and the database then agree. The cache is bounded, so
a state that was never re-assigned could differ from the database only while cached;
`TicketStage` never does that. One lock guards the cache and the database handle: the
HTTP server's threads read (`get`) while the stage thread writes.

This module imports rocksdict (a dependency of the package) only when a database is
opened, so the memory store and the replay never load it.
"""

from __future__ import annotations

import shutil
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import ItemsView, Iterator, MutableMapping, Sequence, ValuesView
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import orjson

from slaclock.processors.engine.ticket import TicketState

if TYPE_CHECKING:
    from rocksdict import Rdict, WriteBatch

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


def _decode(record: bytes) -> TicketState:
    return TicketState.from_record(orjson.loads(record))


def _text(raw_key: object) -> str:
    assert isinstance(raw_key, bytes)  # a raw-mode database has bytes keys
    return raw_key.decode()


Record = bytes
"""A ticket state as the changelog holds it: `orjson.dumps(state.to_record())`."""


def encode_state(state: TicketState) -> Record:
    return orjson.dumps(state.to_record())


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
        state = TicketState.from_record(orjson.loads(record))
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


class RocksTicketStore(TicketStore):
    """Ticket states in a RocksDB at `path`; see the module docstring.

    Writes of the open batch are held in `_pending` (ticket id -> state object, None =
    deleted), serialised at `flush` (once per ticket per batch: the state as the batch left
    it) and written to the database in one write batch: readers on other threads
    (`published`) read the database, so they see the state as of the last flush; the stage
    thread's reads look at `_pending` first. `close` writes what is pending.
    """

    persistent: ClassVar[bool] = True

    def __init__(self, path: Path, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        """Open (or create) the database at `path`, keeping what it holds."""
        self.path = path
        self.cache_size = cache_size
        self.dirty: set[str] = set()
        self._cache: OrderedDict[str, TicketState] = OrderedDict()
        self._pending: dict[str, TicketState | None] = {}  # the open batch's writes
        self._clock: int | None = None
        self._lock = threading.Lock()
        self._db: Rdict | None = self._open()
        self._count = sum(1 for _ in self._db.keys())  # noqa: SIM118 - Rdict is no iterable

    @classmethod
    def fresh(cls, path: Path, cache_size: int = DEFAULT_CACHE_SIZE) -> RocksTicketStore:
        """An empty store at `path`: whatever a previous run left there is deleted first."""
        remove_tree(path)
        return cls(path, cache_size)

    def _open(self) -> Rdict:
        """The database, written without a write-ahead log: after a crash the database is
        wiped and refilled from the changelog anyway (the module docstring), so a log
        would only be written, never read; a clean `close` flushes the memtables to disk
        (a checkpointed store is reused as it is). About 1 µs of CPU less per state
        written, and a restore's bulk writes are cheaper too."""
        from rocksdict import Options, Rdict, WriteOptions

        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = Rdict(str(self.path), options)
        unlogged = WriteOptions()
        # a property (rocksdict's stub declares a method that does not exist)
        unlogged.disable_wal = True  # type: ignore[method-assign, assignment]
        db.set_write_options(unlogged)
        return db

    def _writable(self) -> Rdict:
        if self._db is None:
            raise StoreClosedError(f"the ticket store at {self.path} is closed")
        return self._db

    def _remember(self, key: str, state: TicketState) -> None:
        if self.cache_size <= 0:
            return
        self._cache[key] = state
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _exists(self, key: str, db: Rdict) -> bool:
        if key in self._pending:
            return self._pending[key] is not None
        return key in self._cache or key.encode() in db

    # -- the mapping ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> TicketState:
        state = self.get(key)
        if state is None:
            raise KeyError(key)
        return state

    def get(  # type: ignore[override]
        self, key: str, default: TicketState | None = None
    ) -> TicketState | None:
        """The state, or `default`: without the KeyError that `Mapping.get` would raise
        and catch for every new ticket.

        The open batch's writes first, then the cache, then the database. A cache hit
        does not move the state to the cache's recent end: the flush does, once per
        ticket per batch, for every state the batch wrote (what the stage reads, it
        writes back), which keeps the cache's order without work per event.
        """
        with self._lock:
            pending = self._pending
            if key in pending:
                state = pending[key]
                return default if state is None else state
            state = self._cache.get(key)
            if state is not None:
                return state
            if self._db is None:  # a closed store holds nothing (an HTTP read may race it)
                return default
            record = self._db.get(key.encode())
            if record is None:
                return default
            state = _decode(record)
            self._remember(key, state)
            return state

    def __setitem__(self, key: str, value: TicketState) -> None:
        with self._lock:
            db = self._writable()
            pending = self._pending
            if key in pending:
                if pending[key] is None:  # deleted in this batch
                    self._count += 1
            elif key not in self._cache and key.encode() not in db:
                self._count += 1
            pending[key] = value
            self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            db = self._writable()
            if not self._exists(key, db):
                raise KeyError(key)
            self._pending[key] = None
            self._cache.pop(key, None)
            self._count -= 1
            self.dirty.add(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._lock:
            return self._db is not None and self._exists(key, self._db)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        for key, _ in self._iter_records():
            yield key

    def values(self) -> ValuesView[TicketState]:
        """All states, decoded from one pass over the database (`rebuild_timers`)."""
        return _Values(self)

    def items(self) -> ItemsView[str, TicketState]:
        return _Items(self)

    def _iter_items(self) -> Iterator[tuple[str, TicketState]]:
        for key, record in self._iter_records():
            yield key, _decode(record)

    def _iter_records(self) -> Iterator[tuple[str, Record]]:
        """Every live record: the open batch's, then the database's it does not replace."""
        db = self._db
        if db is None:
            return
        pending = dict(self._pending)
        for key, state in pending.items():
            if state is not None:
                yield key, encode_state(state)
        for raw_key, record in db.items():
            key = _text(raw_key)
            if key not in pending:
                yield key, record

    # -- batches and readers ----------------------------------------------------------------

    def flush(self, clock: int | None) -> list[tuple[str, Record | None]]:
        with self._lock:
            changes = self._write_pending()
            self.dirty.clear()
            self._clock = clock
        return changes

    def _write_pending(self) -> list[tuple[str, Record | None]]:
        """The open batch's writes, serialised, into the database in one write batch
        (lock held); returns them as changelog records. The states written go to the
        cache's recent end (deleted ones leave it)."""
        changes: list[tuple[str, Record | None]] = []
        cache = self._cache
        for key, state in self._pending.items():
            if state is None:
                changes.append((key, None))
                cache.pop(key, None)
            else:
                changes.append((key, encode_state(state)))
                if self.cache_size > 0:
                    cache[key] = state
                    cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        self._pending.clear()
        if not changes or self._db is None:
            return changes
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, record in changes:
            if record is None:
                batch.delete(key.encode())
            else:
                batch.put(key.encode(), record)
        self._db.write(batch)
        return changes

    def published(self, ticket_id: str) -> tuple[Record | None, int | None]:
        with self._lock:
            if self._db is None:
                return None, self._clock
            return self._db.get(ticket_id.encode()), self._clock

    def publish_clock(self, clock: int | None) -> None:
        with self._lock:
            self._clock = clock

    # -- restore and lifecycle --------------------------------------------------------------

    def load(self, key: bytes, record: bytes) -> None:
        """Put a changelog record as it is (restore): not dirty, it is already logged."""
        with self._lock:
            db = self._writable()
            text = key.decode()
            if not self._exists(text, db):
                self._count += 1
            self._pending.pop(text, None)
            db[key] = record
            self._cache.pop(text, None)

    def load_many(self, records: Sequence[tuple[bytes, Record]]) -> None:
        """A restore into an empty store: the records (distinct keys) go into the
        database in a few large write batches, with no lookup per record."""
        with self._lock:
            empty = self._count == 0 and not self._pending
        if not empty:
            super().load_many(records)
            return
        from rocksdict import WriteBatch

        batch, size, count = WriteBatch(raw_mode=True), 0, 0
        for key, record in records:
            batch.put(key, record)
            size += len(key) + len(record)
            count += 1
            if size >= LOAD_BATCH_BYTES:
                self._write_loaded(batch, count)
                batch, size, count = WriteBatch(raw_mode=True), 0, 0
        self._write_loaded(batch, count)

    def _write_loaded(self, batch: WriteBatch, count: int) -> None:
        with self._lock:
            self._writable().write(batch)
            self._count += count

    def wipe(self) -> None:
        """Empty the store (a local reset, not deletions to log: `dirty` is cleared too)."""
        with self._lock:
            self._pending.clear()
            self._close_db()
            remove_tree(self.path)
            self._db = self._open()
            self._count = 0
            self.dirty.clear()

    def close(self) -> None:
        """Write what is pending and close the database (idempotent); its files stay.
        Reads then find nothing."""
        with self._lock:
            self._write_pending()
            if self._db is not None:
                self._db.flush()  # no write-ahead log: the memtables go to disk now
            self._close_db()

    def destroy(self) -> None:
        """Close the database and delete its directory (the task was revoked)."""
        with self._lock:
            self._pending.clear()
            self._close_db()
            remove_tree(self.path)

    def _close_db(self) -> None:
        db, self._db = self._db, None
        self._cache.clear()
        self._count = 0
        if db is not None:
            db.close()


class _Values(ValuesView[TicketState]):
    def __init__(self, store: RocksTicketStore) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[TicketState]:
        for _, state in self._store._iter_items():
            yield state


class _Items(ItemsView[str, TicketState]):
    def __init__(self, store: RocksTicketStore) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[tuple[str, TicketState]]:
        return self._store._iter_items()
