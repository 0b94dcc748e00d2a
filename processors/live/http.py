"""The worker's HTTP server: /health, /ready, /metrics and /tickets/{ticket_id}.

Why the standard library's `ThreadingHTTPServer` (not faust's web server, nor aiohttp):
the worker is plain threads, every answer is a few dictionary reads, and the one slow
call (asking the broker who owns a partition) is blocking anyway; a thread per request
needs no event loop and no extra dependency.

Routing of `/tickets/{ticket_id}`: a ticket lives in partition
`toPositive(murmur2(ticket_id)) % N` of the events topic (the partitioner of Java clients
and of confluent-kafka's `murmur2_random`, which publishers must use, SPEC 1). If this
worker holds the ticket it answers; if it owns the partition and has no such ticket,
404; otherwise it looks the partition's owner up in the stage-1 consumer group (each
worker's stage-1 consumer carries its advertised URL as `client.id`) and answers
307 to the same path there, or 503 while nobody owns it (a rebalance).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from processors.engine.instants import US_PER_SECOND
from processors.engine.status import TicketStatus, ticket_status
from processors.engine.ticket import TicketState
from slaclock.settings import Settings

if TYPE_CHECKING:
    from processors.live.worker import Worker

log = logging.getLogger(__name__)

STAGE_THREADS = ("tickets", "ledger", "ticker")
"""Threads that must be alive for /health (the contracts feed may end on its own)."""

PARTITION_CACHE_SECONDS = 30.0
SNAPSHOT_ATTEMPTS = 3


# -- partitioning, the Java way ----------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java `Utils.murmur2`), as a signed 32-bit integer."""
    m = 0x5BD1E995
    mask = 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """The partition a keyed record lands in (Java `Utils.toPositive(murmur2(key)) % N`)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# -- who owns a partition -----------------------------------------------------------------


class Directory(Protocol):
    def partitions(self) -> int:
        """Partition count of the events topic."""

    def owner_of(self, partition: int) -> str | None:
        """Advertised URL of the worker that owns `partition` of the events topic, if any."""


class KafkaDirectory:
    """Answers from the broker: topic metadata and the stage-1 consumer group's members."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_events
        self.group = f"{settings.app_id}-tickets"
        self.admin = AdminClient(settings.kafka_config())
        self._count = 0
        self._counted_at = 0.0

    def partitions(self) -> int:
        if self._count and time.monotonic() - self._counted_at < PARTITION_CACHE_SECONDS:
            return self._count
        metadata = self.admin.list_topics(self.topic, timeout=5)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise LookupError(f"topic {self.topic!r} is not available")
        self._count, self._counted_at = len(topic.partitions), time.monotonic()
        return self._count

    def owner_of(self, partition: int) -> str | None:
        future = self.admin.describe_consumer_groups([self.group], request_timeout=5)[self.group]
        description = future.result(timeout=10)
        for member in description.members:
            assignment = member.assignment
            if assignment is None:
                continue
            for tp in assignment.topic_partitions:
                if tp.topic == self.topic and tp.partition == partition:
                    client_id = str(member.client_id)
                    return client_id if client_id.startswith(("http://", "https://")) else None
        return None


# -- health and readiness -----------------------------------------------------------------


def health(worker: Worker) -> tuple[bool, dict[str, Any]]:
    """Live while no component has failed, no stop was asked and the stage threads run."""
    alive = {thread.name: thread.is_alive() for thread in getattr(worker, "threads", [])}
    ok = (
        not worker.stop.is_set()
        and worker.failure is None
        and all(alive.get(name, False) for name in STAGE_THREADS)
    )
    return ok, {"status": "ok" if ok else "failing", "threads": alive}


def readiness(worker: Worker) -> tuple[bool, dict[str, Any]]:
    """Ready when live and both stages have restored an assignment they still hold.

    A worker with no partitions (more workers than partitions) is not ready: it
    processes nothing, which is what an operator wants to see.
    """
    live, _ = health(worker)
    stages: dict[str, Any] = {}
    for name, loop in (("tickets", worker.tickets), ("ledger", worker.ledger)):
        with loop.assigned_lock:
            partitions = sorted(loop.assigned)
        stages[name] = {"restored": loop.ready.is_set(), "partitions": partitions}
    ready = live and all(s["restored"] and s["partitions"] for s in stages.values())
    return ready, {"ready": ready, "live": live, "stages": stages}


# -- extra metrics, computed at scrape time ------------------------------------------------


class InputLagCollector(Collector):
    """Records of the events topic not yet processed, per owned partition; and ownership.

    Processed = the stage-1 task's next offset (in memory: ahead of the committed
    offset by at most one transaction). End = the partition's high watermark.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        """Names only, so registering does not query the broker."""
        yield GaugeMetricFamily("slaclock_consumer_lag_records", "", labels=["partition"])
        yield GaugeMetricFamily("slaclock_assigned_partitions", "", labels=["stage"])

    def collect(self) -> Iterator[Metric]:
        worker = self.worker
        assigned = GaugeMetricFamily(
            "slaclock_assigned_partitions",
            "Partitions this worker owns, per stage",
            labels=["stage"],
        )
        for name, loop in (("tickets", worker.tickets), ("ledger", worker.ledger)):
            with loop.assigned_lock:
                assigned.add_metric([name], len(loop.assigned))
        yield assigned
        lag = GaugeMetricFamily(
            "slaclock_consumer_lag_records",
            "Records of the events topic not yet processed by this worker",
            labels=["partition"],
        )
        topic = worker.settings.topic_events
        for partition in worker.tickets.owned_partitions():
            task = worker.tickets.tasks.get(partition)
            if task is None:
                continue
            try:
                low, high = self._watermarks(TopicPartition(topic, partition))
            except (KafkaException, RuntimeError) as error:
                log.debug("lag of %s[%d] unknown: %s", topic, partition, error)
                continue
            lag.add_metric([str(partition)], max(0, high - max(task.processed_offset, low)))
        yield lag

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        with self._lock:
            if self._consumer is None:
                self._consumer = Consumer(
                    {
                        **self.worker.settings.kafka_config(),
                        "group.id": f"{self.worker.settings.app_id}-http",
                        "enable.auto.commit": False,
                    }
                )
            consumer = self._consumer
        low, high = consumer.get_watermark_offsets(tp, timeout=2, cached=False)
        return int(low), int(high)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None


# -- the server ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: StatusServer


class StatusServer:
    """Binds at construction (a taken port fails the worker at start), serves in a thread."""

    def __init__(self, worker: Worker, directory: Directory | None = None) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.directory: Directory = directory or KafkaDirectory(worker.settings)
        self.lag = InputLagCollector(worker)
        worker.metrics.registry.register(self.lag)
        self.httpd = _Server((self.settings.http_host, self.settings.http_port), _Handler)
        self.httpd.app = self
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http"
        )
        self.thread.daemon = True

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()
        log.info("http: serving on port %d as %s", self.port, self.settings.http_url)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        self.lag.close()

    # -- the answers (status, headers, body) -----------------------------------------------

    def route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path == "/health":
            ok, body = health(self.worker)
            return _json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
        if path == "/ready":
            ok, body = readiness(self.worker)
            return _json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
        if path == "/metrics":
            payload = generate_latest(self.worker.metrics.registry)
            return HTTPStatus.OK, {"Content-Type": CONTENT_TYPE_LATEST}, payload
        if path.startswith("/tickets/") and len(path) > len("/tickets/"):
            return self.ticket(path, urllib.parse.unquote(path[len("/tickets/") :]))
        return _json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})

    def ticket(self, path: str, ticket_id: str) -> tuple[int, dict[str, str], bytes]:
        found = self.local_status(ticket_id)
        if found is not None:
            return _json(HTTPStatus.OK, found)
        try:
            partition = partition_for(ticket_id, self.directory.partitions())
            if partition in self.worker.tickets.owned_partitions():
                found = self.local_status(ticket_id)  # restored in the meantime?
                if found is not None:
                    return _json(HTTPStatus.OK, found)
                return _json(
                    HTTPStatus.NOT_FOUND,
                    {"error": "unknown ticket", "ticket_id": ticket_id, "partition": partition},
                )
            owner = self.directory.owner_of(partition)
        except (KafkaException, LookupError, TimeoutError) as error:
            log.warning("http: routing %s failed: %s", ticket_id, error)
            return _unavailable({"error": f"cannot find the ticket's owner: {error}"})
        if owner is None or owner == self.settings.http_url:
            return _unavailable(
                {"error": "the ticket's partition has no owner yet", "partition": partition}
            )
        return (
            HTTPStatus.TEMPORARY_REDIRECT,
            {"Location": owner + path, "Content-Type": "application/json"},
            orjson.dumps({"location": owner + path, "partition": partition}),
        )

    def local_status(self, ticket_id: str) -> dict[str, Any] | None:
        """The ticket's status if a task of this worker holds it, as of that task's clock."""
        for partition, task in list(self.worker.tickets.tasks.items()):
            state = task.store.get(ticket_id)
            if state is None:
                continue
            clock = task.stage.clock
            now = clock if clock is not None else int(time.time() * US_PER_SECOND)
            status = _snapshot_status(self.worker, state, now)
            return {**status, "partition": partition}
        return None


def _snapshot_status(worker: Worker, state: TicketState, now: int) -> TicketStatus:
    """Compute on a copy: the stage thread mutates the live state in place.

    The copy is not taken under a lock, so a copy caught mid-update can be inconsistent;
    that shows as an exception here (a retry takes a fresh copy), never in the stage.
    """
    for attempt in range(SNAPSHOT_ATTEMPTS):
        try:
            copy = TicketState.from_record(state.to_record())
            return ticket_status(copy, worker.policy, now)
        except Exception:
            if attempt == SNAPSHOT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _json(status: int, body: object) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, orjson.dumps(body)


def _unavailable(body: object) -> tuple[int, dict[str, str], bytes]:
    status, headers, payload = _json(HTTPStatus.SERVICE_UNAVAILABLE, body)
    return status, {**headers, "Retry-After": "1"}, payload


class _Handler(BaseHTTPRequestHandler):
    server_version = "slaclock"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        app = cast(_Server, self.server).app
        path = urllib.parse.urlsplit(self.path).path
        try:
            status, headers, body = app.route(path)
        except Exception as error:  # answer 500, keep serving
            log.exception("http: GET %s failed", path)
            status, headers, body = _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(error)})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)
