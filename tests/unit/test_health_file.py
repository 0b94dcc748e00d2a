"""The worker's health file and `slaclock worker --health`, the container healthcheck that
needs no HTTP port."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slaclock.processors.live.health_file import (
    MAX_AGE_S,
    HealthFile,
    check_health_file,
    health_path,
)
from slaclock.processors.settings import load_settings
from tests.unit.test_cli_errors import run_cli

NOW = 1_800_000_000.0


def live() -> tuple[bool, dict[str, Any]]:
    return True, {"threads": {"tickets": True, "ledger": True, "ticker": True}}


def failing() -> tuple[bool, dict[str, Any]]:
    return False, {"threads": {"tickets": False, "ledger": True, "ticker": True}}


def test_a_fresh_ok_report_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "w" / "health.json"
    HealthFile(live, path, wall_clock=lambda: NOW).write_once()
    assert check_health_file(path, now=NOW + 5)[0]


def test_a_report_older_than_the_limit_is_a_hung_worker(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    HealthFile(live, path, wall_clock=lambda: NOW).write_once()
    ok, why = check_health_file(path, now=NOW + MAX_AGE_S + 1)
    assert not ok and "hung or stopped" in why


def test_a_failing_worker_is_unhealthy_and_says_which_thread(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    HealthFile(failing, path, wall_clock=lambda: NOW).write_once()
    ok, why = check_health_file(path, now=NOW)
    assert not ok and '"tickets": false' in why


def test_no_file_means_no_worker_and_names_the_settings(tmp_path: Path) -> None:
    ok, why = check_health_file(tmp_path / "health.json")
    assert not ok and "SLACLOCK_STATE_DIR" in why


def test_nothing_is_written_until_the_worker_is_first_live(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    answers = iter([failing(), failing(), live()])
    heartbeat = HealthFile(lambda: next(answers), path)
    assert not heartbeat.write_once(only_if_ok=True) and not path.exists()
    assert not heartbeat.write_once(only_if_ok=True) and not path.exists()
    assert heartbeat.write_once(only_if_ok=True) and check_health_file(path)[0]


def test_stopping_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    heartbeat = HealthFile(live, path, interval=60).start()
    heartbeat.stop()
    assert not path.exists()


def test_worker_health_command_reads_the_file_of_the_worker_with_the_same_settings(
    tmp_path: Path,
) -> None:
    env = {
        "SLACLOCK_STATE_DIR": str(tmp_path),
        "SLACLOCK_APP_ID": "app",
        "SLACLOCK_INSTANCE_ID": "w1",
        "SLACLOCK_HTTP_PORT": "0",
    }
    missing = run_cli("worker", "--health", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("unhealthy: no health file")
    path = health_path(load_settings(state_dir=tmp_path, app_id="app", instance_id="w1"))
    HealthFile(live, path).write_once()
    healthy = run_cli("worker", "--health", env=env, cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    path.write_text(json.dumps({"ok": False, "at": 0}))
    assert run_cli("worker", "--health", env=env, cwd=tmp_path).returncode == 1
