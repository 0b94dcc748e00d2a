"""`slaclock notify` as a faust app: read committed outputs, route, deliver, remember.

A thin adapter around the pure modules (`routing`, `render`, `retry`, `status`):

- one agent over the output topics, manual acks: a record's offset becomes committable
  only once every notification it produced was acknowledged or dead-lettered, so a crash
  re-reads it (at-least-once; the receiver sees the same `Idempotency-Key` again);
- per target, one chain per record key (ticket, customer or service): a ticket's
  notifications reach a target in the order of its outputs; different keys are delivered
  concurrently, at most `delivery.concurrency` requests in flight per target;
- the `delivered` table (changelog-backed, so it survives restarts) remembers the
  acknowledged idempotency keys for `delivery.delivered_ttl_seconds`; a re-read output
  whose key is in it is not sent again;
- dead letters go to the DLQ topic with the reason;
- `/notify/status` (JSON) and `/metrics` (Prometheus) on faust's web server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
import faust
from faust.types import EventT
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from slaclock.processors.heap import release_free_heap
from slaclock.processors.notify.config import NotifyConfig
from slaclock.processors.notify.driver import ReadCommittedApp, isolation_level
from slaclock.processors.notify.offsets import OffsetLedger
from slaclock.processors.notify.render import Request, render, signed_headers
from slaclock.processors.notify.retry import (
    SECOND,
    Attempt,
    DeadLetter,
    Delivered,
    RetryPolicy,
    decide,
    describe,
    expired,
    still_remembered,
)
from slaclock.processors.notify.routing import route
from slaclock.processors.notify.status import NotifyStatus

log = logging.getLogger("slaclock.notify")

MAX_EVENTS_IN_FLIGHT = 2000


@dataclass(frozen=True)
class NotifyOptions:
    app_id: str  # faust app id = consumer group = prefix of the table's changelog
    bootstrap_servers: str
    topics: list[str]  # output topics to read (they exist, same partition count)
    partitions: int
    replication_factor: int
    dlq_topic: str
    web_host: str
    web_port: int
    datadir: str
    from_beginning: bool = True
    heap_trim_interval: float = 60.0  # SLACLOCK_HEAP_TRIM_INTERVAL; 0: never


def now_us() -> int:
    return time.time_ns() // 1000


def _rfc3339(us: int) -> str:
    return datetime.fromtimestamp(us / SECOND, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Metrics:
    def __init__(self, targets: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        self.delivered = Counter(
            "slaclock_notify_delivered",
            "Notifications acknowledged by their target",
            ["target"],
            registry=self.registry,
        )
        self.failed = Counter(
            "slaclock_notify_dead_lettered",
            "Notifications given up and sent to the dead-letter topic",
            ["target"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "slaclock_notify_attempts",
            "HTTP attempts by result",
            ["target", "result"],
            registry=self.registry,
        )
        self.retrying = Gauge(
            "slaclock_notify_retrying",
            "Notifications waiting for their next attempt",
            ["target"],
            registry=self.registry,
        )
        self.delay = Histogram(
            "slaclock_notify_delay_seconds",
            "Output record timestamp to acknowledged delivery",
            ["target"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.outputs = Counter(
            "slaclock_notify_outputs_read", "Output records read", registry=self.registry
        )
        # Every target's series at 0 from the start: alerts on them see the first change.
        for name in targets:
            for family in (self.delivered, self.failed, self.retrying):
                family.labels(name)


class Deliverer:
    """Delivery state of one process: chains, semaphores, counts, the HTTP session."""

    def __init__(
        self,
        app: ReadCommittedApp,
        config: NotifyConfig,
        delivered: Any,  # the faust table
        dlq: faust.TopicT,
    ) -> None:
        self.app = app
        self.config = config
        self.delivered = delivered
        self.dlq = dlq
        self.policy = RetryPolicy.from_config(config.delivery)
        self.ttl_us = round(config.delivery.delivered_ttl_seconds * SECOND)
        self.status = NotifyStatus()
        for name in config.targets:
            self.status.target(name)
        self.metrics = Metrics(config.targets)
        self.semaphores = {
            name: asyncio.Semaphore(config.delivery.concurrency) for name in config.targets
        }
        self.chains: dict[tuple[str, bytes], asyncio.Task[None]] = {}
        self.in_flight = asyncio.Semaphore(MAX_EVENTS_IN_FLIGHT)
        self.random = random.Random()
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.marked: dict[str, asyncio.Event] = {}
        self.offsets: OffsetLedger = app.offsets

    # -- the agent's side ------------------------------------------------------------------

    async def handle(self, event: EventT[Any]) -> None:
        """Start the deliveries of one output record; it is acked when they have finished."""
        await self.in_flight.acquire()
        self.status.outputs_read += 1
        self.metrics.outputs.inc()
        message = event.message
        self.offsets.read(message.tp, message.offset)
        try:
            output = json.loads(message.value or b"")
            if not isinstance(output, dict) or not isinstance(output.get("event_id"), str):
                raise ValueError("not an output: an object with an event_id is expected")
        except ValueError:
            self.status.unreadable += 1
            log.warning(
                "skipped an unreadable record at %s[%d]@%d",
                message.topic,
                message.partition,
                message.offset,
            )
            self._ack(event)
            return
        born = round(message.timestamp * SECOND)
        order_key = message.key or b""
        jobs: list[asyncio.Task[None]] = []
        for name in route(self.config, output):
            request = render(name, self.config.targets[name], output, self.config.secrets)
            if request is None:
                continue
            if self.was_delivered(request.key):
                self.status.target(name).already_delivered += 1
                if request.marks is not None and not self.was_delivered(request.marks):
                    # A predecessor killed between the trigger's two changelog records:
                    # its resolve must not wait for a mark that would never come.
                    self.remember(request.marks, message.partition)
                continue
            # A resolve waits for its trigger's mark: in a chain of its own, or it would hold
            # up the very trigger it waits for when read first.
            chain = (name, order_key if request.after is None else order_key + b"\0resolve")
            previous = self.chains.get(chain)
            job = asyncio.create_task(
                self._deliver(request, previous, born, message.partition, output, order_key)
            )
            self.chains[chain] = job
            job.add_done_callback(partial(self._unchain, chain))
            jobs.append(job)
        if not jobs:
            self._ack(event)
            return
        self._spawn(self._ack_when_done(event, jobs))

    def _unchain(self, key: tuple[str, bytes], done: asyncio.Task[None]) -> None:
        if self.chains.get(key) is done:
            del self.chains[key]

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _ack_when_done(self, event: EventT[Any], jobs: list[asyncio.Task[None]]) -> None:
        results = await asyncio.gather(*jobs, return_exceptions=True)
        if any(isinstance(r, BaseException) for r in results):
            # Not acked: the record is read again after a restart (at-least-once).
            for r in results:
                if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                    log.error("delivery failed unexpectedly: %r", r)
            self.in_flight.release()
            return
        self._ack(event)

    def _ack(self, event: EventT[Any]) -> None:
        event.ack()
        self.offsets.acked(event.message.tp, event.message.offset)
        self.in_flight.release()

    # -- the delivered table ---------------------------------------------------------------

    def was_delivered(self, key: str) -> bool:
        entry = self.delivered.data.get(key)
        return entry is not None and still_remembered(int(entry["at"]), now_us(), self.ttl_us)

    def remember(self, key: str, partition: int) -> asyncio.Future[Any]:
        """Remember `key` as delivered; the future is done once its changelog record is."""
        value = {"at": now_us(), "p": partition}
        self.delivered.data[key] = value
        sent: asyncio.Future[Any] = self.delivered.send_changelog(partition, key, value)
        if key in self.marked:
            self.marked.pop(key).set()
        return sent

    async def wait_for_mark(self, key: str) -> None:
        """Until `key` is in the delivered table, at most `delivery.resolve_wait_seconds`."""
        if self.was_delivered(key):
            return
        event = self.marked.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), self.config.delivery.resolve_wait_seconds)
        except TimeoutError:
            log.info("sending %s without its trigger acknowledged here", key)

    def expire(self) -> int:
        """Forget acknowledged keys older than the TTL (tombstones in the changelog too)."""
        now = now_us()
        old = [
            (k, v)
            for k, v in list(self.delivered.data.items())
            if not still_remembered(int(v["at"]), now, self.ttl_us)
        ]
        for key, value in old:
            del self.delivered.data[key]
            self.delivered.send_changelog(int(value["p"]), key, None, value_serializer="raw")
        return len(old)

    # -- one notification ------------------------------------------------------------------

    async def _deliver(
        self,
        request: Request,
        previous: asyncio.Task[None] | None,
        born: int,
        partition: int,
        output: Mapping[str, Any],
        order_key: bytes,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # order per (target, key); its outcome is its own
            if self.was_delivered(request.key):
                # The same output read twice (after a rebalance) and delivered meanwhile by
                # its first reading: sent again now, a trigger could arrive after its
                # resolve and open the incident again.
                self.status.target(request.target).already_delivered += 1
                return
        if request.after is not None:
            await self.wait_for_mark(request.after)
        target = self.status.target(request.target)
        attempts = 0
        now = now_us()
        if expired(self.policy, born, now):
            await self._dead_letter(
                request,
                output,
                order_key,
                attempts,
                "older than the maximum age before the first attempt",
            )
            return
        while True:
            async with self.semaphores[request.target]:
                attempt = await self._post(request)
            attempts += 1
            now = now_us()
            decision = decide(self.policy, attempt, attempts, born, now, self.random.random())
            result = "ok" if isinstance(decision, Delivered) else str(attempt.status or "error")
            self.metrics.attempts.labels(request.target, result).inc()
            if isinstance(decision, Delivered):
                # The key before the mark: a kill between them leaves the key without the
                # mark, which `handle` repairs when the trigger is read again. The other
                # order would send the trigger again while its resolve, seeing the mark,
                # may already go: the incident would be opened again after its resolve.
                remembered = [self.remember(request.key, partition)]
                if request.marks is not None:
                    remembered.append(self.remember(request.marks, partition))
                # The output's offset may be committed once this returns: not before the
                # marks are in the changelog, or a restart would forget them (and its
                # resolve would wait `resolve_wait_seconds` for a trigger already sent).
                await asyncio.gather(*remembered)
                target.delivered += 1
                self.metrics.delivered.labels(request.target).inc()
                self.metrics.delay.labels(request.target).observe(max(now - born, 0) / SECOND)
                return
            target.last_error = describe(attempt)
            target.last_error_at = _rfc3339(now)
            if isinstance(decision, DeadLetter):
                await self._dead_letter(request, output, order_key, attempts, decision.reason)
                return
            target.retrying += 1
            self.metrics.retrying.labels(request.target).inc()
            try:
                await asyncio.sleep(max(decision.at - now_us(), 0) / SECOND)
            finally:
                target.retrying -= 1
                self.metrics.retrying.labels(request.target).dec()

    async def _post(self, request: Request) -> Attempt:
        if self.session is None:  # first use: inside the running loop
            self.session = aiohttp.ClientSession()
        headers = signed_headers(request, now_us() // SECOND)
        timeout = aiohttp.ClientTimeout(total=self.config.delivery.timeout_seconds)
        try:
            async with self.session.post(
                request.url, data=request.body, headers=headers, timeout=timeout
            ) as response:
                text = "" if 200 <= response.status < 300 else (await response.text())[:200]
                return Attempt(
                    response.status, text.strip() or None, response.headers.get("Retry-After")
                )
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            # The URL may be a secret (Slack): never part of the error text.
            text = str(error).replace(request.url, "<url>") or "timed out"
            return Attempt(None, f"{type(error).__name__}: {text}"[:200])

    async def _dead_letter(
        self,
        request: Request,
        output: Mapping[str, Any],
        order_key: bytes,
        attempts: int,
        reason: str,
    ) -> None:
        target = self.status.target(request.target)
        record = {
            "reason": reason,
            "target": request.target,
            "idempotency_key": request.key,
            "attempts": attempts,
            "dead_lettered_at": _rfc3339(now_us()),
            "output": dict(output),
        }
        sent = await self.dlq.send(key=order_key, value=json.dumps(record).encode())
        await sent  # acked by the broker before the output's offset may be committed
        target.failed += 1
        target.last_error = reason
        target.last_error_at = _rfc3339(now_us())
        self.metrics.failed.labels(request.target).inc()
        log.warning("dead-lettered %s: %s", request.key, reason)


def build_app(options: NotifyOptions, config: NotifyConfig) -> tuple[faust.App, Deliverer]:
    app = ReadCommittedApp(
        options.app_id,
        broker=f"kafka://{options.bootstrap_servers}",
        processing_guarantee="at_least_once",
        key_serializer="json",  # the delivered table's keys (str) and values
        value_serializer="json",
        store="memory://",
        topic_partitions=options.partitions,
        topic_replication_factor=options.replication_factor,
        datadir=options.datadir,
        web_enabled=options.web_port > 0,
        web_host=options.web_host,
        web_port=options.web_port or 6067,
        web_bind=options.web_host,
        # Only our two views: no faust statistics, graph, router or table browsing.
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_router_enabled=False,
        web_tables_enabled=False,
        consumer_auto_offset_reset="earliest" if options.from_beginning else "latest",
        # Deliveries can wait for retries: rebalances must not wait for every ack.
        stream_wait_empty=False,
        # A SIGKILLed member stays in the group until its session expires.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
        broker_commit_interval=0.5,
    )
    source = app.topic(*options.topics, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(options.dlq_topic, key_serializer="raw", value_serializer="raw")
    ttl_ms = round(config.delivery.delivered_ttl_seconds * 1000)
    delivered = app.Table(
        "delivered",
        default=None,
        partitions=options.partitions,
        extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(ttl_ms)},
    )
    deliverer = Deliverer(app, config, delivered, dlq)

    @app.agent(source, name="notify")
    async def notify(stream: faust.StreamT[Any]) -> None:
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            await deliverer.handle(event)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_session(sender: Any, **kwargs: Any) -> None:
        if deliverer.session is not None:
            await deliverer.session.close()

    @app.timer(interval=60.0)  # type: ignore[untyped-decorator]
    async def expire_delivered() -> None:
        deliverer.expire()

    if options.heap_trim_interval > 0:

        @app.timer(interval=options.heap_trim_interval)  # type: ignore[untyped-decorator]
        async def trim_heap() -> None:
            # the consumer thread's arena keeps the free chunks of every fetch (heap.py)
            release_free_heap()

    @app.page("/notify/status")
    async def status_page(web: Any, request: Any) -> Any:
        body = deliverer.status.as_json()
        body["isolation_level"] = isolation_level(app)
        body["topics"] = options.topics
        return web.json(body)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # Prometheus' text format 0.0.4 (aiohttp adds the charset itself).
        text = generate_latest(deliverer.metrics.registry).decode()
        return web.text(text, content_type="text/plain")

    return app, deliverer
