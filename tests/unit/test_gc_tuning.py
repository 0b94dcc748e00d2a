"""After start-up, replay (and the worker) collect cycles rarely and never rescan start-up
objects (processors/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slaclock.cli import app
from slaclock.processors.gc_tuning import THRESHOLDS, tune_gc

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_gc() -> Iterator[None]:
    before = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("default_gc")
def test_tune_gc_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    tune_gc()
    assert gc.get_threshold() == THRESHOLDS
    assert gc.get_freeze_count() > 10_000  # modules, classes, the interpreter's own objects


@pytest.mark.usefixtures("default_gc")
def test_replay_tunes_the_collector_before_it_reads_events(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "replay",
            "--policy",
            str(ROOT / "examples" / "policy.yaml"),
            "--events",
            str(ROOT / "examples" / "events.jsonl"),
            "--out",
            str(tmp_path / "out.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert gc.get_threshold() == THRESHOLDS
