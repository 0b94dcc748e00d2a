"""Checkpoint files of stage 1's RocksDB stores (`processors.live.checkpoint`)."""

from __future__ import annotations

from pathlib import Path

from slaclock.processors.live.checkpoint import (
    StoreCheckpoint,
    store_path,
    take_checkpoints,
    write_checkpoint,
)

CHECKPOINT = StoreCheckpoint(
    changelog_offset=1234,
    meta={"clock": 1_772_445_600_000_000, "stream_time": None, "processed_offset": 99},
    timers={"T1": 1_772_445_700_000_000, "T2": 1_772_445_800_000_000},
)


def test_a_checkpoint_round_trips_through_its_file(tmp_path: Path) -> None:
    store_path(tmp_path, 3).mkdir()
    write_checkpoint(tmp_path, 3, CHECKPOINT)
    assert take_checkpoints(tmp_path) == {3: CHECKPOINT}


def test_taking_checkpoints_consumes_them(tmp_path: Path) -> None:
    store_path(tmp_path, 0).mkdir()
    write_checkpoint(tmp_path, 0, CHECKPOINT)
    assert take_checkpoints(tmp_path) == {0: CHECKPOINT}
    assert take_checkpoints(tmp_path) == {}
    assert store_path(tmp_path, 0).exists() is False  # without its checkpoint: deleted


def test_stores_without_a_checkpoint_are_deleted(tmp_path: Path) -> None:
    for partition in (0, 1):
        store_path(tmp_path, partition).mkdir()
    write_checkpoint(tmp_path, 1, CHECKPOINT)
    assert set(take_checkpoints(tmp_path)) == {1}
    assert not store_path(tmp_path, 0).exists()
    assert store_path(tmp_path, 1).is_dir()


def test_a_checkpoint_without_its_store_is_dropped(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 2, CHECKPOINT)
    assert take_checkpoints(tmp_path) == {}
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_checkpoint_means_a_full_restore(tmp_path: Path) -> None:
    store_path(tmp_path, 0).mkdir()
    (tmp_path / "tickets-0.checkpoint").write_bytes(b"{half a file")
    assert take_checkpoints(tmp_path) == {}
    assert list(tmp_path.iterdir()) == []


def test_no_state_directory_means_no_checkpoints(tmp_path: Path) -> None:
    assert take_checkpoints(tmp_path / "missing") == {}
