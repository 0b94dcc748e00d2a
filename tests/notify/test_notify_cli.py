"""`slaclock notify` refuses an invalid routing file with every problem listed, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.notify.harness import SLACLOCK

BROKEN = """\
targets:
  hook: {kind: webhook, url: 'ftp://nope', secret_env: HOOK_SECRET}
  chat: {kind: slack}
  pager: {kind: pagerduty, routing_key_env: PD_KEY, colour: red}
  other: {kind: email, to: ops@example.com}
routes:
  - {match: {type: sla.breach, threshold_at_least: 2}, targets: [pager, missing]}
  - {match: {tier: gold}, targets: [hook, chat]}
delivery: {max_age_seconds: -1}
"""


def run_notify(path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACLOCK_", "PD_", "HOOK", "SLACK"))
    }
    return subprocess.run(
        [str(SLACLOCK), "notify", "--config", str(path), *args],
        env={**clean, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_invalid_routing_file_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(BROKEN, encoding="utf-8")

    result = run_notify(path, {"PD_KEY": "k"})

    assert result.returncode == 2
    err = result.stderr
    assert "Traceback" not in err
    for expected in (
        "targets.hook.url: must be an http:// or https:// URL",
        "targets.chat.url_env: required field is missing",
        "targets.pager.colour: unknown field",
        "targets.other: kind must be one of webhook, slack, pagerduty",
        "routes[0].match.threshold_at_least: Input should be less than or equal to 1",
        "routes[0].targets[1]: unknown target 'missing'",
        "delivery.max_age_seconds: Input should be greater than 0",
        "targets.hook.secret_env: environment variable HOOK_SECRET is not set",
        "targets.other: no route sends to this target",
    ):
        assert f"{path}: {expected}" in err, err
    assert "9 problems" in err


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "targets:\n"
        "  chat: {kind: slack, url_env: SLACK_URL}\n"
        "  pager: {kind: pagerduty, routing_key_env: PD_KEY}\n"
        "routes: [{targets: [chat, pager]}]\n",
        encoding="utf-8",
    )
    secret_url = "not-a-url-but-secret-7f3a"
    result = run_notify(path, {"SLACK_URL": secret_url, "PD_KEY": "pd-secret-91b2"})

    assert result.returncode == 2
    assert "environment variable SLACK_URL must hold an http(s) URL" in result.stderr
    assert secret_url not in result.stderr + result.stdout
    assert "pd-secret-91b2" not in result.stderr + result.stdout


def test_a_valid_routing_file_passes_the_check(tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "notify.yaml"
    result = run_notify(
        example,
        {
            "NOTIFY_WEBHOOK_SECRET": "x",
            "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
            "PAGERDUTY_ROUTING_KEY": "k",
        },
        "--check",
    )
    assert result.returncode == 0, result.stderr
    assert "3 targets, 5 routes: valid" in result.stderr


def test_a_secret_can_come_from_a_file_named_by_its_variable_with_file_appended(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "targets:\n"
        "  pager: {kind: pagerduty, routing_key_env: PD_KEY}\n"
        "routes: [{targets: [pager]}]\n",
        encoding="utf-8",
    )
    (tmp_path / "pd-key").write_text("routing-key-from-a-file\n", encoding="utf-8")

    result = run_notify(path, {"PD_KEY_FILE": str(tmp_path / "pd-key")}, "--check")
    assert result.returncode == 0, result.stderr
    missing = run_notify(path, {"PD_KEY_FILE": str(tmp_path / "nothing-here")}, "--check")
    assert missing.returncode == 2
    assert "environment variable PD_KEY is not set" in missing.stderr


def test_no_broker_is_one_line_naming_the_address_and_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(
        "targets:\n  pager: {kind: pagerduty, routing_key_env: PD_KEY}\n"
        "routes: [{targets: [pager]}]\n",
        encoding="utf-8",
    )
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    result = run_notify(path, {"PD_KEY": "k", "SLACLOCK_BOOTSTRAP_SERVERS": address})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach Kafka at {address} (set by SLACLOCK_BOOTSTRAP_SERVERS): "
        "Connection refused"
    ]
