"""Settings (`SLACLOCK_*`): environment overrides, every problem at once, secrets kept out of
logs, and the librdkafka configuration they produce."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from slaclock.cli_live import live_app_commands
from slaclock.processors.settings import (
    SettingsError,
    load_settings,
    unknown_setting_names,
    unknown_setting_warnings,
)

SECRET = "hunter2-very-secret"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SLACLOCK_* variable from the caller's shell, no `.env` from the repo."""
    for name in list(os.environ):
        if name.startswith("SLACLOCK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def sasl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACLOCK_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SLACLOCK_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SLACLOCK_SASL_USERNAME", "slaclock")
    monkeypatch.setenv("SLACLOCK_SASL_PASSWORD", SECRET)


def test_defaults_match_the_spec_topic_names() -> None:
    settings = load_settings()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.topic_events == "tickets.events"
    assert settings.topic_dlq == "tickets.events.dlq"
    assert settings.topic_contracts == "sla.contracts"
    assert settings.grace == 2.0 and settings.tick_interval == 1.0
    assert settings.max_future_skew == 300.0
    assert settings.kafka_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACLOCK_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("SLACLOCK_APP_ID", "sla-eu")
    monkeypatch.setenv("SLACLOCK_PARTITIONS", "12")
    monkeypatch.setenv("SLACLOCK_TOPIC_EVENTS", "helpdesk.events")
    monkeypatch.setenv("SLACLOCK_GRACE", "0.5")
    monkeypatch.setenv("SLACLOCK_PROCESSING_GUARANTEE", "at_least_once")
    settings = load_settings()
    assert settings.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.partitions == 12
    assert settings.topic_events == "helpdesk.events"
    assert settings.grace == 0.5
    assert settings.processing_guarantee == "at_least_once"
    assert settings.kafka_config()["bootstrap.servers"] == "kafka-1:9092,kafka-2:9092"


def test_internal_topic_names_are_prefixed_with_the_app_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACLOCK_APP_ID", "sla-eu")
    settings = load_settings()
    internal = [
        settings.topic_clock,
        settings.topic_ticket_changelog,
        settings.topic_ledger_input,
        settings.topic_ledger_changelog,
    ]
    assert all(name.startswith("sla-eu-") for name in internal)
    assert len(set(internal)) == 4


def test_keyword_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACLOCK_BOOTSTRAP_SERVERS", "from-env:9092")
    assert load_settings(bootstrap_servers="from-flag:9092").bootstrap_servers == "from-flag:9092"


def test_dotenv_file_is_read_and_the_environment_wins_over_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("SLACLOCK_PARTITIONS=7\nSLACLOCK_APP_ID=from-file\n")
    monkeypatch.setenv("SLACLOCK_APP_ID", "from-env")
    settings = load_settings()
    assert settings.partitions == 7
    assert settings.app_id == "from-env"


def test_every_invalid_value_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACLOCK_PARTITIONS", "0")
    monkeypatch.setenv("SLACLOCK_APP_ID", "has spaces")
    monkeypatch.setenv("SLACLOCK_GRACE", "-1")
    monkeypatch.setenv("SLACLOCK_TICK_INTERVAL", "soon")
    monkeypatch.setenv("SLACLOCK_PROCESSING_GUARANTEE", "maybe")
    monkeypatch.setenv("SLACLOCK_SECURITY_PROTOCOL", "CARRIER_PIGEON")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    named = {problem.split(":")[0] for problem in caught.value.problems}
    assert named == {
        "SLACLOCK_PARTITIONS",
        "SLACLOCK_APP_ID",
        "SLACLOCK_GRACE",
        "SLACLOCK_TICK_INTERVAL",
        "SLACLOCK_PROCESSING_GUARANTEE",
        "SLACLOCK_SECURITY_PROTOCOL",
    }
    message = str(caught.value)
    assert all(f"  {problem}" in message for problem in caught.value.problems)


def test_secrets_are_redacted_in_repr_str_and_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    sasl_env(monkeypatch)
    settings = load_settings()
    for shown in (
        repr(settings),
        str(settings),
        repr(settings.model_dump()),
        str(settings.model_dump(mode="json")),
        settings.model_dump_json(),
    ):
        assert SECRET not in shown
    assert settings.model_dump(mode="json")["sasl_password"] == "**********"
    # ... and only the client configuration carries it.
    assert settings.kafka_config()["sasl.password"] == SECRET


def test_kafka_config_carries_sasl_and_tls_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    sasl_env(monkeypatch)
    monkeypatch.setenv("SLACLOCK_SSL_CAFILE", "/etc/kafka/ca.pem")
    monkeypatch.setenv("SLACLOCK_SSL_CERTFILE", "/etc/kafka/client.pem")
    monkeypatch.setenv("SLACLOCK_SSL_KEYFILE", "/etc/kafka/client.key")
    config = load_settings().kafka_config()
    assert config == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "slaclock",
        "sasl.password": SECRET,
        "ssl.ca.location": "/etc/kafka/ca.pem",
        "ssl.certificate.location": "/etc/kafka/client.pem",
        "ssl.key.location": "/etc/kafka/client.key",
    }


@pytest.mark.parametrize(
    "missing", ["SLACLOCK_SASL_MECHANISM", "SLACLOCK_SASL_USERNAME", "SLACLOCK_SASL_PASSWORD"]
)
def test_sasl_without_complete_credentials_is_refused(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    sasl_env(monkeypatch)
    monkeypatch.delenv(missing)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert any("SASL needs" in problem for problem in caught.value.problems)


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.partitions = 8


@pytest.mark.parametrize(
    "args",
    [["topics", "create"], ["publish", "events.jsonl"], ["tail"]],
    ids=["topics-create", "publish", "tail"],
)
def test_cli_commands_print_every_settings_problem_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("SLACLOCK_PARTITIONS", "0")
    monkeypatch.setenv("SLACLOCK_GRACE", "-1")
    app = typer.Typer()
    live_app_commands(app)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "SLACLOCK_PARTITIONS" in result.stderr
    assert "SLACLOCK_GRACE" in result.stderr


def test_cli_bootstrap_option_is_validated_like_the_environment() -> None:
    app = typer.Typer()
    live_app_commands(app)
    result = CliRunner().invoke(app, ["topics", "create", "--bootstrap", ""])
    assert result.exit_code == 2
    assert "SLACLOCK_BOOTSTRAP_SERVERS" in result.stderr


# -- settings from files --------------------------------------------------------------------


def test_a_secret_is_read_from_its_file_without_the_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "sasl-password"
    secret.write_text(SECRET + "\n")
    sasl_env(monkeypatch)
    monkeypatch.delenv("SLACLOCK_SASL_PASSWORD")
    monkeypatch.setenv("SLACLOCK_SASL_PASSWORD_FILE", str(secret))
    settings = load_settings()
    assert settings.kafka_config()["sasl.password"] == SECRET
    assert SECRET not in repr(settings)


def test_a_setting_and_its_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "grace").write_text("1.5")
    monkeypatch.setenv("SLACLOCK_GRACE", "1.0")
    monkeypatch.setenv("SLACLOCK_GRACE_FILE", str(tmp_path / "grace"))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems == [
        "SLACLOCK_GRACE_FILE: set either SLACLOCK_GRACE or SLACLOCK_GRACE_FILE, not both"
    ]


def test_an_unreadable_settings_file_names_the_variable_and_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("SLACLOCK_HTTP_TOKEN_FILE", str(missing))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems == [
        f"SLACLOCK_HTTP_TOKEN_FILE: cannot read {missing}: No such file or directory"
    ]


def test_a_value_from_a_file_is_validated_like_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("short\n")
    monkeypatch.setenv("SLACLOCK_HTTP_TOKEN_FILE", str(tmp_path / "token"))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert any(p.startswith("SLACLOCK_HTTP_TOKEN:") for p in caught.value.problems)


# -- unknown names ----------------------------------------------------------------------------


def test_unknown_names_get_the_closest_setting_and_known_ones_pass() -> None:
    found = dict(
        unknown_setting_names(
            [
                "SLACLOCK_BOOTSTRAP_SERVER",
                "SLACLOCK_SASL_PASWORD_FILE",
                "SLACLOCK_WHATEVER",
                "SLACLOCK_GRACE",
                "SLACLOCK_SASL_PASSWORD_FILE",
                "SLACLOCK_KAFKA_PORT",
                "PATH",
            ]
        )
    )
    assert found == {
        "SLACLOCK_BOOTSTRAP_SERVER": "SLACLOCK_BOOTSTRAP_SERVERS",
        "SLACLOCK_SASL_PASWORD_FILE": "SLACLOCK_SASL_PASSWORD_FILE",
        "SLACLOCK_WHATEVER": None,
    }


def test_unknown_names_in_dot_env_are_reported_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("# comment\nexport SLACLOCK_TICK_INTERVALL=2\n")
    first = unknown_setting_warnings()
    assert first == [
        "unknown setting SLACLOCK_TICK_INTERVALL is ignored; did you mean SLACLOCK_TICK_INTERVAL?"
    ]
    assert unknown_setting_warnings() == []  # once per process


def test_a_client_process_knows_the_notifier_settings(tmp_path: Path) -> None:
    # docs/clients.md: `TicketEventPublisher(load_settings())` in a service whose
    # environment also holds what docs/notifications.md says to export for `slaclock notify`.
    code = (
        "from slaclock.processors.settings import unknown_setting_warnings\n"
        "print(unknown_setting_warnings())\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLACLOCK_")}
    env = {
        **clean,
        "SLACLOCK_NOTIFY_PATH": "notify.yaml",
        "SLACLOCK_NOTIFY_APP_ID": "notify",
        "SLACLOCK_NOTIFY_HTTP_PORT": "6067",
        "SLACLOCK_NOTIFY_DLQ_TOPIC": "dlq",
        "SLACLOCK_NOTIFY_DATADIR": "state",
        "SLACLOCK_NOTIFY_PAHT": "typo.yaml",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "['unknown setting SLACLOCK_NOTIFY_PAHT is ignored; did you mean SLACLOCK_NOTIFY_PATH?']"
    )
