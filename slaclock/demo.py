"""`slaclock demo`: the whole live pipeline on one machine, fed by a synthetic workload.

What a run starts, in order (each piece is stopped again at exit, also on errors and Ctrl-C):

- a Kafka broker: the one answering at the bootstrap address, else the local broker of
  `slaclock kafka up` (`slaclock.local_kafka`), which is then stopped at exit only if this
  run started it;
- every topic, named after a fresh app id (`slaclock-demo-<UTC time>`), so a rerun starts
  from empty topics and a clean ledger; they are deleted at exit unless asked to keep them;
- one worker subprocess (`slaclock worker`) with `examples/demo-policy.yaml` (targets of
  seconds), ticking every 0.5 s with a grace of 1 s;
- a publisher of tickets created at `rate` per second (Poisson arrivals), each followed by
  replies and status changes seconds apart (`slaclock.workload.live_ticket_script`), every
  event stamped with the wall time at which it is sent: the SLA clocks run in real time;
  every ticket starts with the first-line group and a quarter are escalated to
  engineering, whose late first note breaches its group target (an OLA);
- a read_committed subscriber of the four output topics and the dead-letter topic, whose
  records feed the view: a scrolling feed and a running summary (rich) on a terminal,
  plain lines otherwise.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from slaclock.client.publisher import TicketEventPublisher
from slaclock.client.subscriber import OutputSubscriber, ReceivedRecord, output_topics
from slaclock.local_kafka import (
    KafkaJars,
    LocalKafka,
    _die_with_parent_hook,
    free_port,
    port_answers,
)
from slaclock.processors.engine.instants import format_us
from slaclock.processors.settings import Settings, load_settings
from slaclock.processors.topics import ensure_topics, topic_specs
from slaclock.schemas.outputs import (
    OutputEvent,
    SlaBreach,
    SlaCancelled,
    SlaCompleted,
    SlaCredit,
    SlaCreditEarnedBack,
    SlaGroupStatement,
    SlaStatement,
    SlaWarning,
    parse_output_event,
)
from slaclock.schemas.policy import load_policy
from slaclock.workload import live_ticket_script

__all__ = [
    "DEMO_POLICY",
    "DemoError",
    "DemoOptions",
    "DemoResult",
    "DemoStats",
    "LiveWorkload",
    "demo_settings",
    "format_output",
    "run_demo",
]

DEMO_POLICY = Path(__file__).resolve().parent.parent / "examples" / "demo-policy.yaml"
ESCALATE_SHARE = 0.25
"""Tickets escalated from first line to engineering, whose late first note breaches
engineering's group_response (examples/demo-policy.yaml: groups)."""
TICK_INTERVAL = 0.5
GRACE = 1.0
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
METRICS = ("first_response", "next_response", "periodic_update", "resolution")
GROUP_METRICS = ("group_response", "group_resolution")
_TOPIC_FIELDS = (
    "topic_events",
    "topic_contracts",
    "topic_policies",
    "topic_warnings",
    "topic_breaches",
    "topic_completions",
    "topic_credits",
    "topic_dlq",
)


class DemoError(RuntimeError):
    """The demo cannot start or go on; the message says why (and where the logs are)."""


@dataclass(frozen=True)
class DemoOptions:
    """What `slaclock demo` runs; every field has the command line's default.

    `bootstrap` None: the configured `SLACLOCK_BOOTSTRAP_SERVERS`, and a local broker is
    started if none answers there (and it is on this machine). A given `bootstrap` must
    answer: the demo never starts or stops a broker it was pointed at.
    """

    bootstrap: str | None = None
    duration: float | None = None
    rate: float = 2.0
    app_id: str | None = None
    policy_path: Path = DEMO_POLICY
    seed: int | None = None
    keep_topics: bool = False
    unknown_every: int = 25
    """Every n-th ticket, also publish a reply to a ticket never created (dead-lettered)."""
    plain: bool = False
    broker_timeout: float = 120.0
    ready_timeout: float = 90.0
    status_every: float = 10.0
    """Seconds between status lines in plain mode."""
    notify: bool = False
    """Also run `slaclock notify` with a local Slack-like receiver; show what it receives."""


# --------------------------------------------------------------------------- statistics


@dataclass
class DemoStats:
    """Running counts of what was published and what the pipeline reported."""

    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    tickets: int = 0
    published: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_metric: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    met: int = 0
    breached_completions: int = 0
    group_breaches: int = 0  # of the breaches: internal groups' targets (OLAs)
    credits: dict[str, Decimal] = field(default_factory=dict)
    capped: int = 0
    undelivered: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    invalid: int = 0

    @property
    def warnings(self) -> int:
        return self.by_type["sla.warning"]

    @property
    def breaches(self) -> int:
        return self.by_type["sla.breach"]

    @property
    def completions(self) -> int:
        return self.by_type["sla.completed"]

    @property
    def credit_count(self) -> int:
        return self.by_type["sla.credit"]

    @property
    def dlq(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def elapsed(self) -> float:
        """Seconds of workload so far (until `ended`, once the workload stopped)."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def count(self, event: OutputEvent) -> None:
        self.by_type[event.type] += 1
        if isinstance(event, SlaBreach) and event.group is not None:
            self.group_breaches += 1
        column = {"sla.warning": "warnings", "sla.breach": "breaches", "sla.credit": "credits"}
        if isinstance(event, SlaStatement | SlaGroupStatement | SlaCreditEarnedBack | SlaCancelled):
            return  # monthly accounting, cycles ended without an outcome: by type only
        if isinstance(event, SlaCompleted):
            if event.outcome == "met":
                self.met += 1
            else:
                self.breached_completions += 1
            self.by_metric[event.metric][event.outcome] += 1
        else:
            self.by_metric[event.metric][column[event.type]] += 1
        if isinstance(event, SlaCredit):
            self.credits[event.currency] = self.credits.get(event.currency, Decimal(0)) + (
                event.amount
            )
            self.capped += event.capped

    def credit_totals(self) -> str:
        return ", ".join(f"{amount} {cur}" for cur, amount in sorted(self.credits.items())) or "-"

    def line(self) -> str:
        """The whole summary on one line (plain mode)."""
        return (
            f"published {self.published} events ({self.tickets} tickets); "
            f"warnings {self.warnings}, breaches {self.breaches} "
            f"({self.group_breaches} of internal groups), "
            f"completions {self.completions} ({self.met} met, {self.breached_completions} "
            f"breached), credits {self.credit_count} ({self.capped} capped; "
            f"{self.credit_totals()}), dead letters {self.dlq}"
        )


@dataclass(frozen=True)
class DemoResult:
    stats: DemoStats
    app_id: str
    bootstrap: str
    broker_started: bool
    worker_pid: int
    worker_exit: int
    worker_log: Path
    interrupted: bool


# --------------------------------------------------------------------------- formatting

STYLES = {
    "sla.warning": "yellow",
    "sla.breach": "bold red",
    "met": "green",
    "breached": "red",
    "sla.credit": "magenta",
    "capped": "dim magenta",
    "dlq": "cyan",
    "sla.cancelled": "dim",
}


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S.%f")[:10]


def _seconds(value: float) -> str:
    return f"{value}s" if isinstance(value, int) else f"{value:.1f}s"


def _line(at: str, label: str, style: str, ticket: str, *detail: str) -> Text:
    return Text.assemble(
        (at, "dim"), "  ", (f"{label:<10}", style), f"{ticket:<8}", "  ".join(detail)
    )


def format_output(event: OutputEvent) -> Text:
    """One feed line: when (the SLA fact's instant, UTC), what, which ticket, details."""
    at = _clock(event.at)
    if isinstance(event, SlaStatement):
        overall = event.overall.compliance or "-"
        detail = f"period {event.period}: compliance {overall}, credits {event.credits_total}"
        return _line(at, "statement", STYLES["sla.credit"], "-", event.customer_id, detail)
    if isinstance(event, SlaGroupStatement):
        overall = event.overall.compliance or "-"
        detail = (
            f"period {event.period}: compliance {overall}, "
            f"{event.holds} hold(s), {event.handoffs} hand-off(s)"
        )
        return _line(at, "group stmt", STYLES["sla.credit"], "-", event.group, detail)
    if isinstance(event, SlaCreditEarnedBack):
        detail = f"{event.amount} {event.currency} of {event.period} earned back"
        return _line(at, "earn-back", STYLES["met"], "-", event.customer_id, detail)
    if isinstance(event, SlaCredit):
        style = STYLES["capped" if event.capped else "sla.credit"]
        detail = f"{event.amount} {event.currency}  {event.percent}% of the fee for {event.metric}"
        cap = "  CAPPED" if event.capped else ""
        total = f"period {event.period} total {event.period_total} {event.currency}{cap}"
        ticket = event.ticket_id or event.service_id or "-"
        return _line(at, "credit", style, ticket, event.customer_id, detail, total)
    who = f"{event.customer_id}/{event.tier}"
    what = f"{event.priority} {event.metric}#{event.cycle}"
    if event.group is not None:
        what += f" (group {event.group})"
    if isinstance(event, SlaWarning):
        detail = f"{event.threshold:.0%} of {event.target_seconds}s, due {_clock(event.deadline)}"
        return _line(at, "warning", STYLES[event.type], event.ticket_id, who, what, detail)
    if isinstance(event, SlaBreach):
        detail = f"target {event.target_seconds}s missed"
        if event.decided_at != event.at:
            detail += f" (decided {_clock(event.decided_at)})"
        return _line(at, "BREACH", STYLES[event.type], event.ticket_id, who, what, detail)
    if isinstance(event, SlaCancelled):
        detail = f"{event.reason} after {_seconds(event.elapsed_seconds)}"
        detail += " (breached)" if event.breached else ""
        return _line(at, "cancelled", STYLES[event.type], event.ticket_id, who, what, detail)
    detail = f"after {_seconds(event.elapsed_seconds)} of {event.target_seconds}s"
    label = "met" if event.outcome == "met" else "late"
    return _line(at, label, STYLES[event.outcome], event.ticket_id, who, what, detail)


def format_dead_letter(record: ReceivedRecord) -> Text:
    key = record.key.decode(errors="replace") if record.key else "-"
    error = record.headers.get("error_class", b"?").decode(errors="replace")
    message = record.headers.get("error_message", b"").decode(errors="replace")
    at = _clock(datetime.fromtimestamp((record.timestamp_ms or 0) / 1000, UTC))
    return _line(at, "DLQ", STYLES["dlq"], key, f"{error}: {message}")


def summary_table(stats: DemoStats, title: str | None = None) -> Table:
    """Totals and a per-metric breakdown of the outputs so far."""
    table = Table(title=title, title_justify="left", show_header=True, expand=False)
    table.add_column("metric")
    for name, style in (
        ("warnings", STYLES["sla.warning"]),
        ("breaches", STYLES["sla.breach"]),
        ("met", STYLES["met"]),
        ("late", STYLES["breached"]),
        ("credits", STYLES["sla.credit"]),
    ):
        table.add_column(name, justify="right", style=style)
    shown = [*METRICS, *(m for m in GROUP_METRICS if m in stats.by_metric)]
    for metric in shown:
        row = stats.by_metric.get(metric, Counter())
        table.add_row(
            metric,
            *(str(row[k]) for k in ("warnings", "breaches", "met", "breached", "credits")),
        )
    table.add_row(
        Text("total", style="bold"),
        str(stats.warnings),
        str(stats.breaches),
        str(stats.met),
        str(stats.breached_completions),
        str(stats.credit_count),
        end_section=True,
    )
    return table


def totals_table(stats: DemoStats) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("events published", f"{stats.published} ({stats.tickets} tickets)")
    table.add_row(
        "credits",
        Text(f"{stats.credit_totals()}  ({stats.capped} capped)", style=STYLES["sla.credit"]),
    )
    dlq = ", ".join(f"{n} {cls}" for cls, n in stats.dead_letters.most_common())
    table.add_row("dead letters", Text(f"{stats.dlq}" + (f" ({dlq})" if dlq else ""), "cyan"))
    if stats.undelivered:
        table.add_row("not delivered", Text(str(stats.undelivered), "red"))
    if stats.invalid:
        table.add_row("invalid outputs", Text(str(stats.invalid), "red"))
    return table


# --------------------------------------------------------------------------- views


class View(Protocol):
    def message(self, text: str) -> None: ...

    def output(self, line: Text) -> None: ...

    def update(self, stats: DemoStats, force: bool = False) -> None: ...

    def close(self) -> None: ...


class PlainView:
    """Plain lines for logs and CI: messages, one line per output, a status line now and then."""

    def __init__(self, console: Console, status_every: float) -> None:
        self.console = console
        self.status_every = status_every
        self._last_status: float | None = None  # set by the first update

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def output(self, line: Text) -> None:
        self.console.print(line, soft_wrap=True)

    def update(self, stats: DemoStats, force: bool = False) -> None:
        now = time.monotonic()
        if self._last_status is None:
            self._last_status = now
        elif force or now - self._last_status >= self.status_every:
            self._last_status = now
            self.message(f"[{_elapsed(stats.elapsed)}] {stats.line()}")

    def close(self) -> None:
        pass


class LiveView:
    """The terminal view: outputs scroll by above a live summary pinned at the bottom.

    Refreshed from the demo's own loop (no refresh thread), so the statistics are never
    read while they change.
    """

    def __init__(self, console: Console, header: Callable[[DemoStats], str]) -> None:
        self.console = console
        self.header = header
        self._live: Live | None = None
        self._last = 0.0

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def output(self, line: Text) -> None:
        self.console.print(line, soft_wrap=True, overflow="ellipsis", no_wrap=True)

    def update(self, stats: DemoStats, force: bool = False) -> None:
        if self._live is None:
            self._live = Live(
                self._render(stats), console=self.console, auto_refresh=False, transient=True
            )
            self._live.start()
        elif force or time.monotonic() - self._last >= 0.25:
            self._live.update(self._render(stats), refresh=True)
        else:
            return
        self._last = time.monotonic()

    def _render(self, stats: DemoStats) -> RenderableType:
        return Group(
            Text(self.header(stats), style="bold"), summary_table(stats), totals_table(stats)
        )

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


# --------------------------------------------------------------------------- workload


class LiveWorkload:
    """Tickets arriving at `rate` per second, and their scripted events, in due order.

    Times are seconds since the workload started. Every `unknown_every`-th ticket also
    brings a customer reply to a ticket the pipeline never saw (as if created before the
    demo): the worker sends it to the dead-letter topic (`UnknownTicket`).
    """

    def __init__(
        self,
        rng: random.Random,
        rate: float,
        unknown_every: int = 0,
        escalate_share: float = ESCALATE_SHARE,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rng = rng
        self.rate = rate
        self.unknown_every = unknown_every
        self.escalate_share = escalate_share
        self.tickets = 0
        self._next_ticket = 0.0
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()

    def _schedule(self, at: float, event: dict[str, Any]) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), event))

    def _new_ticket(self, at: float) -> None:
        n = self.tickets
        self.tickets += 1
        script = live_ticket_script(self.rng, f"D{n:05d}", escalate_share=self.escalate_share)
        for offset, event in script:
            self._schedule(at + offset, event)
        if self.unknown_every and n % self.unknown_every == self.unknown_every - 1:
            ghost = f"X{n:05d}"
            self._schedule(
                at + self.rng.uniform(1.0, 5.0),
                {"event_id": f"{ghost}-1", "type": "ticket.customer_replied", "ticket_id": ghost},
            )

    def due(self, now: float) -> list[dict[str, Any]]:
        """The events due at `now` or earlier, oldest first (without `occurred_at`)."""
        while self._next_ticket <= now:
            self._new_ticket(self._next_ticket)
            self._next_ticket += self.rng.expovariate(self.rate)
        found: list[dict[str, Any]] = []
        while self._queue and self._queue[0][0] <= now:
            found.append(heapq.heappop(self._queue)[2])
        return found

    def next_due(self) -> float:
        return min(self._next_ticket, self._queue[0][0]) if self._queue else self._next_ticket


def stamp(event: dict[str, Any]) -> dict[str, Any]:
    """The event with `occurred_at` = now (wall clock, microseconds, UTC)."""
    return {**event, "occurred_at": format_us(time.time_ns() // 1000)}


# --------------------------------------------------------------------------- processes


def default_app_id() -> str:
    return f"slaclock-demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def demo_settings(bootstrap: str, app_id: str, policy_path: Path) -> Settings:
    """Settings for the demo: the environment's connection settings, own topics and timing.

    Every topic is prefixed with the app id (`<app_id>.tickets.events`, ...), so that a
    run never sees the data of an earlier one. Raises `SettingsError`.
    """
    overrides: dict[str, Any] = {
        name: f"{app_id}.{Settings.model_fields[name].default}" for name in _TOPIC_FIELDS
    }
    return load_settings(
        bootstrap_servers=bootstrap,
        app_id=app_id,
        instance_id=f"{app_id}-worker",
        policy_path=policy_path.resolve(),
        tick_interval=TICK_INTERVAL,
        grace=GRACE,
        store="memory",  # a demo's state is thrown away with its topics
        **overrides,
    )


def worker_env(settings: Settings, http_port: int | None = None) -> dict[str, str]:
    """The environment of the worker: ours, with every setting the demo chose spelled out.

    `http_port`: where the worker's HTTP server (status, metrics) listens, on loopback
    only; a free port, so that the demo runs beside other workers.
    """
    env = dict(os.environ)
    if http_port is not None:
        env["SLACLOCK_HTTP_HOST"] = "127.0.0.1"
        env["SLACLOCK_HTTP_PORT"] = str(http_port)
        env["SLACLOCK_HTTP_ADVERTISED_URL"] = f"http://127.0.0.1:{http_port}"
        env["SLACLOCK_HTTP_OPEN_DATA"] = "true"  # loopback only: /tickets without a token
    for name in (
        "bootstrap_servers",
        "app_id",
        "instance_id",
        "policy_path",
        "partitions",
        "tick_interval",
        "grace",
        "store",
        *_TOPIC_FIELDS,
    ):
        env[f"SLACLOCK_{name.upper()}"] = str(getattr(settings, name))
    return env


class WorkerProcess:
    """`slaclock worker` as a subprocess, logging to a file.

    It runs in its own session, so a Ctrl-C meant for the demo does not stop it before
    the publisher (the demo stops it with SIGTERM, in order), and on Linux it is killed if
    the demo dies without cleaning up.
    """

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        # The worker serves HTTP (/health, /metrics, /tickets/{id}) when its settings have
        # an `http_port`; older ones ignore the variables.
        self.http_url = (
            f"http://127.0.0.1:{free_port()}" if "http_port" in Settings.model_fields else None
        )
        http_port = int(self.http_url.rpartition(":")[2]) if self.http_url else None
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from slaclock.cli import main; main()", "worker"],
                env=worker_env(settings, http_port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait `timeout` seconds, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                self.process.kill()
        return self.process.wait()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no worker log)"
        return "\n".join(text.rstrip().splitlines()[-lines:]) or "(worker log is empty)"

    def failure(self, what: str) -> DemoError:
        return DemoError(
            f"the worker (pid {self.pid}) {what}; {self.log_path} ends with:\n{self.log_tail()}"
        )


def broker_answers(settings: Settings, timeout: float = 5.0) -> bool:
    """Whether a broker at the settings' bootstrap answers a metadata request."""
    addresses = [a.strip() for a in settings.bootstrap_servers.split(",") if a.strip()]
    reachable = False
    for address in addresses:
        host, _, port = address.rpartition(":")
        if port.isdigit() and port_answers(host.strip("[]") or "127.0.0.1", int(port)):
            reachable = True
    if not reachable:  # spares librdkafka's "connection refused" log lines
        return False
    admin = AdminClient({**settings.kafka_config(), "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def local_broker_for(bootstrap: str) -> LocalKafka | None:
    """The CLI's local broker (`slaclock kafka up`) on the bootstrap's port, if the bootstrap
    is a single loopback address; None otherwise (a remote broker is never started here)."""
    host, _, port = bootstrap.strip().rpartition(":")
    if "," in bootstrap or host not in LOOPBACK or not port.isdigit():
        return None
    jars = KafkaJars.default()
    # die_with_parent: a demo killed outright takes the broker it started with it.
    return LocalKafka(jars.home / "instance", port=int(port), jars=jars, die_with_parent=True)


def wait_until_ticking(settings: Settings, worker: WorkerProcess, timeout: float) -> None:
    """Wait until the worker ticks every partition: it owns them all and its clock runs."""
    consumer = Consumer({**settings.kafka_config(), "group.id": f"{settings.app_id}-probe"})
    try:
        topic = settings.topic_clock
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        deadline = time.monotonic() + timeout
        while True:
            if not worker.running():
                raise worker.failure(f"exited with status {worker.process.returncode}")
            try:
                highs = [
                    consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=5, cached=False
                    )
                    for p in partitions
                ]
            except KafkaException:
                highs = []  # e.g. a leader not known yet to this fresh client: ask again
            if highs and all(offsets is not None and offsets[1] > 0 for offsets in highs):
                return
            if time.monotonic() > deadline:
                raise worker.failure(f"did not start ticking within {timeout:.0f} s")
            time.sleep(0.3)
    finally:
        consumer.close()


def delete_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Best effort: the demo's topics are its own, nobody else reads them."""
    admin = AdminClient({**settings.kafka_config(), "log_level": 0})
    names = [spec.name for spec in topic_specs(settings)]
    with contextlib.suppress(KafkaException):
        for future in admin.delete_topics(names, operation_timeout=timeout).values():
            with contextlib.suppress(KafkaException):
                future.result(timeout)


# --------------------------------------------------------------------------- the run


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    """Run the demo until `options.duration` elapses or Ctrl-C (KeyboardInterrupt).

    A Ctrl-C while the workload runs ends the demo normally (`interrupted` in the result);
    one during start-up propagates after cleaning up. Raises `PolicyError`, `DemoError`,
    `SettingsError`, `TopicError`, `LocalKafkaError` or `KafkaException` when something
    cannot start.
    """
    load_policy(options.policy_path)  # refused here, with every problem, before starting anything
    app_id = options.app_id or default_app_id()
    rng = random.Random(options.seed)
    plain = options.plain or not console.is_terminal

    def header(stats: DemoStats) -> str:
        limit = f" / {_elapsed(options.duration)}" if options.duration else "  (Ctrl-C to stop)"
        return (
            f"slaclock demo  app {app_id}  elapsed {_elapsed(stats.elapsed)}{limit}  "
            f"{options.rate:g} tickets/s"
        )

    view: View = PlainView(console, options.status_every) if plain else LiveView(console, header)
    with ExitStack() as stack:
        # -- broker
        # Every setting is checked before anything starts.
        bootstrap = options.bootstrap or load_settings().bootstrap_servers
        configured = demo_settings(bootstrap, app_id, options.policy_path)
        broker_started = False
        broker = None if options.bootstrap else local_broker_for(bootstrap)
        if broker_answers(configured):
            view.message(f"Kafka: using the broker at {bootstrap}")
        elif options.bootstrap:
            raise DemoError(f"no Kafka broker answers at {bootstrap} (--bootstrap)")
        elif broker is None:
            raise DemoError(
                f"no Kafka broker answers at {bootstrap} (SLACLOCK_BOOTSTRAP_SERVERS), and "
                "the demo starts a local one only on 127.0.0.1 or localhost: start a broker "
                "there, or point --bootstrap at one"
            )
        else:
            state = broker.status()
            if state.running and state.bootstrap:
                bootstrap = broker.up(timeout=options.broker_timeout)
                view.message(f"Kafka: using the local broker at {bootstrap} (pid {state.pid})")
            else:
                if not broker.jars.is_complete():
                    view.message(f"Kafka: resolving the broker jars into {broker.jars.libs} ...")
                view.message(f"Kafka: starting a local broker at {broker.bootstrap} ...")
                started = time.monotonic()
                stack.callback(broker.down)
                bootstrap = broker.up(timeout=options.broker_timeout)
                broker_started = True
                view.message(
                    f"Kafka: up in {time.monotonic() - started:.1f} s (stopped again at exit; "
                    f"log {broker.log_file})"
                )

        # -- topics
        settings = demo_settings(bootstrap, app_id, options.policy_path)
        if not options.keep_topics:
            stack.callback(delete_topics, settings)
        ensure_topics(settings)
        kept = "kept" if options.keep_topics else "deleted at exit"
        view.message(
            f"topics: {settings.topic_events}, ... ({settings.partitions} partitions, {kept})"
        )

        # -- subscriber, worker
        dlq_topic = settings.topic_dlq
        subscriber = OutputSubscriber(settings, [*output_topics(settings), dlq_topic])
        stack.callback(subscriber.close)
        log_dir = Path(tempfile.mkdtemp(prefix=f"{app_id}-"))
        worker = WorkerProcess(settings, log_dir / "worker.log")
        stack.callback(worker.stop)
        view.message(
            f"worker: started (pid {worker.pid}), policy {settings.policy_path}, "
            f"tick {TICK_INTERVAL:g} s, grace {GRACE:g} s; log {worker.log_path}"
        )
        wait_until_ticking(settings, worker, options.ready_timeout)
        notifier = None
        if options.notify:
            from slaclock.demo_notify import DemoNotifier

            notifier = DemoNotifier(settings, worker_env(settings), log_dir)
            stack.callback(notifier.stop)
            if not options.keep_topics:
                stack.callback(notifier.delete_topics)
            view.message(
                f"notify: started (pid {notifier.process.pid}), breaches and late warnings to "
                f"a local Slack-like receiver; status {notifier.status_url}; "
                f"log {notifier.log_path}"
            )
        if worker.http_url:
            view.message(f"worker: HTTP at {worker.http_url} (/health, /metrics, /tickets/D00000)")

        # -- publisher and the loop
        publisher = TicketEventPublisher(settings)
        stack.callback(publisher.close, 10.0)
        stats = DemoStats()
        view.message(
            f"publishing {options.rate:g} new tickets/s to {publisher.topic}"
            + (f" for {options.duration:g} s" if options.duration else "; Ctrl-C to stop")
        )
        stack.callback(view.close)
        workload = LiveWorkload(rng, options.rate, options.unknown_every)

        def handle(record: ReceivedRecord) -> None:
            if record.topic == dlq_topic:
                error = record.headers.get("error_class", b"?").decode(errors="replace")
                stats.dead_letters[error] += 1
                view.output(format_dead_letter(record))
                return
            try:
                event = parse_output_event(record.value)
            except ValidationError:
                stats.invalid += 1
                return
            stats.count(event)
            view.output(format_output(event))

        interrupted = False
        try:
            while options.duration is None or stats.elapsed < options.duration:
                now = stats.elapsed
                for event in workload.due(now):
                    publisher.publish(stamp(event))
                    stats.published += 1
                    stats.tickets += event["type"] == "ticket.created"
                stats.undelivered = len(publisher.errors)
                if not worker.running():
                    raise worker.failure(f"exited with status {worker.process.returncode}")
                wait = min(max(workload.next_due() - stats.elapsed, 0.0), 0.2)
                for record in _drain(subscriber, wait):
                    handle(record)
                for line in notifier.lines() if notifier else []:
                    view.output(line)
                view.update(stats)
        except KeyboardInterrupt:
            interrupted = True
        stats.ended = time.monotonic()
        view.update(stats, force=True)
        # Stop in order: no more input, then the worker (it commits what it has), then
        # collect the outputs it committed last.
        publisher.close(10.0)
        stats.undelivered = len(publisher.errors) + publisher.pending
        # Drop the producer now, not after the broker stopped (it would log its lost
        # connections); the exit stack lets go of it when it unwinds past its callback.
        del publisher
        view.message("stopping the worker ...")
        worker_exit = worker.stop()
        for record in _drain(subscriber, 2.0, idle=1.5, limit=5.0):
            handle(record)
        if notifier is not None:
            for line in notifier.lines():
                view.output(line)
            view.message(f"notify: {notifier.received} notifications received")
        view.close()
    return DemoResult(
        stats=stats,
        app_id=app_id,
        bootstrap=bootstrap,
        broker_started=broker_started,
        worker_pid=worker.pid,
        worker_exit=worker_exit,
        worker_log=worker.log_path,
        interrupted=interrupted,
    )


def _drain(
    subscriber: OutputSubscriber, wait: float, idle: float = 0.0, limit: float = 0.3
) -> Iterator[ReceivedRecord]:
    """The records arriving within `wait` seconds, then those following each other less
    than `idle` seconds apart, for at most `limit` seconds more."""
    until = time.monotonic() + wait + limit
    record = subscriber.poll_record(wait)
    while record is not None:
        yield record
        if time.monotonic() >= until:
            return
        record = subscriber.poll_record(idle)


def print_summary(console: Console, result: DemoResult, plain: bool) -> None:
    """The final summary, after everything was stopped."""
    stats = result.stats
    how = "interrupted" if result.interrupted else "finished"
    broker = "stopped the broker it started" if result.broker_started else "left the broker running"
    if plain:
        console.print(
            f"demo {how} after {_elapsed(stats.elapsed)}: {stats.line()}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"worker (pid {result.worker_pid}) exited with status {result.worker_exit}; "
            f"{broker}; worker log {result.worker_log}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        summary_table(stats, title=f"slaclock demo {how} after {_elapsed(stats.elapsed)}")
    )
    console.print(totals_table(stats))
    console.print(
        f"worker (pid {result.worker_pid}) exited with status {result.worker_exit}; {broker}; "
        f"worker log {result.worker_log}",
        markup=False,
        highlight=False,
    )
