"""`RocksTicketStore`: stage 1's ticket states in a RocksDB (see processors.live.store).

A module of its own so that the shipped build compiles it with mypyc (setup.py): the
stage reads and writes a state several times per event. Its class is one of mypyc's
non-native classes (`native_class=False`): it subclasses `TicketStore`, a
`MutableMapping`, which a native class cannot; its methods are compiled all the same.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import ItemsView, Iterator, Sequence, ValuesView
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from mypy_extensions import mypyc_attr

from slaclock.processors.engine.ticket import TicketState
from slaclock.processors.live.state_records import Record, decode_state, encode_state
from slaclock.processors.live.store import (
    DEFAULT_CACHE_SIZE,
    LOAD_BATCH_BYTES,
    StoreClosedError,
    TicketStore,
    _Items,
    _Values,
    key_text,
    remove_tree,
)

if TYPE_CHECKING:
    from rocksdict import Rdict, WriteBatch


@mypyc_attr(native_class=False)
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
            state = decode_state(record)
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
            yield key, decode_state(record)

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
            key = key_text(raw_key)
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
