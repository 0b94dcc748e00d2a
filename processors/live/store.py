"""Stage 1's ticket store on disk: one RocksDB database (rocksdict) per task.

`RocksTicketStore` is the `SLACLOCK_STORE=rocksdb` counterpart of the in-memory
`TrackingStore`: a mutable mapping ticket id -> `TicketState` that remembers the keys
written or deleted since the last flush (`dirty`), with the states serialized as the
changelog has them (`orjson.dumps(state.to_record())`) in a raw-mode RocksDB, so open
tickets live on disk, not in RAM.

The changelog stays the source of truth: a task's database is wiped and refilled from its
changelog on (re)assignment (`fresh` + `load`), so nothing on disk is trusted after a
crash; only a database checkpointed by a clean stop is reused as it is (see
`processors.live.checkpoint`).

A small write-through cache keeps the most recently used states as objects. It is correct
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
from collections import OrderedDict
from collections.abc import ItemsView, Iterator, MutableMapping, ValuesView
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from processors.engine.ticket import TicketState

if TYPE_CHECKING:
    from rocksdict import Rdict

DEFAULT_CACHE_SIZE = 1024


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


class RocksTicketStore(MutableMapping[str, TicketState]):
    """Ticket states in a RocksDB at `path`; see the module docstring."""

    def __init__(self, path: Path, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        """Open (or create) the database at `path`, keeping what it holds."""
        self.path = path
        self.cache_size = cache_size
        self.dirty: set[str] = set()
        self._cache: OrderedDict[str, TicketState] = OrderedDict()
        self._lock = threading.Lock()
        self._db: Rdict | None = self._open()
        self._count = sum(1 for _ in self._db.keys())  # noqa: SIM118 - Rdict is no iterable

    @classmethod
    def fresh(cls, path: Path, cache_size: int = DEFAULT_CACHE_SIZE) -> RocksTicketStore:
        """An empty store at `path`: whatever a previous run left there is deleted first."""
        remove_tree(path)
        return cls(path, cache_size)

    def _open(self) -> Rdict:
        from rocksdict import Options, Rdict

        self.path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        return Rdict(str(self.path), options)

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

    # -- the mapping ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> TicketState:
        with self._lock:
            state = self._cache.get(key)
            if state is not None:
                self._cache.move_to_end(key)
                return state
            if self._db is None:  # a closed store holds nothing (an HTTP read may race it)
                raise KeyError(key)
            record = self._db.get(key.encode())
            if record is None:
                raise KeyError(key)
            state = _decode(record)
            self._remember(key, state)
            return state

    def __setitem__(self, key: str, value: TicketState) -> None:
        record = orjson.dumps(value.to_record())
        raw_key = key.encode()
        with self._lock:
            db = self._writable()
            if key not in self._cache and raw_key not in db:
                self._count += 1
            db[raw_key] = record
            self._remember(key, value)
            self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        raw_key = key.encode()
        with self._lock:
            db = self._writable()
            if key not in self._cache and raw_key not in db:
                raise KeyError(key)
            del db[raw_key]
            self._cache.pop(key, None)
            self._count -= 1
            self.dirty.add(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._lock:
            if key in self._cache:
                return True
            return self._db is not None and key.encode() in self._db

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        db = self._db
        if db is None:
            return
        for raw_key in db.keys():  # noqa: SIM118 - Rdict is no iterable
            yield _text(raw_key)

    def values(self) -> ValuesView[TicketState]:
        """All states, decoded from one pass over the database (`rebuild_timers`)."""
        return _Values(self)

    def items(self) -> ItemsView[str, TicketState]:
        return _Items(self)

    def _iter_items(self) -> Iterator[tuple[str, TicketState]]:
        db = self._db
        if db is None:
            return
        for raw_key, record in db.items():
            yield _text(raw_key), _decode(record)

    # -- restore and lifecycle --------------------------------------------------------------

    def load(self, key: bytes, record: bytes) -> None:
        """Put a changelog record as it is (restore): not dirty, it is already logged."""
        with self._lock:
            db = self._writable()
            if key not in db:
                self._count += 1
            db[key] = record
            self._cache.pop(key.decode(), None)

    def wipe(self) -> None:
        """Empty the store (a local reset, not deletions to log: `dirty` is cleared too)."""
        with self._lock:
            self._close_db()
            remove_tree(self.path)
            self._db = self._open()
            self._count = 0
            self.dirty.clear()

    def close(self) -> None:
        """Close the database (idempotent); its files stay. Reads then find nothing."""
        with self._lock:
            self._close_db()

    def destroy(self) -> None:
        """Close the database and delete its directory (the task was revoked)."""
        with self._lock:
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
