"""What the clients read from a settings object: the Kafka connection and topic names.

`slaclock.processors.settings.Settings` (what `load_settings()` returns, from `SLACLOCK_*`
variables) has all of it; any object with these attributes does, so the clients need
nothing of the processors.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["ClientSettings"]


class ClientSettings(Protocol):
    @property
    def app_id(self) -> str: ...

    @property
    def topic_events(self) -> str: ...

    @property
    def topic_warnings(self) -> str: ...

    @property
    def topic_breaches(self) -> str: ...

    @property
    def topic_completions(self) -> str: ...

    @property
    def topic_credits(self) -> str: ...

    def kafka_config(self) -> dict[str, Any]:
        """The librdkafka configuration: bootstrap servers and security."""
        ...
