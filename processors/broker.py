"""What the worker and the commands share about the broker: the classification of broker
errors (an outage to ride out, or not), the broker-up state, retry backoff, and a quick
reachability probe with a one-line error that names the address and the setting.

librdkafka's own log goes through Python logging (`slaclock.client.librdkafka_log`), with
connection failures demoted to DEBUG: this module reports an unreachable broker once.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException

from slaclock.client.librdkafka_log import with_logging

if TYPE_CHECKING:
    from slaclock.processors.settings import Settings

__all__ = [
    "BOOTSTRAP_ENV",
    "Backoff",
    "BrokerState",
    "BrokerUnreachable",
    "PauseWatch",
    "bootstrap_origin",
    "ensure_reachable",
    "is_outage",
]

BOOTSTRAP_ENV = "SLACLOCK_BOOTSTRAP_SERVERS"
log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
SETTLED_S = 30.0  # an outage this soon after the last one ended is logged at INFO
EARLY_S = 1.5  # every broker refused for this long: no point waiting the whole timeout
_HOPELESS = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError._RESOLVE})

# -- errors ---------------------------------------------------------------------------------

_OUTAGE_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._MSG_TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._DESTROY_BROKER,
        KafkaError._NO_OFFSET,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def is_outage(error: KafkaError | KafkaException | BaseException | None) -> bool:
    """Whether an error says the broker (or a coordinator on it) cannot be reached now:
    worth retrying once it is back."""
    if isinstance(error, KafkaException):
        error = error.args[0] if error.args else None
    if isinstance(error, TimeoutError):
        return True
    if not isinstance(error, KafkaError):
        return False
    return not error.fatal() and (error.retriable() or error.code() in _OUTAGE_CODES)


# -- reachability --------------------------------------------------------------------------


class BrokerUnreachable(RuntimeError):
    """No broker answered at the configured address; the message is one line that names
    the address and the setting (or flag) that sets it."""


def bootstrap_origin(settings: Settings, from_flag: bool = False) -> str:
    """Where the bootstrap address came from, as a user would change it."""
    if from_flag:
        return "set by --bootstrap"
    if os.environ.get(BOOTSTRAP_ENV):
        return f"set by {BOOTSTRAP_ENV}"
    if os.environ.get(f"{BOOTSTRAP_ENV}_FILE"):
        return f"set by {BOOTSTRAP_ENV}_FILE"
    default = type(settings).model_fields["bootstrap_servers"].default
    if settings.bootstrap_servers != default:
        return f"set by {BOOTSTRAP_ENV} in .env"
    return f"the default; set {BOOTSTRAP_ENV} or --bootstrap"


def ensure_reachable(
    settings: Settings,
    from_flag: bool = False,
    timeout: float = PROBE_TIMEOUT_S,
    admin_factory: Callable[[dict[str, Any]], Any] | None = None,
) -> None:
    """Ask the broker for its metadata; raise `BrokerUnreachable` (one line) if it does
    not answer within `timeout` seconds or refuses the credentials."""
    from confluent_kafka.admin import AdminClient

    errors: list[KafkaError] = []
    config = {
        **with_logging(settings.kafka_config()),
        "error_cb": errors.append,
        "socket.connection.setup.timeout.ms": int(timeout * 1000),
    }
    admin = (admin_factory or AdminClient)(config)
    reason = "no answer"
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while True:
        left = deadline - time.monotonic()
        try:
            if admin.list_topics(timeout=max(0.1, min(left, 0.5))).brokers:
                return
        except KafkaException as exc:
            reason = _describe(exc.args[0] if exc.args else exc)
        admin.poll(0)  # serves error_cb: what librdkafka saw while connecting
        codes = {error.code() for error in errors}
        refused_for_a_while = (
            KafkaError._ALL_BROKERS_DOWN in codes and time.monotonic() - started > EARLY_S
        )
        if time.monotonic() >= deadline or refused_for_a_while or codes & _HOPELESS:
            break
    if errors:
        reason = _describe(_most_telling(errors))
    where = settings.bootstrap_servers
    raise BrokerUnreachable(
        f"cannot reach Kafka at {where} ({bootstrap_origin(settings, from_flag)}): {reason}"
    )


def _most_telling(errors: list[KafkaError]) -> KafkaError:
    """An authentication or SSL error says more than the 'all brokers down' it causes."""
    for error in errors:
        if error.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
            return error
    for error in errors:
        if error.code() != KafkaError._ALL_BROKERS_DOWN:
            return error
    return errors[-1]


def _describe(error: object) -> str:
    """librdkafka's message without its `host:port/id: ` prefix and state suffix."""
    text = error.str() if isinstance(error, KafkaError) else str(error)
    text = re.sub(r"^\S+/(bootstrap|\d+): ", "", text)
    text = re.sub(r"^Connect to \S+ failed: ", "", text)
    text = re.sub(r" \(after \d+ms in state \w+\)", "", text)
    text = re.sub(r"\s*\(\d+/\d+ brokers are down\)", "", text)
    return text.strip() or "no answer"


# -- pauses of this process -------------------------------------------------------------------

PAUSE_THRESHOLD_S = 5.0  # this long without running is a pause (SIGSTOP, a frozen VM)
PAUSE_WINDOW_S = 15.0  # a call failing this soon after a pause failed because of it


class PauseWatch:
    """Notices that this process did not run for a while (SIGSTOP and SIGCONT, a frozen
    VM, a starved machine): a thread that wakes every `interval` seconds finds a gap.

    A Kafka call that was waiting when the process stopped times out as soon as it runs
    again, although the broker answers: that is no outage. `pause_behind()` says whether
    a pause just ended (or is ending: the watch's own thread has not run yet).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        threshold: float = PAUSE_THRESHOLD_S,
        window: float = PAUSE_WINDOW_S,
    ) -> None:
        self.clock = clock
        self.threshold = threshold
        self.window = window
        self._last: float | None = None  # last beat; None until the first
        self._paused_for = 0.0
        self._resumed_at: float | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self.count = 0  # pauses noticed

    def start(self, interval: float = 0.5) -> None:
        """The watching thread (once; a daemon)."""
        with self._lock:
            if self._thread is not None:
                return
            self.beat()

            def watch() -> None:
                while True:
                    time.sleep(interval)
                    self.beat()

            self._thread = threading.Thread(target=watch, name="pause-watch", daemon=True)
            self._thread.start()

    def beat(self) -> None:
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last > self.threshold:
                self._paused_for, self._resumed_at = now - self._last, now
                self.count += 1
            self._last = now

    def pause_behind(self) -> float | None:
        """How long the pause that just ended lasted, or None if none ended lately."""
        now = self.clock()
        if self._last is not None and now - self._last > self.threshold:
            return now - self._last  # running again before the watch's thread noticed
        if self._resumed_at is not None and now - self._resumed_at <= self.window:
            return self._paused_for
        return None


PAUSES = PauseWatch()


# -- a worker's view of the broker -------------------------------------------------------------


class BrokerState:
    """Whether the broker answers, as a worker's components last saw it.

    Components report what they see: `down(error)` when a call failed for want of a
    broker (or librdkafka reported every broker down), `up()` after a call the broker
    answered. The first `down` of an outage logs one warning naming the address, the
    `up` that ends it one line with the outage's length; librdkafka's own lines about
    it go to DEBUG. Read by `/ready` and the `slaclock_broker_up` gauge.
    """

    def __init__(
        self,
        bootstrap: str,
        clock: Callable[[], float] = time.monotonic,
        pauses: PauseWatch | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.clock = clock
        if pauses is None:
            pauses = PAUSES
            pauses.start()
        self.pauses = pauses
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._up_since = clock() - 2 * SETTLED_S
        self._level = logging.WARNING  # of the current outage's lines
        self._after_pause = False  # the current "outage" is a call failed by a pause
        self.outages = 0

    @property
    def is_up(self) -> bool:
        return self._down_since is None

    def down(self, component: str, error: object) -> None:
        paused = self.pauses.pause_behind()
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = self.clock()
            self._after_pause = paused is not None
            if paused is None:
                self.outages += 1
            # the broker coming back flickers for a few seconds: one warning per outage
            settled = self._down_since - self._up_since > SETTLED_S
            self._level = logging.WARNING if settled and paused is None else logging.INFO
        detail = _describe(
            error.args[0] if isinstance(error, KafkaException) and error.args else error
        )
        if paused is not None:
            log.info(
                "%s: a Kafka call failed right after this process was paused for %.0f s "
                "(%s); not a broker outage, retrying",
                component,
                paused,
                detail,
            )
            return
        log.log(
            self._level,
            "Kafka at %s unreachable (%s: %s); retrying with backoff until it is back",
            self.bootstrap,
            component,
            detail,
        )

    def up(self) -> None:
        if self._down_since is None:  # the common case, without the lock
            return
        with self._lock:
            since, self._down_since = self._down_since, None
            self._up_since = self.clock()
        if since is not None and not self._after_pause:
            log.log(
                self._level,
                "Kafka at %s reachable again after %.1f s",
                self.bootstrap,
                self._up_since - since,
            )

    def error_callback(self, component: str) -> Callable[[KafkaError], None]:
        """An `error_cb` for a client: every broker down is an outage; fatal errors and
        the rest are logged (the calls that fail because of them say more)."""

        def on_error(error: KafkaError) -> None:
            if error.code() == KafkaError._ALL_BROKERS_DOWN:
                self.down(component, error)
            elif error.fatal():
                log.error("%s: fatal Kafka client error: %s", component, error.str())
            elif not is_outage(error):
                log.warning("%s: Kafka client error: %s", component, error.str())

        return on_error


class Backoff:
    """Exponential backoff between retries: 0.5 s doubling up to 10 s."""

    def __init__(self, first: float = 0.5, most: float = 10.0) -> None:
        self.first = first
        self.most = most
        self.next = first

    def step(self) -> float:
        delay, self.next = self.next, min(self.next * 2, self.most)
        return delay
