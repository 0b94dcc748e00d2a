"""Worker and client settings: environment variables `SLACLOCK_*` (or a `.env` file).

Invalid settings are refused at start with every problem listed (pydantic collects them).
Every setting can also be read from a file: `SLACLOCK_<NAME>_FILE=/run/secrets/x` (the
file's content without its trailing newline; meant for secrets such as the SASL password
or the HTTP token, mounted by Docker or Kubernetes). A `SLACLOCK_*` name that is no
setting is reported at start ("did you mean ..."), since a misspelled setting would
otherwise be ignored silently.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

PREFIX = "SLACLOCK_"
FILE_SUFFIX = "_FILE"
OTHER_NAMES: dict[str, str] = {
    "SLACLOCK_KAFKA_HOME": "where `slaclock kafka up` keeps the local broker's jars and data",
    "SLACLOCK_KAFKA_PORT": "the local broker's port (its controller uses the next one)",
    "SLACLOCK_KAFKA_POM": "the Maven file pinning the local broker's version",
    "SLACLOCK_MVN": "the Maven command that resolves the local broker's jars",
    "SLACLOCK_KAFKA_IMAGE": "the broker image of the container-based tests",
    "SLACLOCK_POLICY_FILE": "docker compose: the host's policy file mounted into workers",
    "SLACLOCK_HTTP_TOKEN_SECRET": "docker compose: the host file of the workers' HTTP token",
    "SLACLOCK_NOTIFY_FILE": "docker compose: the host's notification routing file",
    "SLACLOCK_NOTIFY_SECRETS": "docker compose: the host directory of notification secrets",
}
"""`SLACLOCK_*` environment names read outside `Settings` (tools, compose, tests)."""

TEST_NAMES: dict[str, str] = {
    "SLACLOCK_TEST_CRASH": "test-only crash points of the transactional loop (fault tests)",
}
"""Names only the test suite sets: known (never warned about), not user documentation."""


class SettingsError(Exception):
    """Invalid configuration: every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLACLOCK_", env_file=".env", extra="ignore", frozen=True
    )

    bootstrap_servers: str = Field("127.0.0.1:9092", min_length=1)
    app_id: str = Field("slaclock", pattern=r"^[A-Za-z0-9._-]+$")
    instance_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="stable per worker: its transactional id and static group membership",
    )
    policy_path: Path = Path("examples/policy.yaml")
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)

    topic_events: str = "tickets.events"
    topic_contracts: str = "sla.contracts"
    topic_policies: str = "sla.policies"
    topic_warnings: str = "sla.warnings"
    topic_breaches: str = "sla.breaches"
    topic_completions: str = "sla.completions"
    topic_credits: str = "sla.credits"
    topic_statements: str = "sla.statements"
    topic_dlq: str = "tickets.events.dlq"
    topic_services: str = "services.events"
    topic_availability: str = "sla.availability"

    tick_interval: float = Field(1.0, gt=0, description="seconds between clock ticks")
    timer_ticks: bool = Field(
        True,
        description="also tick when a timer falls due (at its instant + grace), so breaches "
        "do not wait for the next regular tick",
    )
    grace: float = Field(2.0, ge=0, description="seconds the clock trails wall time")
    max_future_skew: float = Field(300.0, gt=0, description="seconds an event may be ahead")
    closed_retention: float = Field(7 * 86400.0, ge=0, description="seconds to keep closed")
    heap_trim_interval: float = Field(
        60.0,
        ge=0,
        description="seconds between returns of freed heap memory to the system (glibc "
        "malloc_trim, processors/heap.py); 0: never",
    )
    processing_guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    commit_interval: float = Field(0.1, gt=0, description="max seconds per transaction")
    max_batch: int = Field(
        5000, ge=1, le=100_000, description="most input records processed in one transaction"
    )
    store: Literal["memory", "rocksdb"] = Field(
        "rocksdb",
        description="where stage 1 keeps open tickets: rocksdb (the default: on disk, under "
        "state_dir) is for production; memory is for tests and the demo",
    )
    state_dir: Path = Field(
        Path(".slaclock-state"),
        description="root of the RocksDB stores: <state_dir>/<app_id>/<instance_id>/",
    )

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    http_host: str = Field("0.0.0.0", min_length=1, description="address of the HTTP server")
    http_port: int = Field(6066, ge=0, le=65535, description="HTTP server port; 0 = no server")
    http_advertised_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+$",
        description="how peers reach this worker's HTTP server (redirects of /tickets)",
    )
    http_token: SecretStr | None = Field(
        None,
        min_length=16,
        description="bearer token required by the HTTP data endpoints (/tickets, ...)",
    )
    http_open_data: bool = Field(
        False,
        description="serve the HTTP data endpoints without a token when none is set",
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.security_protocol.startswith("SASL") and (
            self.sasl_mechanism is None or self.sasl_username is None or self.sasl_password is None
        ):
            raise ValueError(
                "SASL needs SLACLOCK_SASL_MECHANISM, SLACLOCK_SASL_USERNAME and SLACLOCK_SASL_PASSWORD "
                "(or SLACLOCK_SASL_PASSWORD_FILE)"
            )
        return self

    # -- derived names (internal topics are prefixed with the app id, docs/operations.md: What runs) ----------------

    @property
    def topic_clock(self) -> str:
        return f"{self.app_id}-clock"

    @property
    def topic_ticket_changelog(self) -> str:
        return f"{self.app_id}-tickets-changelog"

    @property
    def topic_services_clock(self) -> str:
        return f"{self.app_id}-services-clock"

    @property
    def topic_services_changelog(self) -> str:
        return f"{self.app_id}-services-changelog"

    @property
    def topic_ledger_input(self) -> str:
        return f"{self.app_id}-ledger-input"

    @property
    def topic_ledger_changelog(self) -> str:
        return f"{self.app_id}-ledger-changelog"

    @property
    def http_url(self) -> str | None:
        """The advertised URL of this worker's HTTP server, None when it has none.

        Default `http://<host name>:<port>`: in a container the host name is what peers
        on the same network resolve.
        """
        if self.http_port == 0:
            return None
        return self.http_advertised_url or f"http://{socket.gethostname()}:{self.http_port}"

    def kafka_config(self) -> dict[str, Any]:
        """librdkafka (confluent-kafka) connection settings, secrets included."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        for key, value in (
            ("ssl.ca.location", self.ssl_cafile),
            ("ssl.certificate.location", self.ssl_certfile),
            ("ssl.key.location", self.ssl_keyfile),
        ):
            if value is not None:
                config[key] = str(value)
        return config


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and overrides); raises SettingsError listing all problems.

    `SLACLOCK_<NAME>_FILE` variables are read here (a file beats nothing, an override beats
    the file; the variable and its `_FILE` twin together are a problem), and unknown
    `SLACLOCK_*` names are warned about once per process.
    """
    warn_unknown_settings()
    from_files, problems = _values_from_files(os.environ, overrides)
    if problems:
        raise SettingsError(problems)
    try:
        return Settings(**{**from_files, **overrides})
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False):
            field = ".".join(str(p) for p in problem["loc"])
            name = f"SLACLOCK_{field.upper()}" if field else "settings"
            problems.append(f"{name}: {problem['msg']}")
        raise SettingsError(problems) from None


def _values_from_files(
    environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    values: dict[str, str] = {}
    problems: list[str] = []
    for field in Settings.model_fields:
        name = PREFIX + field.upper()
        path = environ.get(name + FILE_SUFFIX)
        if path is None or field in overrides:
            continue
        if name in environ:
            problems.append(
                f"{name}{FILE_SUFFIX}: set either {name} or {name}{FILE_SUFFIX}, not both"
            )
            continue
        try:
            values[field] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            problems.append(f"{name}{FILE_SUFFIX}: cannot read {path}: {reason}")
    return values, problems


# -- unknown names ------------------------------------------------------------------------


def known_setting_names() -> set[str]:
    """Every `SLACLOCK_*` name something reads: the fields of `Settings` and of any other
    settings class with the `SLACLOCK_` prefix (imported by then), their `_FILE` twins,
    and `OTHER_NAMES`."""
    import slaclock.processors.notify.settings  # noqa: F401 - its names are known everywhere

    names = set(OTHER_NAMES) | set(TEST_NAMES)
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        prefix = str(cls.model_config.get("env_prefix") or "")
        if not prefix.upper().startswith(PREFIX):
            continue
        for field in cls.model_fields:
            names.add((prefix + field).upper())
            names.add((prefix + field).upper() + FILE_SUFFIX)
    return names


def unknown_setting_names(names: Iterable[str]) -> list[tuple[str, str | None]]:
    """(name, closest known name or None) for each `SLACLOCK_*` name nothing reads."""
    known = known_setting_names()
    found = []
    for name in sorted(set(names)):
        if not name.upper().startswith(PREFIX) or name.upper() in known:
            continue
        # compared without the common prefix, which would make every name look close
        suffixes = sorted(k[len(PREFIX) :] for k in known)
        close = difflib.get_close_matches(name.upper()[len(PREFIX) :], suffixes, n=1, cutoff=0.75)
        found.append((name, PREFIX + close[0] if close else None))
    return found


def _dotenv_names(path: Path = Path(".env")) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        if "=" in line and not line.startswith("#"):
            names.append(line.split("=", 1)[0].strip())
    return names


_reported: set[str] = set()


def unknown_setting_warnings() -> list[str]:
    """The not yet reported warnings for unknown names in the environment and `.env`."""
    messages = []
    for name, close in unknown_setting_names([*os.environ, *_dotenv_names()]):
        if name in _reported:
            continue
        _reported.add(name)
        hint = f"; did you mean {close}?" if close else " (no such setting)"
        messages.append(f"unknown setting {name} is ignored{hint}")
    return messages


def report_unknown_settings() -> None:
    """For the command line, before any command runs: one `warning:` line on stderr each."""
    for message in unknown_setting_warnings():
        print(f"warning: {message}", file=sys.stderr)


def warn_unknown_settings() -> None:
    """Log a warning for each unknown `SLACLOCK_*` name, once per process."""
    for message in unknown_setting_warnings():
        log.warning("%s", message)
