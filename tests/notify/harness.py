"""Run `slaclock notify` as a real process against the test broker, feed it outputs.

`NotifyRun` owns the topics (unique prefix), the routing file, the process (start, SIGKILL,
stop) and a transactional producer of output records; receivers are `tests.notify.receivers`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

OUTPUT_TOPICS = ("sla.warnings", "sla.breaches", "sla.completions", "sla.credits")
TOPIC_OF_TYPE = {
    "sla.warning": "sla.warnings",
    "sla.breach": "sla.breaches",
    "sla.completed": "sla.completions",
    "sla.cancelled": "sla.completions",
    "sla.credit": "sla.credits",
}
SLACLOCK = Path(sys.executable).parent / "slaclock"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


# --- outputs as the worker writes them ---------------------------------------------------


def ticket_output(
    kind: str, ticket: str, metric: str = "first_response", **extra: Any
) -> dict[str, Any]:
    cycle = extra.pop("cycle", 1)
    base: dict[str, Any] = {
        "type": kind,
        "ticket_id": ticket,
        "customer_id": extra.pop("customer_id", "acme"),
        "tier": extra.pop("tier", "enterprise"),
        "priority": extra.pop("priority", "urgent"),
        "metric": metric,
        "cycle": cycle,
        "at": "2026-11-30T10:00:00Z",
        "target_seconds": 3600,
    }
    if kind == "sla.warning":
        base.update(threshold=0.75, deadline="2026-11-30T10:15:00Z")
    elif kind == "sla.breach":
        base.update(deadline="2026-11-30T10:00:00Z", decided_at="2026-11-30T10:00:02Z")
    elif kind == "sla.completed":
        base.update(outcome="breached", elapsed_seconds=3700)
    elif kind == "sla.cancelled":
        base.update(reason="solved", elapsed_seconds=3700, breached=True)
    base.update(extra)
    base["event_id"] = f"{kind}:{ticket}:{metric}:{cycle}:{base.get('threshold', '')}"
    return base


def credit_output(customer: str, period: str = "2026-11") -> dict[str, Any]:
    return {
        "event_id": f"credit:{customer}:{period}",
        "type": "sla.credit",
        "customer_id": customer,
        "tier": "enterprise",
        "metric": "first_response",
        "at": "2026-11-30T10:00:02Z",
        "period": period,
        "decided_at": "2026-11-30T10:00:02Z",
        "amount": "50.00",
        "currency": "EUR",
        "percent": 10,
        "capped": False,
        "period_total": "50.00",
        "breach_event_id": "b1",
        "service_id": None,
    }


class NotifyRun:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        workdir: Path,
        routing: str,
        env: Mapping[str, str],
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.workdir = workdir
        self.topics = [prefix + t for t in OUTPUT_TOPICS]
        self.dlq = prefix + "sla.notifications.dlq"
        self.config_path = workdir / "notify.yaml"
        topics_yaml = "".join(f"  - {t}\n" for t in self.topics)
        self.config_path.write_text(routing + "topics:\n" + topics_yaml, encoding="utf-8")
        self.port = free_port()
        self.env = {
            **os.environ,
            "SLACLOCK_BOOTSTRAP_SERVERS": bootstrap,
            "SLACLOCK_NOTIFY_PATH": str(self.config_path),
            "SLACLOCK_NOTIFY_APP_ID": f"{prefix}notify",
            "SLACLOCK_NOTIFY_DLQ_TOPIC": self.dlq,
            "SLACLOCK_NOTIFY_HTTP_HOST": "127.0.0.1",
            "SLACLOCK_NOTIFY_HTTP_PORT": str(self.port),
            "SLACLOCK_NOTIFY_DATADIR": str(workdir / "faust"),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "transactional.id": f"notify-test-{uuid.uuid4().hex[:8]}",
                "linger.ms": 5,
            }
        )
        self.producer.init_transactions(30)

    # -- the process -----------------------------------------------------------------------

    def start(self) -> None:
        log = self.workdir / f"notify-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(SLACLOCK), "notify", "--log-level", "info"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        wait_for(lambda: self.status() is not None or not self._alive(), 60, "notify status page")
        if not self._alive():
            raise RuntimeError(f"notify exited:\n{self.log_text()}")

    def _alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.logs)

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/notify/status", timeout=5
            ) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    # -- outputs -----------------------------------------------------------------------------

    def write(self, outputs: Iterable[Mapping[str, Any]], *, abort: bool = False) -> None:
        """Write outputs in one transaction (committed, or aborted when `abort`)."""
        self.producer.begin_transaction()
        for output in outputs:
            topic = self.prefix + TOPIC_OF_TYPE[str(output["type"])]
            key = output.get("ticket_id") or output["customer_id"]
            self.producer.produce(topic, key=str(key).encode(), value=json.dumps(output).encode())
        if abort:
            self.producer.flush(30)
            self.producer.abort_transaction(30)
        else:
            self.producer.commit_transaction(30)

    def write_raw(self, topic: str, value: bytes) -> None:
        """One record that is no output (committed in its own transaction)."""
        self.producer.begin_transaction()
        self.producer.produce(self.prefix + topic, key=b"junk", value=value)
        self.producer.commit_transaction(30)

    def rewind_group(self) -> None:
        """Every output topic partition of the (stopped) notify group back to offset 0."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        metadata = admin.list_topics(timeout=10)
        partitions = [
            TopicPartition(topic, p, 0)
            for topic in self.topics
            for p in metadata.topics[topic].partitions
        ]
        group = str(self.env["SLACLOCK_NOTIFY_APP_ID"])
        request = [ConsumerGroupTopicPartitions(group, partitions)]
        deadline = time.monotonic() + 60
        while True:  # the group empties once the stopped member's leave is processed
            try:
                for future in admin.alter_consumer_group_offsets(request).values():
                    future.result(15)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def dead_letters(self, expected: int, timeout: float = 60) -> list[dict[str, Any]]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"dlq-reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([self.dlq])
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(found) < expected and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                found.append(json.loads(message.value()))
        finally:
            consumer.close()
        return found

    def close(self) -> None:
        self.stop()
