"""Worker and client settings: environment variables `SLACLOCK_*` (or a `.env` file).

Invalid settings are refused at start with every problem listed (pydantic collects them).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    topic_warnings: str = "sla.warnings"
    topic_breaches: str = "sla.breaches"
    topic_completions: str = "sla.completions"
    topic_credits: str = "sla.credits"
    topic_dlq: str = "tickets.events.dlq"

    tick_interval: float = Field(1.0, gt=0, description="seconds between clock ticks")
    timer_ticks: bool = Field(
        True,
        description="also tick when a timer falls due (at its instant + grace), so breaches "
        "do not wait for the next regular tick",
    )
    grace: float = Field(2.0, ge=0, description="seconds the clock trails wall time")
    max_future_skew: float = Field(300.0, gt=0, description="seconds an event may be ahead")
    closed_retention: float = Field(7 * 86400.0, ge=0, description="seconds to keep closed")
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

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.security_protocol.startswith("SASL") and (
            self.sasl_mechanism is None or self.sasl_username is None or self.sasl_password is None
        ):
            raise ValueError(
                "SASL needs SLACLOCK_SASL_MECHANISM, SLACLOCK_SASL_USERNAME and SLACLOCK_SASL_PASSWORD"
            )
        return self

    # -- derived names (internal topics are prefixed with the app id, SPEC 9) ----------------

    @property
    def topic_clock(self) -> str:
        return f"{self.app_id}-clock"

    @property
    def topic_ticket_changelog(self) -> str:
        return f"{self.app_id}-tickets-changelog"

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
    """Settings from the environment (and overrides); raises SettingsError listing all problems."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False):
            field = ".".join(str(p) for p in problem["loc"])
            name = f"SLACLOCK_{field.upper()}" if field else "settings"
            problems.append(f"{name}: {problem['msg']}")
        raise SettingsError(problems) from None
