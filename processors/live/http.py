"""The worker's HTTP server: /health, /ready, /metrics, /tickets/{ticket_id} and the other
data endpoints (/customers/{id}, /groups/{group}, /services/{id}, /policy).

`/tickets/{ticket_id}?explain=true` answers the ticket's timelines instead of its status
(docs/semantics.md: Explanations), as of the same partition clock, under the same access and
routing rules.

Why the standard library's `ThreadingHTTPServer` (not faust's web server, nor aiohttp):
the worker is plain threads, every answer is a few dictionary reads, and the one slow
call (asking the broker who owns a partition) is blocking anyway; a thread per request
needs no event loop and no extra dependency.

Routing of `/tickets/{ticket_id}`: a ticket lives in partition
`toPositive(murmur2(ticket_id)) % N` of the events topic (the partitioner of Java clients
and of confluent-kafka's `murmur2_random`, which publishers must use, docs/semantics.md: Inputs). If this
worker holds the ticket it answers; if it owns the partition and has no such ticket,
404; otherwise it looks the partition's owner up in the stage-1 consumer group (each
worker's stage-1 consumer carries its advertised URL as `client.id`) and answers
307 to the same path there, or 503 while nobody owns it (a rebalance).

Access: `/health`, `/ready` and `/metrics` are open (probes and Prometheus). Every other
path is a data endpoint (`/tickets/...` and whatever is added beside it): it needs
`Authorization: Bearer <SLACLOCK_HTTP_TOKEN>`, and with no token configured it is refused
(403) unless `SLACLOCK_HTTP_OPEN_DATA=true`. HEAD is answered like GET, without a body.

What the server sees of the worker is a `WorkerView`: health, readiness, partitions,
offsets and immutable ticket snapshots (each ticket's state as serialised at the end of
its task's last batch, with that batch's clock), never the objects the stage thread
mutates.
"""

from __future__ import annotations

import errno
import hmac
import logging
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from slaclock.client.librdkafka_log import with_logging
from slaclock.processors.engine.explain import explain_with_policy
from slaclock.processors.engine.group_view import AtRisk, tickets_at_risk
from slaclock.processors.engine.instants import US_PER_SECOND, format_us
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.status import TicketStatus, ticket_status
from slaclock.processors.engine.ticket import TicketState
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.live.records import ledger_partition
from slaclock.processors.settings import Settings

if TYPE_CHECKING:
    from slaclock.processors.live.worker import Worker

log = logging.getLogger(__name__)

STAGE_THREADS = ("tickets", "ledger", "ticker")
"""Threads that must be alive for /health (the contracts feed may end on its own)."""

PARTITION_CACHE_SECONDS = 30.0

AT_RISK_SUFFIX = "/at-risk"
"""`/groups/{group}/at-risk`: one worker's share of a group's tickets at risk (asked by the
worker answering `/groups/{group}`; a data endpoint like the others)."""

PEER_TIMEOUT_SECONDS = 5.0

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Answered without a token; every other path is a data endpoint."""

Response = tuple[int, dict[str, str], bytes]


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

    def __init__(
        self, settings: Settings, topic: str | None = None, group: str | None = None
    ) -> None:
        self.topic = topic or settings.topic_events
        self.group = group or f"{settings.app_id}-tickets"
        self.admin = AdminClient(with_logging(settings.kafka_config()))
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


# -- what the server sees of a worker --------------------------------------------------------


@dataclass(frozen=True)
class TicketSnapshot:
    """A ticket as of the end of its task's last batch: immutable, safe on any thread."""

    partition: int
    record: bytes  # the state as the changelog has it
    clock: int | None  # the partition's SLA clock after that batch


@runtime_checkable
class WorkerView(Protocol):
    """The narrow, read-only view of a worker that the HTTP server answers from."""

    @property
    def settings(self) -> Settings: ...

    @property
    def policy(self) -> CompiledPolicy: ...

    @property
    def versions(self) -> PolicyBook:
        """The policy versions of the stage-1 loop (a ticket's view uses its own)."""

    @property
    def registry(self) -> CollectorRegistry: ...

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Live: no component failed, no stop asked, the stage threads run."""

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready: live, the broker reachable, and both stages restored an assignment they
        still hold."""

    def owned_partitions(self) -> list[int]:
        """Partitions of the events topic whose stage-1 task runs here."""

    def assigned_counts(self) -> dict[str, int]:
        """Partitions owned per stage (`tickets`, `ledger`)."""

    def processed_offsets(self) -> dict[int, int]:
        """Next offset of the events topic to process, per stage-1 task."""

    def ticket_snapshot(self, ticket_id: str) -> TicketSnapshot | None:
        """The ticket if a task of this worker holds it."""

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's account if its ledger task runs here (None: no contract).

        Raises LookupError when another worker owns it.
        """

    def service_status(self, service_id: str) -> dict[str, Any] | None:
        """A service's availability view if a services task of this worker holds it."""

    def service_ids(self) -> list[str]:
        """The services the policy defines."""

    def policy_versions(self) -> dict[str, Any]:
        """The policy versions this worker knows and the one in force (`GET /policy`)."""

    def group_names(self) -> list[str]:
        """The internal groups any policy version this worker knows defines."""

    def group_view(self, group: str, at_risk: list[AtRisk]) -> dict[str, Any] | None:
        """The group's open month (with `at_risk`) if its ledger task runs here (None: the
        version in force does not define it). Raises LookupError when another worker owns it.
        """

    def group_at_risk(self, group: str) -> tuple[list[int], list[AtRisk]]:
        """(the events-topic partitions whose stage-1 task runs here, the group's cycles at
        risk among their tickets, each as of its partition's clock)."""


class LiveWorkerView:
    """`WorkerView` over a running `Worker`: the one place that knows its insides."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    @property
    def settings(self) -> Settings:
        return self._worker.settings

    @property
    def policy(self) -> CompiledPolicy:
        return self._worker.policy

    @property
    def versions(self) -> PolicyBook:
        return self._worker.tickets.versions

    @property
    def registry(self) -> CollectorRegistry:
        return self._worker.metrics.registry

    def health(self) -> tuple[bool, dict[str, Any]]:
        worker = self._worker
        alive = {thread.name: thread.is_alive() for thread in getattr(worker, "threads", [])}
        ok = (
            not worker.stop.is_set()
            and worker.failure is None
            and all(alive.get(name, False) for name in STAGE_THREADS)
        )
        return ok, {"status": "ok" if ok else "failing", "threads": alive}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """A worker with no partitions (more workers than partitions) is not ready: it
        processes nothing, which is what an operator wants to see."""
        live, _ = self.health()
        # during a broker outage the worker keeps running but does no work: not ready
        broker_up = bool(getattr(self._worker, "broker_up", True))
        stages: dict[str, Any] = {}
        for name, loop in (("tickets", self._worker.tickets), ("ledger", self._worker.ledger)):
            with loop.assigned_lock:
                partitions = sorted(loop.assigned)
            stages[name] = {"restored": loop.ready.is_set(), "partitions": partitions}
        ready = (
            live and broker_up and all(s["restored"] and s["partitions"] for s in stages.values())
        )
        return ready, {"ready": ready, "live": live, "broker_up": broker_up, "stages": stages}

    def owned_partitions(self) -> list[int]:
        return self._worker.tickets.owned_partitions()

    def assigned_counts(self) -> dict[str, int]:
        counts = {}
        for name, loop in (("tickets", self._worker.tickets), ("ledger", self._worker.ledger)):
            with loop.assigned_lock:
                counts[name] = len(loop.assigned)
        return counts

    def processed_offsets(self) -> dict[int, int]:
        return {p: t.processed_offset for p, t in list(self._worker.tickets.tasks.items())}

    def ticket_snapshot(self, ticket_id: str) -> TicketSnapshot | None:
        found = self._worker.tickets.published(ticket_id)
        return None if found is None else TicketSnapshot(*found)

    def customer_view(self, customer_id: str) -> dict[str, Any] | None:
        return self._worker.ledger.customer_view(customer_id)

    def service_status(self, service_id: str) -> dict[str, Any] | None:
        """A service's availability view if a services task of this worker holds it."""
        services = getattr(self._worker, "services", None)
        return None if services is None else services.service_status(service_id)

    def service_ids(self) -> list[str]:
        services = getattr(self._worker, "services", None)
        return [] if services is None else services.service_ids()

    def group_names(self) -> list[str]:
        versions = self._worker.tickets.versions
        return sorted({g for v in versions.ids() for g in versions.get(v).policy.groups})

    def group_view(self, group: str, at_risk: list[AtRisk]) -> dict[str, Any] | None:
        return self._worker.ledger.group_view(group, at_risk)

    def group_at_risk(self, group: str) -> tuple[list[int], list[AtRisk]]:
        tickets = self._worker.tickets
        partitions: list[int] = []
        found: list[AtRisk] = []
        for partition, records, clock in tickets.open_group_tickets(group):
            partitions.append(partition)
            now = clock if clock is not None else int(time.time() * US_PER_SECOND)
            for record in records:
                state = TicketState.from_record(orjson.loads(record))
                found.extend(tickets_at_risk(state, group, self.policy, now, tickets.versions))
        return sorted(partitions), found

    def policy_versions(self) -> dict[str, Any]:
        """As of the latest clock of this worker's ticket partitions (else the wall clock):
        the versions its stage-1 loop has read, in the order they take effect."""
        tickets = self._worker.tickets
        clocks = [t.stage.clock for t in list(tickets.tasks.values()) if t.stage.clock is not None]
        as_of = max(clocks) if clocks else int(time.time() * US_PER_SECOND)
        return versions_view(tickets.versions, as_of)


# -- extra metrics, computed at scrape time ------------------------------------------------


class InputLagCollector(Collector):
    """Records of the events topic not yet processed, per owned partition; and ownership.

    Processed = the stage-1 task's next offset (in memory: ahead of the committed
    offset by at most one transaction). End = the partition's high watermark.
    """

    def __init__(self, view: WorkerView) -> None:
        self.view = view
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        """Names only, so registering does not query the broker."""
        yield GaugeMetricFamily("slaclock_consumer_lag_records", "", labels=["partition"])
        yield GaugeMetricFamily("slaclock_assigned_partitions", "", labels=["stage"])

    def collect(self) -> Iterator[Metric]:
        view = self.view
        assigned = GaugeMetricFamily(
            "slaclock_assigned_partitions",
            "Partitions this worker owns, per stage",
            labels=["stage"],
        )
        for name, count in view.assigned_counts().items():
            assigned.add_metric([name], count)
        yield assigned
        lag = GaugeMetricFamily(
            "slaclock_consumer_lag_records",
            "Records of the events topic not yet processed by this worker",
            labels=["partition"],
        )
        topic = view.settings.topic_events
        processed = view.processed_offsets()
        for partition in view.owned_partitions():
            offset = processed.get(partition)
            if offset is None:
                continue
            try:
                low, high = self._watermarks(TopicPartition(topic, partition))
            except (KafkaException, RuntimeError) as error:
                log.debug("lag of %s[%d] unknown: %s", topic, partition, error)
                continue
            lag.add_metric([str(partition)], max(0, high - max(offset, low)))
        yield lag

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        with self._lock:
            if self._consumer is None:
                self._consumer = Consumer(
                    {
                        **with_logging(self.view.settings.kafka_config()),
                        "group.id": f"{self.view.settings.app_id}-http",
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


class HttpBindError(RuntimeError):
    """The HTTP server cannot listen where the settings say: one line saying what to fix."""


def bind_server(host: str, port: int) -> _Server:
    try:
        return _Server((host, port), _Handler)
    except OSError as error:
        where = f"{host}:{port}"
        if error.errno == errno.EADDRINUSE:
            problem = f"{where} is in use"
        elif error.errno == errno.EACCES:
            problem = f"no permission to listen on {where} (ports below 1024 need privileges)"
        else:
            reason = error.strerror or str(error)
            problem = f"cannot listen on {where}: {reason} (SLACLOCK_HTTP_HOST={host})"
        raise HttpBindError(
            f"HTTP server: {problem}; set SLACLOCK_HTTP_PORT to a free port (0 = no HTTP server)"
        ) from None


def check_http_port(settings: Settings) -> None:
    """Fail at start, before contacting Kafka, when the HTTP port cannot be bound."""
    if settings.http_port:
        bind_server(settings.http_host, settings.http_port).server_close()


class StatusServer:
    """Binds at construction (a taken port fails the worker at start), serves in a thread."""

    def __init__(self, worker: Worker | WorkerView, directory: Directory | None = None) -> None:
        self.view: WorkerView = worker if isinstance(worker, WorkerView) else LiveWorkerView(worker)
        self.settings = self.view.settings
        self.directory: Directory = directory or KafkaDirectory(self.settings)
        self.ledger_directory: Directory | None = None  # made on the first customer redirect
        self.lag = InputLagCollector(self.view)
        self.view.registry.register(self.lag)
        self.httpd = bind_server(self.settings.http_host, self.settings.http_port)
        self.httpd.app = self
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http"
        )
        self.thread.daemon = True
        if self.settings.http_token is None and self.settings.http_open_data:
            log.warning("http: data endpoints are open to anyone (SLACLOCK_HTTP_OPEN_DATA)")

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
        self.view.registry.unregister(self.lag)

    # -- the answers (status, headers, body) -----------------------------------------------

    def answer(self, path: str, authorization: str | None = None, query: str = "") -> Response:
        """Access control first (generic: every path but the open ones), then `route`."""
        refused = self.refuse(path, authorization)
        return refused if refused is not None else self.route(path, query)

    def refuse(self, path: str, authorization: str | None) -> Response | None:
        """None when the request may see `path`, else the refusal."""
        if path in OPEN_PATHS:
            return None
        token = self.settings.http_token
        if token is None:
            if self.settings.http_open_data:
                return None
            return _json(
                HTTPStatus.FORBIDDEN,
                {
                    "error": "data endpoints are closed: no token is configured; set "
                    "SLACLOCK_HTTP_TOKEN (or SLACLOCK_HTTP_TOKEN_FILE) and send "
                    "'Authorization: Bearer <token>', or set SLACLOCK_HTTP_OPEN_DATA=true"
                },
            )
        scheme, _, supplied = (authorization or "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), expected):
            return None
        status, response_headers, body = _json(
            HTTPStatus.UNAUTHORIZED,
            {"error": "a valid 'Authorization: Bearer <token>' header is required"},
        )
        challenge = 'Bearer realm="slaclock"'
        if authorization:
            challenge += ', error="invalid_token"'
        return status, {**response_headers, "WWW-Authenticate": challenge}, body

    def route(self, path: str, query: str = "") -> Response:
        if path == "/health":
            ok, body = self.view.health()
            return _json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
        if path == "/ready":
            ok, body = self.view.readiness()
            return _json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
        if path == "/metrics":
            payload = generate_latest(self.view.registry)
            return HTTPStatus.OK, {"Content-Type": CONTENT_TYPE_LATEST}, payload
        if path.startswith("/tickets/") and len(path) > len("/tickets/"):
            explain = _explain_flag(query)
            if explain is None:
                return _json(
                    HTTPStatus.BAD_REQUEST,
                    {"error": "explain must be true or false (GET /tickets/{id}?explain=true)"},
                )
            return self.ticket(path, urllib.parse.unquote(path[len("/tickets/") :]), explain)
        if path.startswith("/customers/") and len(path) > len("/customers/"):
            return self.customer(path, urllib.parse.unquote(path[len("/customers/") :]))
        if path == "/policy":
            return _json(HTTPStatus.OK, self.view.policy_versions())
        if path.startswith("/groups/") and path.endswith(AT_RISK_SUFFIX):
            group = urllib.parse.unquote(path[len("/groups/") : -len(AT_RISK_SUFFIX)])
            partitions, found = self.view.group_at_risk(group)
            return _json(HTTPStatus.OK, {"partitions": partitions, "at_risk": found})
        if path.startswith("/groups/") and len(path) > len("/groups/"):
            return self.group(path, urllib.parse.unquote(path[len("/groups/") :]))
        if path.startswith("/services/") and len(path) > len("/services/"):
            return self.service(path, urllib.parse.unquote(path[len("/services/") :]))
        return _json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})

    def ticket(self, path: str, ticket_id: str, explain: bool = False) -> Response:
        """The ticket's status, or with `explain` its timelines (docs/semantics.md:
        Explanations), if a task here holds it; else 404 or a 307 to its owner (the
        redirect keeps `?explain=true`)."""
        answer = self.local_explanation if explain else self.local_status
        found = answer(ticket_id)
        if found is not None:
            return _json(HTTPStatus.OK, found)
        if explain:
            path += "?explain=true"
        try:
            partition = partition_for(ticket_id, self.directory.partitions())
            if partition in self.view.owned_partitions():
                found = answer(ticket_id)  # restored in the meantime?
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

    def customer(self, path: str, customer_id: str) -> Response:
        """The customer's account from its ledger task, or a 307 to the worker that has it."""
        try:
            view = self.view.customer_view(customer_id)
        except LookupError:
            return self._redirect_to_ledger_owner(path, customer_id, "customer")
        if view is None:
            return _json(HTTPStatus.NOT_FOUND, {"error": "no contract", "customer_id": customer_id})
        return _json(HTTPStatus.OK, view)

    def group(self, path: str, group: str) -> Response:
        """A group's open month from its ledger task, or a 307 to the worker that has it.

        The ledger task owning the group (its key's ledger partition, like a customer's)
        answers; the tickets at risk live in stage-1 tasks all over the cluster, so it adds
        its own and asks the owner of every other events partition
        (`/groups/{group}/at-risk`); partitions it could not hear from are listed in
        `at_risk_missing_partitions`.
        """
        if group not in self.view.group_names():
            return _json(HTTPStatus.NOT_FOUND, {"error": "unknown group", "group": group})
        try:
            found = self.view.group_view(group, [])
        except LookupError:
            return self._redirect_to_ledger_owner(path, group, "group")
        if found is None:
            return _json(
                HTTPStatus.NOT_FOUND,
                {"error": "the policy in force does not define this group", "group": group},
            )
        entries, missing = self._gather_at_risk(group)
        view = self.view.group_view(group, entries)
        if view is None:  # a policy version took effect meanwhile
            return _json(HTTPStatus.NOT_FOUND, {"error": "unknown group", "group": group})
        view["at_risk_missing_partitions"] = missing
        return _json(HTTPStatus.OK, view)

    def _gather_at_risk(self, group: str) -> tuple[list[AtRisk], list[int]]:
        """The group's cycles at risk on every events partition: this worker's own, then
        each other owner's; and the partitions nobody answered for."""
        covered, entries = self.view.group_at_risk(group)
        try:
            missing = sorted(set(range(self.directory.partitions())) - set(covered))
            owners: dict[str, list[int]] = {}
            for partition in missing:
                owner = self.directory.owner_of(partition)
                if owner is not None and owner != self.settings.http_url:
                    owners.setdefault(owner, []).append(partition)
        except (KafkaException, LookupError, TimeoutError) as error:
            log.warning("http: finding the owners of group %s's tickets failed: %s", group, error)
            return entries, []
        heard: set[int] = set()
        path = "/groups/" + urllib.parse.quote(group, safe="") + AT_RISK_SUFFIX
        # Every owner at once: one slow or vanished worker costs one timeout, not one each.
        # The answers are taken in the owners' order, so the result does not depend on timing.
        ordered = sorted(owners)
        with ThreadPoolExecutor(max_workers=max(1, len(ordered))) as pool:
            asks = [pool.submit(self._ask_peer, owner + path) for owner in ordered]
            for owner, ask in zip(ordered, asks, strict=True):
                try:
                    answer = ask.result()
                except (OSError, ValueError) as error:
                    log.warning(
                        "http: asking %s for group %s's risk failed: %s", owner, group, error
                    )
                    continue
                heard.update(int(p) for p in answer["partitions"])
                entries.extend(answer["at_risk"])
        return entries, [p for p in missing if p not in heard]

    def _ask_peer(self, url: str) -> dict[str, Any]:
        request = urllib.request.Request(url)
        token = self.settings.http_token
        if token is not None:
            request.add_header("Authorization", f"Bearer {token.get_secret_value()}")
        with urllib.request.urlopen(request, timeout=PEER_TIMEOUT_SECONDS) as response:
            answer: dict[str, Any] = orjson.loads(response.read())
        return answer

    def service(self, path: str, service_id: str) -> Response:
        """A service's availability this period (status, downtime so far, budget left, when
        the budget runs out if nothing changes), or a 307 to the worker whose services task
        holds it. The figures come from the pure core (`AvailabilityClock.view`)."""
        found = self.view.service_status(service_id)
        if found is not None:
            return _json(HTTPStatus.OK, found)
        settings = self.settings
        if service_id not in self.view.service_ids():
            return _json(
                HTTPStatus.NOT_FOUND, {"error": "unknown service", "service_id": service_id}
            )
        try:
            directory = KafkaDirectory(
                settings, settings.topic_services, f"{settings.app_id}-services"
            )
            partition = partition_for(service_id, directory.partitions())
            owner = directory.owner_of(partition)
        except (KafkaException, LookupError, TimeoutError) as error:
            return _unavailable({"error": f"cannot find the service's owner: {error}"})
        if owner is None or owner == settings.http_url:
            return _json(
                HTTPStatus.NOT_FOUND,
                {"error": "no event for this service yet", "service_id": service_id},
            )
        return (
            HTTPStatus.TEMPORARY_REDIRECT,
            {"Location": owner + path, "Content-Type": "application/json"},
            orjson.dumps({"location": owner + path, "partition": partition}),
        )

    def _redirect_to_ledger_owner(self, path: str, key: str, what: str) -> Response:
        """A 307 to the worker whose ledger task owns `key` (a customer or a group)."""
        settings = self.settings
        try:
            directory = self.ledger_directory
            if directory is None:
                directory = self.ledger_directory = KafkaDirectory(
                    settings, settings.topic_ledger_input, f"{settings.app_id}-ledger"
                )
            partition = ledger_partition(key, directory.partitions())
            owner = directory.owner_of(partition)
        except (KafkaException, LookupError, TimeoutError) as error:
            log.warning("http: routing %s %s failed: %s", what, key, error)
            return _unavailable({"error": f"cannot find the {what}'s ledger: {error}"})
        if owner is None or owner == settings.http_url:
            return _unavailable(
                {
                    "error": f"the {what}'s ledger partition has no owner yet",
                    "partition": partition,
                }
            )
        return (
            HTTPStatus.TEMPORARY_REDIRECT,
            {"Location": owner + path, "Content-Type": "application/json"},
            orjson.dumps({"location": owner + path, "partition": partition}),
        )

    def local_explanation(self, ticket_id: str) -> dict[str, Any] | None:
        """The ticket's explanation as of its task's clock, if a task here holds it: the
        same JSON as `slaclock explain --json` for that instant."""
        snapshot = self.view.ticket_snapshot(ticket_id)
        if snapshot is None:
            return None
        state = TicketState.from_record(orjson.loads(snapshot.record))
        now = snapshot.clock
        if now is None:
            now = int(time.time() * US_PER_SECOND)
        return dict(explain_with_policy(state, self.view.policy, now, self.view.versions))

    def local_status(self, ticket_id: str) -> dict[str, Any] | None:
        """The ticket's status if a task of this worker holds it, as of that task's clock
        (both from the end of the task's last batch)."""
        snapshot = self.view.ticket_snapshot(ticket_id)
        if snapshot is None:
            return None
        state = TicketState.from_record(orjson.loads(snapshot.record))  # this thread's own
        now = snapshot.clock
        if now is None:
            now = int(time.time() * US_PER_SECOND)
        status: TicketStatus = ticket_status(state, self.view.policy, now, self.view.versions)
        return {**status, "partition": snapshot.partition}


def _explain_flag(query: str) -> bool | None:
    """`explain` of a query string: False when absent, None when not a boolean."""
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("explain")
    if not values:
        return False
    value = values[-1].lower()
    if value in ("true", "1", ""):
        return True
    if value in ("false", "0"):
        return False
    return None


def _json(status: int, body: object) -> Response:
    return status, {"Content-Type": "application/json"}, orjson.dumps(body)


def _unavailable(body: object) -> Response:
    status, headers, payload = _json(HTTPStatus.SERVICE_UNAVAILABLE, body)
    return status, {**headers, "Retry-After": "1"}, payload


class _Handler(BaseHTTPRequestHandler):
    server_version = "slaclock"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _refuse_method(self) -> None:
        status, headers, body = _json(
            HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported"}
        )
        self._send(status, {**headers, "Allow": "GET, HEAD"}, body, with_body=True)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the base class answers itself (a bad request line, an unknown method): a
        JSON body like every other answer, never its HTML page."""
        try:
            reason = self.responses[code][0]
        except KeyError:
            reason = "error"
        status, headers, body = _json(code, {"error": message or reason})
        self.close_connection = True
        with_body = self.command != "HEAD" and code >= 200 and code not in (204, 304)
        self._send(status, {**headers, "Connection": "close"}, body, with_body)

    def _respond(self, with_body: bool) -> None:
        app = cast(_Server, self.server).app
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        try:
            status, headers, body = app.answer(path, self.headers.get("Authorization"), split.query)
        except Exception as error:  # answer 500, keep serving
            log.exception("http: %s %s failed", self.command, path)
            status, headers, body = _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(error)})
        self._send(status, headers, body, with_body)

    def _send(self, status: int, headers: dict[str, str], body: bytes, with_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


def versions_view(versions: PolicyBook, as_of: int) -> dict[str, Any]:
    """`GET /policy`: every version (id, P, scope) and the one in force at `as_of`."""
    in_force = versions.in_force(as_of)
    return {
        "as_of": format_us(as_of),
        "in_force": in_force.version_id,
        "versions": [
            {
                "version": v.version_id,
                "effective_at": None if v is versions.first else format_us(v.effective),
                "applies_to": v.applies_to,
                "first": v is versions.first,
                "superseded_at_its_instant": not versions.winning(v),
            }
            for v in versions.versions
        ],
    }
