"""Harness for live-pipeline tests: real broker, workers as subprocesses, replay as oracle.

Every pipeline gets its own app id and topic names (every `topic_*` setting, so a new
topic is prefixed without a change here), so tests never see each other's data.

The whole-output method (`manual_clock=True`): the workers' own ticker is silenced and
the test sends the clock ticks itself, all with one instant F + grace, so every stage-1
partition's clock stops exactly at F; `settle(F)` waits until every partition is there
and the ledger has read every watermark; then the committed contents of every output
topic and of the dead-letter topic are compared with `slaclock replay --until F` of the
same input: nothing missing, nothing duplicated, nothing else.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
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

from slaclock.client.librdkafka_log import LIBRDKAFKA_LOG
from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.live.records import KIND_WATERMARK, Tick, Watermark, header_value
from slaclock.processors.live.testcrash import BETWEEN_PRODUCE_AND_COMMIT
from slaclock.processors.replay import replay
from slaclock.processors.settings import Settings
from slaclock.processors.topics import ensure_topics
from slaclock.schemas.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
TOPIC_SETTINGS = tuple(name for name in Settings.model_fields if name.startswith("topic_"))
"""Every topic setting: the harness gives each one a per-test name."""
NOT_OUTPUT_TOPICS = ("topic_events", "topic_contracts", "topic_policies", "topic_dlq")
"""Topic settings that are not outputs (nor is any whose default name ends in `.events`)."""
GRACE_S = 1
MANUAL_TICK_INTERVAL_S = 86_400  # the workers' own ticker stays silent during a test
STARTED_LINE = ": started; SIGTERM stops it cleanly"
CRASH_LINE = re.compile(r"slaclock test crash: (\w+) #(\d+) in (\w+)(.*)")


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        """SIGTERM (a clean stop), once the worker handles it: a signal that comes before its
        handlers are installed (right after a start) would end it like a kill."""
        deadline = time.monotonic() + 60
        while self.process.poll() is None and time.monotonic() < deadline:
            if STARTED_LINE in self.log_path.read_text(errors="replace"):
                break
            time.sleep(0.1)
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
    # the workers' interpreter, and their directory (another interpreter, e.g. the compiled
    # build's, must not run in the checkout, whose sources it would import instead)
    python: str = sys.executable
    cwd: Path = ROOT

    manual_clock: bool = False  # the test sends the ticks (`ticking`), not the workers
    published: list[tuple[bytes | None, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        p = self.prefix.rstrip(".")
        self.names = {"app_id": f"{p}-app"}
        for name in TOPIC_SETTINGS:
            self.names[name] = f"{p}.{Settings.model_fields[name].default}"
        if self.events_topic is not None:
            self.names["topic_events"] = self.events_topic
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
                "SLACLOCK_GRACE": str(GRACE_S),
                "SLACLOCK_HTTP_PORT": "0",  # no HTTP server unless a test asks (extra_env)
                "SLACLOCK_STORE": "memory",  # unless a test asks for rocksdb (extra_env)
            }
        )
        if self.manual_clock:
            env["SLACLOCK_TICK_INTERVAL"] = str(MANUAL_TICK_INTERVAL_S)
            env["SLACLOCK_TIMER_TICKS"] = "false"
        env.update(self.extra_env)
        return env

    def start_worker(
        self, instance: str = "w1", env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log_path = self.workdir / f"worker-{instance}-{len(self.workers)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [
                *self.launcher,
                self.python,
                "-c",
                "from slaclock.cli import main; main()",
                "worker",
            ],
            env={**self.env(instance), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
        )
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()

    def kill_repeatedly(
        self,
        times: int,
        rng: random.Random,
        pause: tuple[float, float] = (0.5, 3.0),
        crash_env: dict[str, str] | None = None,
    ) -> tuple[WorkerProcess, int]:
        """Start a worker, SIGKILL and restart it `times` times at random moments.

        Returns the last (running) worker and how many kills came mid-stream: after the
        killed worker had committed some input (not during its start-up) and before the
        input was all processed. `crash_env`: more settings for the workers to be killed.

        Each kill comes a random `pause` after the worker's start, but never before it has
        committed input of its own (or the input is done): on a loaded machine a start-up
        can take longer than the pause, and a kill during it tests nothing mid-stream.
        """
        worker = self.start_worker(env=crash_env)
        mid_stream = 0
        before, _ = self.input_progress()
        for n in range(times):
            started = time.monotonic()
            self._until_progress(before, worker)
            time.sleep(max(0.0, rng.uniform(*pause) - (time.monotonic() - started)))
            worker.kill()
            committed, lag = self.input_progress()
            mid_stream += committed > before and lag > 0
            before = committed
            worker = self.start_worker(env=crash_env if n < times - 1 else None)
        return worker, mid_stream

    def _until_progress(self, committed_before: int, worker: WorkerProcess) -> None:
        """Until stage 1 has committed more input than `committed_before`, or has none left
        (at most 60 s; a worker that exits meanwhile fails the test)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            committed, lag = self.input_progress()
            if committed > committed_before or lag == 0:
                return
            assert worker.process.poll() is None, worker.log_tail()
            time.sleep(0.2)

    def run_crash_plan(
        self,
        plan: Sequence[str],
        timeout: float = 120.0,
        crash_env: dict[str, str] | None = None,
    ) -> tuple[WorkerProcess, CrashReport]:
        """Start a worker per crash point of `plan` (`SLACLOCK_TEST_CRASH` values), each
        killing itself there; then start the last worker, without one, and return it.

        `crash_env`: more settings for the workers that crash (e.g. small batches, so the
        first transactions are small and many), not for the last one.
        """
        report = CrashReport()
        for point in plan:
            worker = self.start_worker(env={**(crash_env or {}), "SLACLOCK_TEST_CRASH": point})
            try:
                status = worker.process.wait(timeout)
            except subprocess.TimeoutExpired:
                worker.kill()
                raise AssertionError(
                    f"crash point {point} not reached in {timeout}s\n{worker.log_tail()}"
                ) from None
            found = CRASH_LINE.findall(worker.log_path.read_text(errors="replace"))
            assert status == -signal.SIGKILL and len(found) == 1, (
                f"{point}: exit status {status}\n{worker.log_tail()}"
            )
            report.add(point, *found[0])
        return self.start_worker(), report

    # -- input ------------------------------------------------------------------------------

    def publish(self, records: Iterable[tuple[bytes | None, bytes]]) -> int:
        producer = Producer(
            {
                "logger": LIBRDKAFKA_LOG,  # connection chatter at DEBUG, as in the worker
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "linger.ms": 20,
            }
        )
        count = 0
        for key, value in records:
            self.published.append((key, value))
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
                "logger": LIBRDKAFKA_LOG,  # connection chatter at DEBUG, as in the worker
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
        return self.input_progress()[1]

    def input_progress(self) -> tuple[int, int]:
        """Stage 1's committed input records and its lag (records not yet committed)."""
        consumer = Consumer(
            {
                "logger": LIBRDKAFKA_LOG,  # connection chatter at DEBUG, as in the worker
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
            lag = done = 0
            for tp in committed:
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag += high - max(tp.offset, 0)
                done += max(tp.offset, 0)
            return done, lag
        finally:
            consumer.close()

    def _read_to_end(
        self, topic: str, timeout: float = 60.0, committed_only: bool = True
    ) -> Iterator[Any]:
        """Committed records of `topic` up to its end offsets as they are now.

        For a topic that a running worker keeps writing (clock watermarks): waiting for it
        to fall idle, as `_read_all` does, may never end. `committed_only=False` reads
        read_uncommitted: records of aborted transactions too.
        """
        isolation = "read_committed" if committed_only else "read_uncommitted"
        consumer = self._reader(**{"isolation.level": isolation})
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
        return self._ledger_input()[0]

    def _ledger_input(self) -> tuple[int | None, dict[int, int]]:
        """(final clock as above, offset after the last record of each ledger partition)."""
        clocks: dict[int, int] = {}
        ends: dict[int, int] = {}
        for message in self._read_to_end(self.settings.topic_ledger_input):
            ends[message.partition()] = message.offset() + 1
            if header_value(message.headers(), "kind") == KIND_WATERMARK:
                mark = Watermark.decode(message.value())
                clocks[mark.source_partition] = max(
                    clocks.get(mark.source_partition, 0), mark.clock
                )
        if len(clocks) < self.partitions:
            return None, ends
        return min(clocks.values()), ends

    # -- the test's own clock (manual_clock) ------------------------------------------------

    def tick(self, clock: int, producer: Producer) -> None:
        """One tick per input partition that moves a caught-up partition's clock to `clock`."""
        probe = self._reader()
        try:
            for partition in range(self.partitions):
                tp = TopicPartition(self.settings.topic_events, partition)
                _, high = _watermarks(probe, tp)
                tick = Tick(clock + GRACE_S * US_PER_SECOND, high)
                producer.produce(self.settings.topic_clock, tick.encode(), partition=partition)
            producer.flush(10)
        finally:
            probe.close()

    @contextlib.contextmanager
    def ticking(self, clock: int, every: float = 0.5) -> Iterator[None]:
        """Tick towards `clock` every `every` seconds while the block runs (manual_clock).

        Until a partition has processed its input, a tick moves its clock only to its
        stream time (docs/semantics.md: Time); the first tick after it caught up moves it to `clock`.
        """
        assert self.manual_clock, "ticking needs LivePipeline(manual_clock=True)"
        stop = threading.Event()
        failures: list[BaseException] = []

        def run() -> None:
            producer = Producer(
                {"bootstrap.servers": self.bootstrap, "linger.ms": 0, "logger": LIBRDKAFKA_LOG}
            )
            try:
                while not stop.is_set():
                    self.tick(clock, producer)
                    stop.wait(every)
            except BaseException as error:  # reported by the test thread
                failures.append(error)

        thread = threading.Thread(target=run, name="test-ticker", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(30)
        if failures:
            raise failures[0]

    def settle(self, clock: int, timeout: float = 180.0) -> None:
        """Wait until every stage-1 partition's clock is `clock` and the ledger has taken
        in every record sent to it (its group's committed offsets are past them).

        Then nothing is left to do: every output up to `clock` is committed.
        """
        deadline = time.monotonic() + timeout
        group = f"{self.names['app_id']}-ledger"
        while time.monotonic() < deadline:
            if all(w.process.poll() is not None for w in self.workers):
                tail = self.workers[-1].log_tail() if self.workers else ""
                raise AssertionError(f"no worker is running\n{tail}")
            final, ends = self._ledger_input()
            if final is not None:
                assert final <= clock, f"a clock went past {format_us(clock)}: {format_us(final)}"
                if final == clock and self._committed_past(
                    group, self.settings.topic_ledger_input, ends
                ):
                    return
            time.sleep(0.5)
        logs = "\n".join(w.log_tail() for w in self.workers[-2:])
        raise AssertionError(f"the pipeline did not settle at {format_us(clock)}\n{logs}")

    def _committed_past(self, group: str, topic: str, ends: dict[int, int]) -> bool:
        consumer = Consumer(
            {
                "logger": LIBRDKAFKA_LOG,  # connection chatter at DEBUG, as in the worker
                "bootstrap.servers": self.bootstrap,
                "group.id": group,
                "isolation.level": "read_uncommitted",  # see unprocessed_input
            }
        )
        try:
            wanted = [TopicPartition(topic, p) for p in ends]
            committed = consumer.committed(wanted, timeout=10)
        except KafkaException:  # the coordinator is (re)loading: ask again later
            return False
        finally:
            consumer.close()
        return all(tp.offset >= ends[tp.partition] for tp in committed)

    def output_topics(self) -> list[str]:
        """Every output topic: the topic settings that are neither input nor dead letters."""
        return [
            self.names[name]
            for name in TOPIC_SETTINGS
            if name not in NOT_OUTPUT_TOPICS
            and not str(Settings.model_fields[name].default).endswith(".events")
        ]

    def topic_records(self, topics: Iterable[str], committed_only: bool = True) -> list[Any]:
        """Every record of `topics` up to their end offsets now (for stopped workers)."""
        return [
            message
            for topic in topics
            for message in self._read_to_end(topic, committed_only=committed_only)
        ]

    def committed_outputs(self) -> list[dict[str, Any]]:
        """Every committed record of every output topic, decoded."""
        return [orjson.loads(m.value()) for m in self.topic_records(self.output_topics())]

    def committed_dead_letters(self) -> list[DeadLetter]:
        return [
            DeadLetter.of(m, self.settings.topic_events)
            for m in self.topic_records([self.settings.topic_dlq])
        ]

    def aborted_records(self) -> Counter[str]:
        """Per topic: records in the log that read_committed readers never see (aborted
        transactions), among the outputs, the dead letters and the internal topics."""
        s = self.settings
        topics = [
            *self.output_topics(),
            s.topic_dlq,
            s.topic_ticket_changelog,
            s.topic_ledger_input,
            s.topic_ledger_changelog,
        ]
        aborted: Counter[str] = Counter()
        for topic in topics:
            seen = len(self.topic_records([topic], committed_only=False))
            aborted[topic] = seen - len(self.topic_records([topic]))
        return +aborted

    def wait_for_clock(self, at_least: int, timeout: float = 120.0) -> int:
        """Wait until every stage-1 partition's clock is at least `at_least`, then until the
        ledger has taken in what was sent to it by then; returns that clock."""
        deadline = time.monotonic() + timeout
        group = f"{self.names['app_id']}-ledger"
        reached: tuple[int, dict[int, int]] | None = None
        while time.monotonic() < deadline:
            if reached is None:
                clock, ends = self._ledger_input()
                if clock is not None and clock >= at_least:
                    reached = clock, ends
            if reached is not None and self._committed_past(
                group, self.settings.topic_ledger_input, reached[1]
            ):
                return reached[0]
            time.sleep(0.5)
        logs = "\n".join(w.log_tail() for w in self.workers[-2:])
        raise AssertionError(f"the pipeline clock did not reach {at_least}\n{logs}")

    def outputs(self) -> list[dict[str, Any]]:
        """Every output topic's committed records (statements and availability included)."""
        found = []
        for topic in self.output_topics():
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


# -- whole-output comparison ----------------------------------------------------------------


@dataclass
class CrashReport:
    """What the deterministic crash points of `run_crash_plan` did."""

    kills: list[str] = field(default_factory=list)
    inside_open_transaction: int = 0  # with every record of the open one acknowledged

    def add(self, plan: str, point: str, seen: str, loop: str, detail: str) -> None:
        self.kills.append(f"{point} #{seen} in {loop}{detail}")
        if point == BETWEEN_PRODUCE_AND_COMMIT and "0 records unacknowledged" in detail:
            self.inside_open_transaction += 1


@dataclass(frozen=True)
class DeadLetter:
    """A dead-letter record as compared: input key and bytes, error class and message."""

    key: bytes | None
    value: bytes | None
    error_class: str
    message: str

    @classmethod
    def of(cls, message: Any, input_topic: str) -> DeadLetter:
        headers = dict(message.headers() or [])
        # where it came from: the input topic, a partition and an offset
        assert headers.get("source_topic") == input_topic.encode(), headers
        assert headers["source_partition"].isdigit() and headers["source_offset"].isdigit()
        return cls(
            message.key(),
            message.value(),
            headers["error_class"].decode(),
            headers["error_message"].decode(),
        )


@dataclass
class ReplayResult:
    outputs: list[dict[str, Any]]
    dead_letters: list[DeadLetter]


def replay_cli(
    policy_path: Path,
    records: list[tuple[bytes | None, bytes]],
    until: int,
    workdir: Path,
) -> ReplayResult:
    """`slaclock replay --until` of the published records (the oracle, run as a user would).

    A rejected line becomes the dead letter the live pipeline should write: the key it was
    published with, its bytes, the error class and message.
    """
    events = workdir / "replay-input.jsonl"
    out = workdir / "replay-output.jsonl"
    dlq = workdir / "replay-dlq.jsonl"
    assert all(b"\n" not in value for _, value in records)
    events.write_bytes(b"".join(value + b"\n" for _, value in records))
    command = [sys.executable, "-c", "from slaclock.cli import main; main()", "replay"]
    command += ["--policy", str(policy_path), "--events", str(events)]
    command += ["--until", format_us(until), "--out", str(out), "--dlq", str(dlq)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    outputs = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
    dead = []
    for line in dlq.read_bytes().splitlines():
        rejection = orjson.loads(line)
        key, value = records[rejection["line"] - 1]
        assert value.decode("utf-8", "replace") == rejection["raw"]
        dead.append(DeadLetter(key, value, rejection["error_class"], rejection["message"]))
    return ReplayResult(outputs, dead)


@dataclass
class Comparison:
    """Live records against expected ones, as multisets of whole records."""

    expected: int
    live: int
    missing: list[str]  # expected, not (or fewer times) in live
    duplicated: list[str]  # in live more often than expected
    unexpected: list[str]  # in live, never expected

    @property
    def equal(self) -> bool:
        return not (self.missing or self.duplicated or self.unexpected)

    def describe(self, what: str) -> str:
        lines = [
            f"{what}: expected {self.expected}, live {self.live}; missing {len(self.missing)}, "
            f"duplicated {len(self.duplicated)}, unexpected {len(self.unexpected)}"
        ]
        for label, found in (
            ("missing", self.missing),
            ("duplicated", self.duplicated),
            ("unexpected", self.unexpected),
        ):
            lines += [f"  {label}: {item[:300]}" for item in found[:5]]
        return "\n".join(lines)


def compare(live: Iterable[Any], expected: Iterable[Any]) -> Comparison:
    """Multiset comparison of whole records (dicts as canonical JSON, or any hashable)."""
    live_set = Counter(_canonical(r) for r in live)
    expected_set = Counter(_canonical(r) for r in expected)
    missing = expected_set - live_set
    extra = live_set - expected_set
    return Comparison(
        sum(expected_set.values()),
        sum(live_set.values()),
        sorted(missing.elements()),
        sorted(r for r in extra.elements() if r in expected_set),
        sorted(r for r in extra.elements() if r not in expected_set),
    )


def _canonical(record: Any) -> str:
    if isinstance(record, dict):
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
    return repr(record)


def output_counts(outputs: Iterable[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(o["type"] for o in outputs).items()))


def assert_whole_output_equals_replay(
    pipeline: LivePipeline, clock: int
) -> tuple[Comparison, Comparison]:
    """Every committed output and dead letter of the (stopped, settled) pipeline against
    `slaclock replay --until clock` of everything published: (outputs, dead letters)."""
    expected = replay_cli(pipeline.policy_path, pipeline.published, clock, pipeline.workdir)
    outputs = compare(pipeline.committed_outputs(), expected.outputs)
    dead = compare(pipeline.committed_dead_letters(), expected.dead_letters)
    assert outputs.equal and dead.equal, (
        outputs.describe("outputs") + "\n" + dead.describe("dead letters")
    )
    return outputs, dead
