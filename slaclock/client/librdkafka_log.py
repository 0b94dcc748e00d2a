"""librdkafka's log through Python logging, for every slaclock Kafka client.

librdkafka prints its own log lines (`%3|1795989764.171|FAIL|rdkafka#producer-1| ...`) to
stderr unless a `logger` is configured; a broker that is down makes it print one per
connection attempt per client. `with_logging(config)` routes them to the `librdkafka`
Python logger instead, with connection failures demoted to DEBUG: the worker and the
commands report an unreachable broker themselves, once, naming the address and the setting.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["LIBRDKAFKA_LOG", "LibrdkafkaLog", "with_logging"]

# syslog levels (librdkafka's) to Python logging levels
_LEVELS = {
    0: logging.CRITICAL,
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.ERROR,
    4: logging.WARNING,
    5: logging.INFO,
    6: logging.INFO,
    7: logging.DEBUG,
}

# Connection trouble, reported by our own code once per outage: not worth a line per attempt.
_CONNECTION_NOISE = re.compile(
    r"Connect to |Connection refused|Disconnected|Broker transport failure|"
    r"Connection reset|timed out|Timed out|all broker connections are down|"
    r"Coordinator load in progress|Failed to acquire .*PID|not available|"
    r"No route to host|Name or service not known",
)
_NOISY_FACILITIES = frozenset({"FAIL", "REQTMOUT", "GETPID", "COORDFAIL", "TXNERR", "ERROR"})


class LibrdkafkaLog:
    """A `logger` for confluent-kafka clients: librdkafka calls `log(level, fmt, fac,
    name, message)` with syslog levels, from the client's poll calls."""

    def __init__(self, name: str = "librdkafka") -> None:
        self.logger = logging.getLogger(name)

    def log(self, level: int, fmt: str, *args: Any) -> None:
        python_level = _LEVELS.get(level, logging.DEBUG)
        facility = str(args[0]) if args else ""
        message = str(args[-1]) if args else ""
        if facility in _NOISY_FACILITIES and _CONNECTION_NOISE.search(message):
            python_level = logging.DEBUG
        if self.logger.isEnabledFor(python_level):
            self.logger.log(python_level, fmt, *args)


LIBRDKAFKA_LOG = LibrdkafkaLog()


def with_logging(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` plus the Python-logging `logger` (unless it has one)."""
    return {"logger": LIBRDKAFKA_LOG, **config}
