"""The `SLACLOCK_NOTIFY_*` settings of `slaclock notify` (besides the worker's `SLACLOCK_*`).

In the runtime, not in the command: every process that loads the settings knows these
names (`processors.settings.known_setting_names`), so a service using the client SDK in an
environment that also configures the notifier gets no "unknown setting" warning for them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLACLOCK_NOTIFY_", extra="ignore", frozen=True)

    path: Path | None = None
    app_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=6067, ge=0, le=65535)
    dlq_topic: str = Field(default="sla.notifications.dlq", min_length=1)
    datadir: Path = Path(".slaclock-state/notify")
