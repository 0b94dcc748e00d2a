"""`RocksTicketStore`: a mutable mapping of ticket states on disk with the `dirty` contract of
the in-memory `TrackingStore`, and the worker's choice between them (`SLACLOCK_STORE`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TopicPartition

from slaclock.processors.engine.instants import to_us
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import Output, TicketEngine, TicketState
from slaclock.processors.intake import decode_event
from slaclock.processors.live.records import META_KEY
from slaclock.processors.live.store import RocksTicketStore, StoreClosedError
from slaclock.processors.live.tickets import TicketProcessor, TicketStore, TrackingStore
from slaclock.processors.settings import load_settings
from slaclock.schemas.rejection import Rejected
from slaclock.workload import WorkloadShape, ticket_events
from tests.core.builders import (
    MON_0900_UTC,
    Harness,
    agent_reply,
    created,
    customer_reply,
    make_policy,
    priority,
    status,
)

CACHE_SIZES = [0, 2, 1024]  # no cache, one that evicts all the time, one that holds all


def real_states() -> dict[str, TicketState]:
    """Ticket states as the engine leaves them: open, paused, replied, re-prioritised, closed."""
    harness = Harness().feed(
        created(MON_0900_UTC, ticket="T1", priority="urgent"),
        agent_reply("2026-03-02T09:05:00Z", ticket="T1"),
        customer_reply("2026-03-02T09:10:00Z", ticket="T1"),
        created(MON_0900_UTC, ticket="T2", customer="globex", priority="normal"),
        status("2026-03-02T10:00:00Z", "pending", ticket="T2"),
        created("2026-03-02T09:30:00Z", ticket="T3", priority="high"),
        priority("2026-03-02T09:45:00Z", "urgent", ticket="T3"),
        created("2026-03-02T09:40:00Z", ticket="T4/ü", priority="low"),
        status("2026-03-02T11:00:00Z", "solved", ticket="T4/ü"),
    )
    harness.until("2026-03-02T12:00:00Z")
    states = dict(harness.replayer.store)
    assert len(states) == 4
    return states


def record(state: TicketState | None) -> bytes | None:
    return None if state is None else orjson.dumps(state.to_record())


@pytest.fixture(params=CACHE_SIZES, ids=lambda size: f"cache{size}")
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RocksTicketStore]:
    rocks = RocksTicketStore.fresh(tmp_path / "tickets-0", cache_size=request.param)
    yield rocks
    rocks.close()


# -- the mapping ------------------------------------------------------------------------------


def test_an_empty_store_is_an_empty_mapping(store: RocksTicketStore) -> None:
    assert len(store) == 0
    assert list(store) == [] and list(store.values()) == [] and list(store.items()) == []
    assert store.get("T1") is None
    assert "T1" not in store
    assert 1 not in store  # type: ignore[comparison-overlap]
    with pytest.raises(KeyError):
        store["T1"]
    with pytest.raises(KeyError):
        del store["T1"]
    assert store.dirty == set()


def test_set_get_overwrite_and_delete_like_a_dict(store: RocksTicketStore) -> None:
    states = real_states()
    for ticket_id, state in states.items():
        store[ticket_id] = state
    assert len(store) == 4
    assert sorted(store) == sorted(states)
    for ticket_id, state in states.items():
        assert ticket_id in store
        assert record(store[ticket_id]) == record(state)
        assert record(store.get(ticket_id)) == record(state)

    store["T1"] = states["T3"]  # overwrite: same count
    assert len(store) == 4
    assert record(store["T1"]) == record(states["T3"])

    del store["T2"]
    assert len(store) == 3
    assert "T2" not in store and store.get("T2") is None
    with pytest.raises(KeyError):
        del store["T2"]
    assert len(store) == 3
    assert store.pop("T3").ticket_id == "T3"  # MutableMapping's mixins work on top
    assert len(store) == 2


def test_dirty_holds_the_keys_written_or_deleted_since_the_last_flush(
    store: RocksTicketStore,
) -> None:
    states = real_states()
    memory = TrackingStore()
    for target in (store, memory):
        for ticket_id, state in states.items():
            target[ticket_id] = state
        target.dirty.clear()  # flushed
        target["T1"] = states["T1"]
        del target["T2"]
        with pytest.raises(KeyError):
            del target["T-missing"]  # a failed delete marks nothing
    assert store.dirty == memory.dirty == {"T1", "T2"}
    # What flush_state sends to the changelog is the same bytes for both stores.
    assert {k: record(store.get(k)) for k in store.dirty} == {
        k: record(memory.get(k)) for k in memory.dirty
    }


def test_values_and_items_round_trip_real_states(store: RocksTicketStore) -> None:
    states = real_states()
    for ticket_id, state in states.items():
        store[ticket_id] = state
    assert sorted(record(s) or b"" for s in store.values()) == sorted(
        record(s) or b"" for s in states.values()
    )
    assert {k: record(s) for k, s in store.items()} == {k: record(s) for k, s in states.items()}
    assert {state.ticket_id for state in store.values()} == set(states)


def test_a_state_changed_after_get_is_stored_when_reassigned(
    store: RocksTicketStore, tmp_path: Path
) -> None:
    """The stage's pattern: get, change in place, `store[id] = state`."""
    store["T1"] = real_states()["T1"]
    state = store["T1"]
    state.assignee = "agent-7"
    store["T1"] = state
    assert store["T1"].assignee == "agent-7"
    store.close()
    reopened = RocksTicketStore(store.path)
    try:
        assert reopened["T1"].assignee == "agent-7"
    finally:
        reopened.close()


@pytest.mark.parametrize("cache_size", CACHE_SIZES)
def test_a_stage_on_rocksdb_behaves_as_on_the_memory_store(cache_size: int, tmp_path: Path) -> None:
    """Same events, timers and purges of closed tickets: same outputs, same changelog."""
    policy = make_policy()
    retention = 3600 * 1_000_000
    memory = TrackingStore()
    rocks = RocksTicketStore.fresh(tmp_path / "db", cache_size=cache_size)
    stages = [
        TicketStage(TicketEngine(policy), memory, 0, retention),
        TicketStage(TicketEngine(policy), rocks, 0, retention),
    ]
    shape = WorkloadShape(tickets=150, start=datetime(2026, 3, 2, 8, tzinfo=UTC), seed=3)
    outputs: list[list[Output]] = [[], []]
    changelogs: list[dict[str, bytes | None]] = [{}, {}]
    try:
        for n, event in enumerate(ticket_events(shape)):
            parsed = decode_event(orjson.dumps(event))
            for stage, out in zip(stages, outputs, strict=True):
                try:
                    out.extend(stage.on_event(parsed, to_us(parsed.occurred_at)))
                except Rejected:
                    out.append({"type": "rejected"})
            if n % 37 == 0:  # a flush, as flush_state does it
                targets: tuple[TicketStore, TicketStore] = (memory, rocks)
                for target, changelog in zip(targets, changelogs, strict=True):
                    for key in sorted(target.dirty):
                        changelog[key] = record(target.get(key))
                    target.dirty.clear()
        for stage, out in zip(stages, outputs, strict=True):
            out.extend(stage.advance_to(to_us(datetime(2026, 4, 1, tzinfo=UTC))))
        assert len(outputs[0]) > 300
        assert outputs[0] == outputs[1]
        assert stages[0].counters == stages[1].counters and stages[0].counters.purged > 50
        assert changelogs[0] == changelogs[1]
        assert len(memory) == len(rocks)
        assert {k: record(s) for k, s in memory.items()} == {k: record(s) for k, s in rocks.items()}
        stages[1].rebuild_timers()
        assert stages[1].pending_timers() == stages[0].pending_timers()
    finally:
        rocks.close()


# -- lifecycle --------------------------------------------------------------------------------


def test_it_survives_close_and_reopen(store: RocksTicketStore) -> None:
    states = real_states()
    for ticket_id, state in states.items():
        store[ticket_id] = state
    del store["T2"]
    store.close()
    reopened = RocksTicketStore(store.path)
    try:
        assert len(reopened) == 3
        assert reopened.dirty == set()
        assert {k: record(s) for k, s in reopened.items()} == {
            k: record(s) for k, s in states.items() if k != "T2"
        }
    finally:
        reopened.close()


def test_the_cache_keeps_the_states_the_last_flushes_wrote(tmp_path: Path) -> None:
    """A flush puts the batch's states at the cache's recent end (in the order the batch
    first wrote them); older ones are evicted and come back decoded from the database."""
    store = RocksTicketStore.fresh(tmp_path / "db", cache_size=2)
    try:
        states = real_states()
        for ticket_id in ("T1", "T2", "T3"):
            store[ticket_id] = states[ticket_id]
        store.flush(None)
        assert store.get("T2") is states["T2"] and store.get("T3") is states["T3"]
        evicted = store.get("T1")  # decoded again: a copy, as the database has it
        assert evicted is not states["T1"] and record(evicted) == record(states["T1"])
        store["T2"] = states["T2"]  # the next batch writes T2 only
        store.flush(None)
        assert store.get("T2") is states["T2"]
    finally:
        store.close()


def test_states_are_written_without_a_write_ahead_log(tmp_path: Path) -> None:
    """A store is wiped after a crash, so a write-ahead log would never be read: none is
    written (RocksDB keeps an empty log file); a clean close puts everything on disk."""
    store = RocksTicketStore.fresh(tmp_path / "db")
    states = real_states()
    for ticket_id, state in states.items():
        store[ticket_id] = state
    store.flush(None)
    logs = list((tmp_path / "db").glob("*.log"))
    assert logs and all(log.stat().st_size == 0 for log in logs)
    store.close()
    reopened = RocksTicketStore(tmp_path / "db")
    try:
        assert {k: record(s) for k, s in reopened.items()} == {
            k: record(s) for k, s in states.items()
        }
    finally:
        reopened.close()


def test_a_closed_store_reads_as_empty_and_refuses_writes(store: RocksTicketStore) -> None:
    store["T1"] = real_states()["T1"]
    store.close()
    store.close()  # idempotent
    assert store.get("T1") is None and "T1" not in store
    assert len(store) == 0 and list(store) == [] and list(store.values()) == []
    with pytest.raises(StoreClosedError):
        store["T1"] = real_states()["T1"]
    with pytest.raises(StoreClosedError):
        del store["T1"]


def test_wipe_empties_the_store_and_keeps_it_usable(store: RocksTicketStore) -> None:
    states = real_states()
    for ticket_id, state in states.items():
        store[ticket_id] = state
    store.wipe()
    assert len(store) == 0 and list(store) == [] and store.get("T1") is None
    assert store.dirty == set()  # a local reset, not deletions for the changelog
    store["T3"] = states["T3"]
    assert len(store) == 1 and record(store["T3"]) == record(states["T3"])


def test_fresh_deletes_what_a_previous_run_left(store: RocksTicketStore) -> None:
    store["T1"] = real_states()["T1"]
    store.close()
    again = RocksTicketStore.fresh(store.path)
    try:
        assert len(again) == 0 and again.get("T1") is None
    finally:
        again.close()


def test_destroy_deletes_the_directory(store: RocksTicketStore) -> None:
    store["T1"] = real_states()["T1"]
    assert store.path.is_dir()
    store.destroy()
    assert not store.path.exists()
    assert store.get("T1") is None


def test_load_puts_changelog_records_without_making_them_dirty(store: RocksTicketStore) -> None:
    states = real_states()
    for ticket_id, state in states.items():
        store.load(ticket_id.encode(), record(state) or b"")
    store.load(b"T1", record(states["T1"]) or b"")  # a repeated key counts once
    assert len(store) == 4 and store.dirty == set()
    assert {k: record(s) for k, s in store.items()} == {k: record(s) for k, s in states.items()}


def test_a_ticket_changed_by_many_events_of_a_batch_is_logged_once_as_the_batch_left_it(
    store: RocksTicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open batch holds states, not records: each is serialised once, at the flush,
    and the changelog gets the ticket's last state (what recovery must restore)."""
    from slaclock.processors.live import rocks_store as store_module

    encoded: list[str] = []
    encode = store_module.encode_state

    def counting(state: TicketState) -> bytes:
        encoded.append(state.ticket_id)
        return encode(state)

    monkeypatch.setattr(store_module, "encode_state", counting)
    state = real_states()["T1"]
    for assignee in ("agent-1", "agent-2", "agent-3"):
        state.assignee = assignee
        store["T1"] = state
    assert encoded == []
    state.assignee = "agent-4"  # in place, after the last assignment: still the batch's
    changes = store.flush(None)
    assert encoded == ["T1"]
    assert changes == [("T1", record(state))]
    assert (
        TicketState.from_record(orjson.loads(store.published("T1")[0] or b"")).assignee == "agent-4"
    )


@pytest.mark.parametrize("batch_bytes", [1, 1000, 64 * 1024])  # a batch per record .. one
def test_load_many_fills_an_empty_store_like_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_bytes: int
) -> None:
    monkeypatch.setattr("slaclock.processors.live.store.LOAD_BATCH_BYTES", batch_bytes)
    records = [(k.encode(), record(s) or b"") for k, s in real_states().items()]
    one_by_one = RocksTicketStore.fresh(tmp_path / "one")
    bulk = RocksTicketStore.fresh(tmp_path / "bulk")
    try:
        for key, value in records:
            one_by_one.load(key, value)
        bulk.load_many(records)
        assert len(bulk) == len(one_by_one) == 4 and bulk.dirty == set()
        assert dict(bulk.items()).keys() == dict(one_by_one.items()).keys()
        assert {k: record(s) for k, s in bulk.items()} == {
            k: record(s) for k, s in one_by_one.items()
        }
        bulk.load_many(records[:1])  # not empty any more: one by one, counted once
        assert len(bulk) == 4
    finally:
        one_by_one.close()
        bulk.close()


def test_reads_from_another_thread_while_the_stage_writes(store: RocksTicketStore) -> None:
    """The HTTP server reads `get` on its own threads; it sees a whole state or none."""
    states = list(real_states().values())
    stop = threading.Event()
    problems: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                for state in states:
                    found = store.get(state.ticket_id)
                    assert found is None or found.ticket_id == state.ticket_id
            except BaseException as error:  # reported below
                problems.append(error)
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(100):
            for state in states:
                store[state.ticket_id] = state
            for state in states[:2]:
                del store[state.ticket_id]
    finally:
        stop.set()
        reader.join(10)
    assert problems == []
    assert len(store) == 2


# -- the worker's choice ------------------------------------------------------------------------


def processor(tmp_path: Path, **settings: object) -> TicketProcessor:
    config = load_settings(
        bootstrap_servers="127.0.0.1:1",  # never contacted: no loop runs
        app_id="app",
        instance_id="w1",
        http_port=0,
        **settings,
    )
    return TicketProcessor(config, make_policy(), ledger_partitions=1)


def changelog_records() -> list[tuple[bytes, bytes]]:
    meta = {"clock": 1_772_445_600_000_000, "stream_time": None, "processed_offset": 9}
    records = [(k.encode(), record(s) or b"") for k, s in real_states().items()]
    return [*records, (META_KEY, orjson.dumps(meta))]


def test_rocksdb_is_the_default_store_and_memory_can_be_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACLOCK_STORE", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    assert load_settings().store == "rocksdb"
    tickets = processor(tmp_path, store="memory")
    try:
        tickets.restore_task(0, changelog_records())
        assert type(tickets.tasks[0].store) is TrackingStore
        assert len(tickets.tasks[0].store) == 4
    finally:
        tickets.close()


def test_rocksdb_store_per_task_restored_from_the_changelog_and_deleted_on_revoke(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    leftover = state_dir / "app" / "w1" / "tickets-7"
    leftover.mkdir(parents=True)  # from a killed predecessor
    tickets = processor(tmp_path, store="rocksdb", state_dir=state_dir)
    try:
        assert not leftover.exists()
        tickets.restore_task(0, changelog_records())
        task = tickets.tasks[0]
        assert isinstance(task.store, RocksTicketStore)
        assert task.store.path == state_dir / "app" / "w1" / "tickets-0"
        assert len(task.store) == 4 and task.processed_offset == 9
        assert task.stage.pending_timers() > 0  # rebuilt from values()
        assert list(tickets.flush_state()) == []  # restored records are not dirty

        state = task.store["T1"]
        state.assignee = "agent-7"
        task.store["T1"] = state
        del task.store["T2"]
        flushed = {key: value for _, key, value in tickets.flush_state()}
        assert flushed == {b"T1": record(state), b"T2": None}

        tickets.restore_task(0, changelog_records())  # again (a rewind): a fresh database
        assert tickets.tasks[0].store.get("T1").assignee is None  # type: ignore[union-attr]
        tickets.drop_task(0)
        assert not (state_dir / "app" / "w1" / "tickets-0").exists()
    finally:
        tickets.close()


class RecordingProducer:
    """Stands in for the loop's producer: keeps (partition, key, value) of each record."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes | None, bytes | None]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        headers: object = None,
    ) -> None:
        assert headers is None  # changelog records carry none
        self.records.append((partition, key, value))

    def flush(self, timeout: float = 0) -> int:
        return 0


def test_the_changelog_gets_flush_states_records_in_its_order(tmp_path: Path) -> None:
    """The loop produces a batch's changelog records through the compiled path
    (`produce_state_changes`): exactly what `flush_state` yields, in the same order."""

    records = changelog_records()  # once: the builders' event ids differ on each call

    def changed(name: str) -> TicketProcessor:
        tickets = processor(tmp_path, store="rocksdb", state_dir=tmp_path / name)
        for partition in (0, 1):
            tickets.restore_task(partition, records)
        for partition in (1, 0):
            store = tickets.tasks[partition].store
            state = store["T1"]
            state.assignee = f"agent-{partition}"
            store["T1"] = state
            del store["T2"]
            tickets.tasks[partition].meta_dirty = True
        return tickets

    yielded, produced = changed("a"), changed("b")
    recorder = RecordingProducer()
    produced.producer = recorder  # type: ignore[assignment]
    try:
        expected = list(yielded.flush_state())
        produced.produce_state_changes()
        assert [p for p, _, _ in expected] == [0, 0, 0, 1, 1, 1]  # states, then meta
        assert recorder.records == expected
    finally:
        yielded.close()
        produced.close()


def test_a_clean_stop_checkpoints_the_stores_and_the_next_start_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "state"
    instance_dir = state_dir / "app" / "w1"
    tickets = processor(tmp_path, store="rocksdb", state_dir=state_dir)
    tickets.restore_task(0, changelog_records())
    before = {k: record(s) for k, s in tickets.tasks[0].store.items()}
    timers = tickets.tasks[0].stage.scheduled_timers()
    assert timers
    # The changelog's end offset comes from the broker; none runs in this unit test.
    monkeypatch.setattr(TicketProcessor, "_changelog_end", lambda self, partition: 42)
    tickets.clean_exit = True  # as after the loop stopped on request
    tickets.close()
    assert (instance_dir / "tickets-0.checkpoint").is_file()

    again = processor(tmp_path, store="rocksdb", state_dir=state_dir)
    try:
        assert again.warm_offset(0) == 42
        assert not (instance_dir / "tickets-0.checkpoint").exists()  # consumed at start
        again.restore_task(0, [], warm=True)
        task = again.tasks[0]
        assert {k: record(s) for k, s in task.store.items()} == before
        assert task.stage.scheduled_timers() == timers
        assert task.processed_offset == 9 and task.stage.clock == 1_772_445_600_000_000
        assert again.warm_offset(0) is None  # used once
    finally:
        again.close()


def test_a_stop_by_an_error_leaves_no_checkpoint_and_the_store_is_deleted(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    tickets = processor(tmp_path, store="rocksdb", state_dir=state_dir)
    tickets.restore_task(0, changelog_records())
    tickets.close()  # clean_exit is False: the loop ended by an exception (or a kill)
    assert list((state_dir / "app" / "w1").glob("*.checkpoint")) == []

    again = processor(tmp_path, store="rocksdb", state_dir=state_dir)
    try:
        assert again.warm_offset(0) is None
        assert not (state_dir / "app" / "w1" / "tickets-0").exists()
    finally:
        again.close()


def _stopped_cleanly_with_a_local_edit(tmp_path: Path, state_dir: Path) -> None:
    """A worker that restored task 0, changed T1 on disk only, and stopped cleanly with the
    changelog's end at offset 5."""
    tickets = processor(tmp_path, store="rocksdb", state_dir=state_dir)
    tickets.restore_task(0, changelog_records())
    store = tickets.tasks[0].store
    state = store["T1"]
    state.assignee = "local-only"
    store["T1"] = state  # in the database, never in the changelog
    tickets.clean_exit = True
    tickets._changelog_end = lambda partition: 5  # type: ignore[method-assign]
    tickets.close()


@pytest.mark.parametrize(("changelog_end", "warm"), [(5, True), (6, False)])
def test_a_checkpoint_is_trusted_only_while_the_changelog_ends_where_it_did(
    tmp_path: Path, changelog_end: int, warm: bool
) -> None:
    """On assignment the loop compares the checkpoint with the changelog's end: equal, the
    local store is reused as it is; moved on (someone else processed the partition), it is
    replaced by a full restore. The broker's answers are stand-ins in this unit test; the
    Kafka tier runs the warm path against the real broker."""
    state_dir = tmp_path / "state"
    _stopped_cleanly_with_a_local_edit(tmp_path, state_dir)
    again = processor(tmp_path, store="rocksdb", state_dir=state_dir)
    again._changelog_end = lambda partition: changelog_end  # type: ignore[method-assign]
    again._read_changelog = lambda partition: changelog_records()  # type: ignore[method-assign]
    try:
        again._on_assign(again.consumer, [TopicPartition(again.settings.topic_events, 0)])
        assignee = again.tasks[0].store.get("T1").assignee  # type: ignore[union-attr]
        assert assignee == ("local-only" if warm else None)
        assert again.warm_offset(0) is None  # used or dropped: never twice
    finally:
        again.close()
