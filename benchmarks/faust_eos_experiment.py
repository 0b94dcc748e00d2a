"""Does faust-streaming's exactly_once hold when its worker is SIGKILLed repeatedly?

Runs `benchmarks/faust_eos_app.py` (a count-per-key Table plus one output record per
input record) against a real Kafka broker:

1. creates a fresh input/output topic pair (4 partitions each; names unique per run),
2. pre-publishes N input records over K keys with an idempotent confluent producer,
   using the Java-compatible murmur2 partitioner so that input, table changelog and
   output are co-partitioned exactly as faust itself would partition them,
3. starts the worker and SIGKILLs it at a random moment `--kills` times, restarting it
   each time; before each kill it waits until this incarnation has made progress
   (--min-progress new output records, or a group commit), then a random 0..--max-delay s,
4. lets the last incarnation finish (committed offsets == input end offsets), stops it
   with SIGTERM,
5. reads the output topic with isolation.level=read_committed and counts
   - missing inputs:    input (partition, offset) with no output,
   - duplicated inputs: input with more than one output (and the surplus outputs),
   - count anomalies:   per key, in output order, an output whose count is not the
                        previous output's count + 1 (table state and outputs diverged),
   - wrong counts:      an output whose count is not the input's rank within its key
                        (what an exactly-once run must produce),
   - final-count errors: keys whose last output count differs from their input count.

Usage (the broker: `--bootstrap`, else a private throw-away broker is started through
slaclock.local_kafka on free ports):

    .venv/bin/python benchmarks/faust_eos_experiment.py --bootstrap 127.0.0.1:19192 \\
        --guarantee exactly_once
    .venv/bin/python benchmarks/faust_eos_experiment.py --bootstrap 127.0.0.1:19192 \\
        --guarantee at_least_once

Prints one SUMMARY line (and a JSON line) per run; worker logs go to --log-dir.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
APP = HERE / "faust_eos_app.py"
PARTITIONS = 4

# Worker log lines worth reporting (faust, aiokafka, mode, tracebacks).
_NOTABLE = re.compile(
    r"(eos-diag|transaction|fenc|Traceback|Error|Exception|CRASH|crash|abort|timed? ?out|"
    r"OutOfOrder|InvalidProducerEpoch|Unknown|Commit invoked)",
    re.IGNORECASE,
)


class ExperimentError(RuntimeError):
    pass


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise ExperimentError(f"overall timeout while {what}")


# --------------------------------------------------------------------------- kafka helpers


def create_topics(admin: AdminClient, names: list[str]) -> None:
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names],
        operation_timeout=30,
        request_timeout=30,
    )
    for fut in futures.values():
        try:
            fut.result(timeout=60)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def publish_inputs(bootstrap: str, topic: str, n: int, keys: int) -> dict[tuple[int, int], str]:
    """Publish n records; return {(partition, offset): key} from the delivery reports."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            # Java/aiokafka-compatible hashing: faust writes the table changelog and the
            # output to murmur2(key) % 4, so the input must be partitioned the same way.
            "partitioner": "murmur2_random",
        }
    )
    delivered: dict[tuple[int, int], str] = {}
    errors: list[str] = []

    def report(err, msg) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered[(msg.partition(), msg.offset())] = msg.key().decode()

    for i in range(n):
        key = f"k{i % keys:04d}"
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=str(i).encode(), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or errors or len(delivered) != n:
        raise ExperimentError(
            f"input publish failed: {remaining} undelivered, {len(errors)} errors {errors[:3]}, "
            f"{len(delivered)}/{n} delivered"
        )
    return delivered


class Probe:
    """Reads the app's committed group offsets and the output topic's high watermarks."""

    def __init__(self, bootstrap: str, group: str, in_topic: str, out_topic: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.group = group
        self.in_tps = [TopicPartition(in_topic, p) for p in range(PARTITIONS)]
        self.out_topic = out_topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{group}-probe",
                "enable.auto.commit": False,
            }
        )

    def committed(self) -> int:
        """Sum of committed offsets of the app's consumer group on the input topic."""
        req = ConsumerGroupTopicPartitions(self.group, list(self.in_tps))
        try:
            res = self.admin.list_consumer_group_offsets([req], request_timeout=10)
            tps = res[self.group].result(timeout=15).topic_partitions
        except KafkaException:
            return -1
        return sum(max(tp.offset, 0) for tp in tps if tp.error is None)

    def out_high(self) -> int:
        total = 0
        for p in range(PARTITIONS):
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.out_topic, p), timeout=10, cached=False
            )
            total += high
        return total

    def close(self) -> None:
        self.consumer.close()


def read_topic(bootstrap: str, topic: str, isolation: str, timeout: float) -> list[list[dict]]:
    """All records of `topic` per partition, in offset order, up to what `isolation` exposes."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"eos-reader-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    out: list[list[dict]] = [[] for _ in range(PARTITIONS)]
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        at_eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_eof) < PARTITIONS:
            if time.monotonic() > deadline:
                raise ExperimentError(
                    f"reading {topic} ({isolation}) did not reach the end of partitions "
                    f"{sorted(set(range(PARTITIONS)) - at_eof)} within {timeout:.0f} s "
                    "(an open transaction holding back the last stable offset?)"
                )
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_eof.add(msg.partition())
                        continue
                    raise ExperimentError(f"consume error: {msg.error()}")
                at_eof.discard(msg.partition())
                value = json.loads(msg.value())
                value["out_offset"] = msg.offset()
                out[msg.partition()].append(value)
    finally:
        consumer.close()
    return out


# --------------------------------------------------------------------------- worker


@dataclass
class Worker:
    env: dict[str, str]
    log_dir: Path
    incarnation: int = 0
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        self.incarnation += 1
        log = self.log_dir / f"worker-{self.incarnation:02d}.log"
        self.logs.append(log)
        with log.open("wb") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), "worker", "-l", "warn"],
                env=self.env,
                cwd=self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killpg reaches only it
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def terminate(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; returns whether it exited on SIGTERM."""
        if self.proc is None:
            return True
        clean = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                clean = False
                self.kill()
        self.proc = None
        return clean


def notable_log_lines(logs: list[Path], limit: int = 25) -> list[tuple[int, str]]:
    """Distinct notable worker log lines (timestamps/ids stripped), most frequent first."""
    counter: collections.Counter[str] = collections.Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if _NOTABLE.search(line):
                norm = re.sub(r"^\[[^\]]*\]\s*", "", line.strip())
                norm = re.sub(r"0x[0-9a-f]+", "0x…", norm)
                counter[norm[:300]] += 1
    return [(count, text) for text, count in counter.most_common(limit)]


# --------------------------------------------------------------------------- experiment


@dataclass
class Result:
    guarantee: str
    kills: int = 0
    effective_kills: int = 0
    stalls: int = 0
    inputs: int = 0
    outputs: int = 0
    outputs_uncommitted: int = 0
    missing: int = 0
    duplicated_inputs: int = 0
    surplus_outputs: int = 0
    count_anomalies: int = 0
    wrong_counts: int = 0
    final_count_errors: int = 0
    unknown_outputs: int = 0
    committed_at_end: int = 0
    clean_shutdown: bool = False
    wall_seconds: float = 0.0
    kill_log: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"SUMMARY guarantee={self.guarantee} kills={self.kills} "
            f"(effective={self.effective_kills}, stalls={self.stalls}) inputs={self.inputs} "
            f"outputs={self.outputs} (read_uncommitted={self.outputs_uncommitted}) "
            f"missing={self.missing} duplicates={self.duplicated_inputs} "
            f"(surplus_outputs={self.surplus_outputs}) count_anomalies={self.count_anomalies} "
            f"wrong_counts={self.wrong_counts} final_count_errors={self.final_count_errors} "
            f"wall={self.wall_seconds:.1f}s"
        )


def wait_for(predicate, timeout: float, interval: float = 0.25) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def analyse(result: Result, inputs: dict[tuple[int, int], str], outputs: list[list[dict]]) -> None:
    rank: dict[tuple[int, int], int] = {}
    per_key: collections.Counter[str] = collections.Counter()
    for (p, o), key in sorted(inputs.items()):
        per_key[key] += 1
        rank[(p, o)] = per_key[key]

    seen: collections.Counter[tuple[int, int]] = collections.Counter()
    last_n: dict[str, int] = {}
    for partition in outputs:
        for rec in partition:
            src = (rec["p"], rec["o"])
            if src not in inputs:
                result.unknown_outputs += 1
                continue
            seen[src] += 1
            if rec["n"] != last_n.get(rec["k"], 0) + 1:
                result.count_anomalies += 1
            if rec["n"] != rank[src]:
                result.wrong_counts += 1
            last_n[rec["k"]] = rec["n"]

    result.outputs = sum(len(p) for p in outputs)
    result.missing = sum(1 for src in inputs if seen[src] == 0)
    result.duplicated_inputs = sum(1 for c in seen.values() if c > 1)
    result.surplus_outputs = sum(c - 1 for c in seen.values() if c > 1)
    result.final_count_errors = sum(1 for k, n in per_key.items() if last_n.get(k, 0) != n)


def run(args: argparse.Namespace, bootstrap: str) -> Result:
    started = time.monotonic()
    deadline = Deadline(args.timeout)
    rng = random.Random(args.seed)
    run_id = f"eos-{args.guarantee.replace('_', '')}-{int(time.time())}-{os.getpid()}"
    in_topic, out_topic = f"{run_id}-in", f"{run_id}-out"
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="faust-eos-")) / run_id
    log_dir.mkdir(parents=True, exist_ok=True)
    result = Result(guarantee=args.guarantee)
    print(f"run {run_id}: broker {bootstrap}, logs {log_dir}", flush=True)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topics(admin, [in_topic, out_topic])
    t0 = time.monotonic()
    inputs = publish_inputs(bootstrap, in_topic, args.inputs, args.keys)
    result.inputs = len(inputs)
    print(f"published {len(inputs)} inputs in {time.monotonic() - t0:.1f} s", flush=True)

    env = {
        **os.environ,
        "EOS_APP_ID": run_id,
        "EOS_BROKER": bootstrap,
        "EOS_GUARANTEE": args.guarantee,
        "EOS_IN": in_topic,
        "EOS_OUT": out_topic,
        "EOS_DATADIR": str(log_dir / "faust-data"),
        "EOS_DELAY_MS": str(args.delay_ms),
        "PYTHONUNBUFFERED": "1",
    }
    worker = Worker(env=env, log_dir=log_dir)
    probe = Probe(bootstrap, run_id, in_topic, out_topic)
    n = result.inputs
    try:
        for i in range(args.kills):
            deadline.check(f"before kill {i + 1}")
            base_committed, base_out = probe.committed(), probe.out_high()
            worker.start()
            t_start = time.monotonic()
            progressed = wait_for(
                lambda: (
                    probe.committed() > base_committed  # noqa: B023
                    or probe.out_high() >= base_out + args.min_progress  # noqa: B023
                    or not worker.alive()
                ),
                timeout=min(args.stall_timeout, max(deadline.left(), 1)),
            )
            if not worker.alive():
                raise ExperimentError(
                    f"worker {worker.incarnation} exited by itself (rc {worker.proc.returncode}); "
                    f"see {worker.logs[-1]}"
                )
            if not progressed:
                result.stalls += 1
            delay = rng.uniform(0, args.max_delay)
            time.sleep(delay)
            committed, produced = probe.committed(), probe.out_high()
            worker.kill()
            result.kills += 1
            if committed < n:
                result.effective_kills += 1
            line = (
                f"kill {i + 1}: incarnation {worker.incarnation} SIGKILLed "
                f"{time.monotonic() - t_start:.1f} s after start "
                f"({'progress' if progressed else 'STALL: no progress'} then +{delay:.2f} s); "
                f"group committed {committed}/{n}, output high watermark {produced}"
            )
            result.kill_log.append(line)
            print(line, flush=True)

        worker.start()
        t_final = time.monotonic()
        last_report = [t_final]

        def final_done() -> bool:
            committed = probe.committed()
            if time.monotonic() - last_report[0] >= 10:
                last_report[0] = time.monotonic()
                print(
                    f"  final incarnation +{last_report[0] - t_final:.0f} s: "
                    f"committed {committed}/{n}, output high watermark {probe.out_high()}",
                    flush=True,
                )
            return committed >= n or not worker.alive()

        finished = wait_for(final_done, timeout=max(deadline.left() - 60, 5), interval=0.5)
        result.committed_at_end = probe.committed()
        if not finished or not worker.alive():
            print(
                f"final incarnation did not finish: committed {result.committed_at_end}/{n}, "
                f"alive={worker.alive()}",
                flush=True,
            )
        time.sleep(2)  # let the last commit's markers land
        result.clean_shutdown = worker.terminate(timeout=30)
        print(
            f"final incarnation {worker.incarnation}: committed {result.committed_at_end}/{n}, "
            f"{'clean' if result.clean_shutdown else 'UNCLEAN (SIGKILL)'} shutdown on SIGTERM",
            flush=True,
        )

        read_timeout = max(min(deadline.left(), 60), 15)
        outputs = read_topic(bootstrap, out_topic, "read_committed", read_timeout)
        result.outputs_uncommitted = sum(
            len(p) for p in read_topic(bootstrap, out_topic, "read_uncommitted", read_timeout)
        )
        analyse(result, inputs, outputs)
    finally:
        worker.kill()
        probe.close()
        result.wall_seconds = time.monotonic() - started
        notable = notable_log_lines(worker.logs)
        if notable:
            print(f"notable worker log lines ({len(worker.logs)} logs in {log_dir}):")
            for count, text in notable:
                print(f"  {count:5d}x {text}")
    return result


@contextlib.contextmanager
def broker(args: argparse.Namespace) -> Iterator[str]:
    if args.bootstrap:
        yield args.bootstrap
        return
    sys.path.insert(0, str(HERE.parent))
    from slaclock.local_kafka import LocalKafka

    with tempfile.TemporaryDirectory(prefix="faust-eos-broker-") as state:
        local = LocalKafka.on_free_ports(Path(state), die_with_parent=True)
        try:
            yield local.up(timeout=120)
        finally:
            local.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="host:port (default: start a private broker)")
    parser.add_argument(
        "--guarantee", choices=["exactly_once", "at_least_once"], default="exactly_once"
    )
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument(
        "--max-delay", type=float, default=4.0, help="max s between first progress and the kill"
    )
    parser.add_argument(
        "--min-progress",
        type=int,
        default=50,
        help="outputs an incarnation must produce (or one group commit) before it may be killed",
    )
    parser.add_argument("--delay-ms", type=float, default=0.0, help="per-record sleep in the agent")
    parser.add_argument("--stall-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=420.0, help="overall bound, seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    with broker(args) as bootstrap:
        result = run(args, bootstrap)
    print(result.summary())
    print("JSON " + json.dumps({k: v for k, v in vars(result).items() if k != "kill_log"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
