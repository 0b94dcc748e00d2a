"""Mistakes a user makes at the command line get one line that says what to fix, no
traceback, and the documented exit status. The CLI runs as a user runs it: a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "policy.yaml"
EVENTS = ROOT / "examples" / "events.jsonl"
SLACLOCK = str(Path(sys.executable).parent / "slaclock")


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACLOCK_")}
    return subprocess.run(
        [SLACLOCK, *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd,
        timeout=60,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "╭" not in stderr, stderr
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def replay(events: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("replay", "--policy", str(POLICY), "--events", str(events), *extra)


def test_replay_of_a_yaml_file_exits_1_and_says_line_1_is_yaml(tmp_path: Path) -> None:
    events = tmp_path / "events.yaml"
    events.write_text("events:\n  - ticket_id: T-1\n    type: ticket.created\n")
    result = replay(events)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "line 1 is YAML, not JSON Lines" in line
    assert str(events) in line


def test_replay_of_a_pretty_printed_json_array_says_it_is_one_array(tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    objects = [json.loads(line) for line in EVENTS.read_text().splitlines()[:2]]
    events.write_text(json.dumps(objects, indent=2))
    result = replay(events)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "it is one JSON array" in line


def test_replay_where_every_event_is_refused_names_the_reason(tmp_path: Path) -> None:
    events = tmp_path / "replies.jsonl"
    events.write_text(
        '{"event_id":"e1","type":"ticket.agent_replied","ticket_id":"T-9",'
        '"occurred_at":"2026-03-02T09:00:00Z"}\n'
    )
    result = replay(events)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "every line was rejected (UnknownTicket 1)" in line


def test_replay_with_some_valid_events_exits_0(tmp_path: Path) -> None:
    result = replay(EVENTS, "--out", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "rejected 2" in result.stderr


def test_replay_to_an_unwritable_out_names_the_path_and_the_flag(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "out.jsonl"
    result = replay(EVENTS, "--out", str(target))
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert f"cannot write --out {target}" in line and "No such file or directory" in line


def test_replay_of_a_directory_names_the_flag(tmp_path: Path) -> None:
    result = replay(tmp_path)
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert f"cannot read --events {tmp_path}: Is a directory" in line


def test_worker_with_its_http_port_taken_names_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "worker",
            env={
                "SLACLOCK_HTTP_HOST": "127.0.0.1",
                "SLACLOCK_HTTP_PORT": str(port),
                "SLACLOCK_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                "SLACLOCK_POLICY_PATH": str(POLICY),
            },
            cwd=tmp_path,
        )
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert f"127.0.0.1:{port} is in use" in line and "SLACLOCK_HTTP_PORT" in line


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("SLACLOCK_BOOTSTRAP_SERVER", "SLACLOCK_BOOTSTRAP_SERVERS"),
        ("SLACLOCK_GRAC", "SLACLOCK_GRACE"),
    ],
)
def test_a_misspelled_setting_is_warned_about_with_a_suggestion(
    tmp_path: Path, name: str, suggestion: str
) -> None:
    result = run_cli("policy", "check", str(POLICY), env={name: "x"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if name in line]
    assert warning == [f"warning: unknown setting {name} is ignored; did you mean {suggestion}?"], (
        result.stderr
    )


def test_a_misspelled_setting_in_a_dotenv_file_is_warned_about_by_replay(tmp_path: Path) -> None:
    """The settings are checked only when a `SLACLOCK_*` name or a `.env` file is there
    (start-up): a name that is only in `.env` is still found."""
    (tmp_path / ".env").write_text("SLACLOCK_GRAC=5\n")
    result = run_cli("replay", "--policy", str(POLICY), "--events", str(EVENTS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: unknown setting SLACLOCK_GRAC is ignored; did you mean SLACLOCK_GRACE?"
        in result.stderr.splitlines()
    ), result.stderr


@pytest.mark.parametrize("command", ["report", "whatif"])
def test_report_without_matplotlib_names_the_extra_in_one_line(
    command: str, tmp_path: Path
) -> None:
    """The worker image leaves matplotlib out (the `reports` extra): the chart commands say
    so and how to get it."""
    no_matplotlib = "import sys; sys.modules['matplotlib'] = None; "
    args = {
        "report": ["--policy", str(POLICY), "--outputs", str(EVENTS)],
        "whatif": ["--events", str(EVENTS), "--policy", str(POLICY), "--policy", str(POLICY)],
    }[command]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACLOCK_")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            no_matplotlib + "from slaclock.cli import main; main()",
            command,
            *args,
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "matplotlib" in line and "pip install 'slaclock[reports]'" in line
    assert "--build-arg EXTRAS=reports" in line
    assert not list(tmp_path.iterdir())
