"""Harness for live-pipeline tests: real broker, workers as subprocesses, replay as oracle.

Every pipeline gets its own app id and topic names, so tests never see each other's data.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from processors.engine.instants import parse_instant
from processors.engine.policy import compile_policy
from processors.live.records import KIND_WATERMARK, Watermark, header_value
from processors.replay import replay
from schemas.policy import load_policy
from slaclock.settings import Settings
from slaclock.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_KINDS = ("warnings", "breaches", "completions", "credits")


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class LivePipeline:
    bootstrap: str
    prefix: str
    workdir: Path
    policy_path: Path = ROOT / "examples" / "policy.yaml"
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    launcher: list[str] = field(default_factory=list)  # e.g. a profiler that runs the worker
    events_topic: str | None = None  # an existing input topic to share (benchmarks)

    def __post_init__(self) -> None:
        p = self.prefix.rstrip(".")
        self.names = {
            "app_id": f"{p}-app",
            "topic_events": self.events_topic or f"{p}.tickets.events",
            "topic_contracts": f"{p}.sla.contracts",
            "topic_warnings": f"{p}.sla.warnings",
            "topic_breaches": f"{p}.sla.breaches",
            "topic_completions": f"{p}.sla.completions",
            "topic_credits": f"{p}.sla.credits",
            "topic_dlq": f"{p}.tickets.events.dlq",
        }
        self.settings = Settings(
            bootstrap_servers=self.bootstrap,
            partitions=self.partitions,
            policy_path=self.policy_path,
            **self.names,  # type: ignore[arg-type]
        )
        ensure_topics(self.settings)

    # -- workers ----------------------------------------------------------------------------

    def env(self, instance: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({f"SLACLOCK_{k.upper()}": v for k, v in self.names.items()})
        env.update(
            {
                "SLACLOCK_BOOTSTRAP_SERVERS": self.bootstrap,
                "SLACLOCK_INSTANCE_ID": instance,
                "SLACLOCK_POLICY_PATH": str(self.policy_path),
                "SLACLOCK_PARTITIONS": str(self.partitions),
                "SLACLOCK_TICK_INTERVAL": "0.5",
                "SLACLOCK_GRACE": "1",
                "SLACLOCK_HTTP_PORT": "0",  # no HTTP server unless a test asks (extra_env)
                "SLACLOCK_STORE": "memory",  # unless a test asks for rocksdb (extra_env)
            }
        )
        env.update(self.extra_env)
        return env

    def start_worker(self, instance: str = "w1") -> WorkerProcess:
        log_path = self.workdir / f"worker-{instance}-{len(self.workers)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [
                *self.launcher,
                sys.executable,
                "-c",
                "from slaclock.cli import main; main()",
                "worker",
            ],
            env=self.env(instance),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()

    def kill_repeatedly(
        self, times: int, rng: random.Random, pause: tuple[float, float] = (0.5, 3.0)
    ) -> tuple[WorkerProcess, int]:
        """Start a worker, SIGKILL and restart it `times` times at random moments.

        Returns the last (running) worker and how many kills hit unprocessed input.
        """
        worker = self.start_worker()
        mid_stream = 0
        for _ in range(times):
            time.sleep(rng.uniform(*pause))
            worker.kill()
            mid_stream += self.unprocessed_input() > 0
            worker = self.start_worker()
        return worker, mid_stream

    # -- input ------------------------------------------------------------------------------

    def publish(self, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "linger.ms": 20,
            }
        )
        count = 0
        for key, value in records:
            while True:
                try:
                    producer.produce(self.settings.topic_events, value, key=key)
                    break
                except BufferError:
                    producer.poll(0.1)
            count += 1
        assert producer.flush(60) == 0
        return count

    # -- observing ----------------------------------------------------------------------------

    def _reader(self, **extra: Any) -> Consumer:
        """A read_committed consumer in a group of its own, committing nothing."""
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.prefix}reader-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                **extra,
            }
        )

    def _read_all(self, topic: str, idle_seconds: float = 2.0) -> Iterator[Any]:
        consumer = self._reader(**{"enable.partition.eof": True})
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            partitions = list(metadata.topics[topic].partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            at_eof: set[int] = set()
            last = time.monotonic()
            while time.monotonic() - last < idle_seconds or len(at_eof) < len(partitions):
                message = consumer.poll(0.2)
                if message is None:
                    if time.monotonic() - last > 30:
                        break
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(message.partition())
                    continue
                at_eof.discard(message.partition())
                last = time.monotonic()
                yield message
        finally:
            consumer.close()

    def unprocessed_input(self) -> int:
        """Records of tickets.events not yet committed by stage 1 (consumer-group lag)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"{self.names['app_id']}-tickets",
                # read_committed would make the offset fetch wait for a stable offset:
                # after a SIGKILL mid-transaction that is only once the successor's
                # init_transactions aborts it (or the transaction times out, 30 s)
                "isolation.level": "read_uncommitted",
            }
        )
        try:
            topic = self.settings.topic_events
            partitions = [TopicPartition(topic, p) for p in range(self.partitions)]
            for attempt in range(20):  # the group coordinator may be (re)loading
                try:
                    committed = consumer.committed(partitions, timeout=10)
                    break
                except KafkaException:
                    if attempt == 19:
                        raise
                    time.sleep(0.5)
            lag = 0
            for tp in committed:
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag += high - max(tp.offset, 0)
            return lag
        finally:
            consumer.close()

    def _read_to_end(self, topic: str, timeout: float = 60.0) -> Iterator[Any]:
        """Committed records of `topic` up to its end offsets as they are now.

        For a topic that a running worker keeps writing (clock watermarks): waiting for it
        to fall idle, as `_read_all` does, may never end.
        """
        consumer = self._reader()
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
            bounds = {tp.partition: _watermarks(consumer, tp) for tp in partitions}
            ends = {p: high for p, (low, high) in bounds.items() if high > low}  # non-empty
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for message in consumer.consume(500, timeout=0.2):
                    if message.error() is None:
                        yield message
                # past the end as it was (an open transaction there commits in a moment)
                positions = consumer.position([TopicPartition(topic, p) for p in ends])
                if all(tp.offset >= ends[tp.partition] for tp in positions):
                    return
            raise TimeoutError(f"{topic}: did not reach its end offsets {ends} in {timeout}s")
        finally:
            consumer.close()

    def final_clock(self) -> int | None:
        """Minimum over stage-1 partitions of the latest clock they sent to the ledger."""
        clocks: dict[int, int] = {}
        for message in self._read_to_end(self.settings.topic_ledger_input):
            if header_value(message.headers(), "kind") == KIND_WATERMARK:
                mark = Watermark.decode(message.value())
                clocks[mark.source_partition] = max(
                    clocks.get(mark.source_partition, 0), mark.clock
                )
        if len(clocks) < self.partitions:
            return None
        return min(clocks.values())

    def wait_for_clock(self, at_least: int, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            clock = self.final_clock()
            if clock is not None and clock >= at_least:
                return clock
            time.sleep(1.0)
        logs = "\n".join(w.log_tail() for w in self.workers[-2:])
        raise AssertionError(f"the pipeline clock did not reach {at_least}\n{logs}")

    def outputs(self) -> list[dict[str, Any]]:
        found = []
        for kind in OUTPUT_KINDS:
            topic = getattr(self.settings, f"topic_{kind}")
            found.extend(orjson.loads(m.value()) for m in self._read_all(topic))
        return found

    def dead_letters(self) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return [
            (m.key(), m.value(), dict(m.headers() or []))
            for m in self._read_all(self.settings.topic_dlq)
        ]


def _watermarks(consumer: Consumer, tp: TopicPartition, attempts: int = 20) -> tuple[int, int]:
    """(low, high) of a partition, retried while a new topic's leader is being elected."""
    for attempt in range(attempts):
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def replay_outputs(policy_path: Path, lines: list[bytes], until: int) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    replay(compile_policy(load_policy(policy_path)), lines, outputs.append, lambda r: None, until)
    return outputs


def comparable(outputs: list[dict[str, Any]], cutoff: int) -> Counter[bytes]:
    """Outputs decided before `cutoff`, as a multiset of canonical JSON."""
    decided = {
        o["event_id"]: parse_instant(o["decided_at"]) for o in outputs if o["type"] == "sla.breach"
    }
    kept: Counter[bytes] = Counter()
    for output in outputs:
        if output["type"] == "sla.credit":
            instant = decided.get(output["breach_event_id"], cutoff)
        else:
            instant = parse_instant(output["at"])
        if instant < cutoff:
            kept[orjson.dumps(output, option=orjson.OPT_SORT_KEYS)] += 1
    return kept


def difference(live: Counter[bytes], expected: Counter[bytes]) -> str:
    missing = expected - live
    extra = live - expected
    lines = [f"missing {sum(missing.values())}, unexpected {sum(extra.values())}"]
    lines += [f"  missing: {m.decode()[:300]}" for m in list(missing)[:5]]
    lines += [f"  unexpected: {e.decode()[:300]}" for e in list(extra)[:5]]
    return "\n".join(lines)
