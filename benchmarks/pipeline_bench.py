"""Kafka pipeline throughput: slaclock workers vs a plain consume->produce loop.

    .venv/bin/python benchmarks/pipeline_bench.py --tickets 60000 [--workers 1,2]
        [--guarantees exactly_once,at_least_once] [--bootstrap HOST:PORT] [--profile FILE]
        [--store memory|rocksdb] [--gil] [--variant NAME=PYTHON[@TREE] ...]

Pre-loads a generated workload (60,000 tickets are ~515,000 events) into one input topic
(4 partitions), then, in the same run and on the same broker, for each processing
guarantee and each number of processes: (1) slaclock workers, each a separate process in
one app (stage 1 + stage 2 + ticker); (2) a plain confluent-kafka loop, as many processes
in one consumer group, that copies the same records to an output topic with no logic
(same batch size, same commit per batch: a transaction with `send_offsets_to_transaction`
for exactly-once, flush + synchronous offset commit for at-least-once).

Both are measured the same way, from the input group's committed offsets polled every
0.2 s: `start-up` is the time from launch to the first commit, `steady` the events/s from
the first commit until everything is committed, `overall` the events/s from launch.
Without --bootstrap a local broker is started on free ports and stopped at the end.
With --profile, the first single-worker exactly-once run is sampled with py-spy (raw
collapsed stacks written to FILE, a summary printed); with --gil as well, only the thread
that holds the GIL is sampled (where the interpreter's time goes, waits left out).
`--store` is the workers' SLACLOCK_STORE (memory, as the earlier figures; rocksdb is the
default of a deployed worker). Each `--variant` adds workers run by another interpreter
(e.g. the compiled build's, `make test-compiled`) in another directory (e.g. a checkout of
an earlier commit, whose `slaclock` it then imports; default: a scratch directory, so
the interpreter's installed package is used), measured in the same run against the same
plain loop; the checkout's own workers (`.venv`) always run first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.stacks import summarise  # noqa: E402
from slaclock.local_kafka import LocalKafka  # noqa: E402
from slaclock.workload import WorkloadShape, ticket_events  # noqa: E402
from tests.kafka.pipeline import LivePipeline  # noqa: E402

CUSTOMERS = ("acme", "globex", "initech", "muster-gmbh", "walk-in")
PARTITIONS = 4
BATCH = 5000  # the worker's default SLACLOCK_MAX_BATCH


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = LocalKafka.on_free_ports(Path(tmp), die_with_parent=True)
        try:
            yield local.up(timeout=180)
        finally:
            local.down()


@dataclass
class Run:
    label: str
    events: int
    startup_s: float
    steady_eps: float
    overall_eps: float
    cpu_us: float | None = None  # CPU time of the processes per event, steady phase

    def line(self) -> str:
        cpu = "" if self.cpu_us is None else f"   CPU {self.cpu_us:5.1f} us/ev"
        return (
            f"{self.label:<44} steady {self.steady_eps:>9,.0f} ev/s   "
            f"overall {self.overall_eps:>9,.0f} ev/s   start-up {self.startup_s:4.1f} s{cpu}"
        )


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (their threads included), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


class GroupLag:
    """Records of `topic` not yet committed by consumer group `group`."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        # read_uncommitted: the last stable offsets at once, not a wait for the open txn
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "isolation.level": "read_uncommitted",
            }
        )
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.high = {
            p.partition: self.consumer.get_watermark_offsets(p, timeout=10)[1]
            for p in self.partitions
        }

    def __call__(self) -> int:
        committed = self.consumer.committed(self.partitions, timeout=10)
        return sum(self.high[tp.partition] - max(tp.offset, 0) for tp in committed)

    def close(self) -> None:
        self.consumer.close()


def measure(label: str, total: int, lag: Callable[[], int], timeout: float, pids: list[int]) -> Run:
    """Poll the lag from launch (now) until it is zero; the CPU time of `pids` from the
    first commit to the last (CPU per event varies far less than rates on a busy machine)."""
    launched = time.monotonic()
    first: tuple[float, int] | None = None
    cpu_first = 0.0
    deadline = launched + timeout
    while True:
        remaining = lag()
        now = time.monotonic()
        if first is None and remaining < total:
            first = (now, remaining)
            cpu_first = cpu_seconds(pids)
        if remaining == 0:
            break
        if now > deadline:
            raise TimeoutError(f"{label}: {remaining} of {total} events left after {timeout}s")
        time.sleep(0.2)
    assert first is not None
    first_at, lag_at_first = first
    overall = total / (now - launched)
    # all done by the first observation (a tiny run): no steady phase to tell apart
    steady = lag_at_first / (now - first_at) if lag_at_first and now > first_at else overall
    cpu = (cpu_seconds(pids) - cpu_first) / lag_at_first * 1e6 if lag_at_first else None
    return Run(label, total, first_at - launched, steady, overall, cpu)


# -- slaclock workers -------------------------------------------------------------------------


def worker_run(
    bootstrap: str,
    source: str,
    total: int,
    workers: int,
    guarantee: str,
    workdir: Path,
    profile: Path | None,
    options: argparse.Namespace,
    variant: tuple[str, str, Path] | None = None,
) -> Run:
    launcher: list[str] = []
    if profile is not None:
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        launcher = [py_spy, "record", "-r", "100", "-f", "raw", "-o", str(profile)]
        launcher += ["--gil", "--"] if options.gil else ["--"]
    name, python, cwd = variant or ("slaclock", sys.executable, ROOT)
    pipeline = LivePipeline(
        bootstrap,
        f"b{uuid.uuid4().hex[:6]}.",
        workdir,
        events_topic=source,
        launcher=launcher,
        extra_env={
            "SLACLOCK_PROCESSING_GUARANTEE": guarantee,
            "SLACLOCK_STORE": options.store,
            "SLACLOCK_STATE_DIR": str(workdir / "state"),
        },
        python=python,
        cwd=cwd,
    )
    lag = GroupLag(bootstrap, f"{pipeline.names['app_id']}-tickets", source)
    try:
        for i in range(workers):
            pipeline.start_worker(f"w{i + 1}")
        label = f"{name}, {workers} worker{'s' * (workers > 1)}, {guarantee}"
        pids = [] if profile is not None else [w.process.pid for w in pipeline.workers]
        return measure(label, total, lag, timeout=3600, pids=pids)
    finally:
        lag.close()
        for worker in pipeline.workers:
            if profile is not None:  # py-spy writes its samples on SIGINT
                worker.process.send_signal(signal.SIGINT)
                worker.process.wait(120)
            else:
                worker.stop()


# -- the plain loop -----------------------------------------------------------------------------


def plain_child(bootstrap: str, source: str, sink: str, group: str, exactly_once: bool) -> None:
    """Copy records from `source` to `sink` until SIGTERM (one process of the plain loop)."""
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.instance.id": f"{group}-{os.getpid()}",
            "partition.assignment.strategy": "range",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "enable.idempotence": True,
        "acks": "all",
    }
    if exactly_once:
        config["transactional.id"] = f"{group}-{os.getpid()}"
    producer = Producer(config)
    if exactly_once:
        producer.init_transactions(30)
    consumer.subscribe([source])
    while not stop:
        messages = [m for m in consumer.consume(BATCH, timeout=0.1) if m.error() is None]
        if not messages:
            continue
        if exactly_once:
            producer.begin_transaction()
        for m in messages:
            while True:
                try:
                    producer.produce(sink, m.value(), key=m.key())
                    break
                except BufferError:
                    producer.poll(0.05)
        offsets: dict[int, int] = {}
        for m in messages:
            offsets[m.partition()] = max(offsets.get(m.partition(), -1), m.offset())
        tps = [TopicPartition(source, p, o + 1) for p, o in offsets.items()]
        if exactly_once:
            producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            consumer.commit(offsets=tps, asynchronous=False)
    consumer.close()


def plain_run(bootstrap: str, source: str, total: int, processes: int, guarantee: str) -> Run:
    sink = f"{source}.copy-{uuid.uuid4().hex[:6]}"
    group = f"plain-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(sink, PARTITIONS, 1)]).values():
        future.result(30)
    lag = GroupLag(bootstrap, group, source)
    command = [sys.executable, __file__, "--plain-child", "--bootstrap", bootstrap]
    command += ["--source", source, "--sink", sink, "--group", group, "--guarantees", guarantee]
    children = [subprocess.Popen(command) for _ in range(processes)]
    try:
        label = f"plain loop, {processes} process{'es' * (processes > 1)}, {guarantee}"
        return measure(label, total, lag, timeout=3600, pids=[c.pid for c in children])
    finally:
        lag.close()
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(60)


def preload(bootstrap: str, tickets: int) -> tuple[str, int]:
    events = ticket_events(WorkloadShape(tickets=tickets, customers=CUSTOMERS, seed=3))
    source = f"bench-{uuid.uuid4().hex[:6]}.tickets.events"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(source, PARTITIONS, 1)]).values():
        future.result(30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
        }
    )
    for event in events:
        while True:
            try:
                producer.produce(source, orjson.dumps(event), key=event["ticket_id"].encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    return source, len(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=60_000)
    parser.add_argument("--workers", default="1,2", help="process counts to measure")
    parser.add_argument("--guarantees", default="exactly_once,at_least_once")
    parser.add_argument("--bootstrap")
    parser.add_argument("--profile", type=Path, help="py-spy raw output of one worker")
    parser.add_argument("--gil", action="store_true", help="profile the GIL holder only")
    parser.add_argument("--store", default="memory", choices=("memory", "rocksdb"))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=PYTHON[@TREE]: workers run by PYTHON in TREE as well",
    )
    parser.add_argument("--plain-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_child:
        plain_child(
            args.bootstrap, args.source, args.sink, args.group, args.guarantees == "exactly_once"
        )
        return

    counts = [int(n) for n in args.workers.split(",")]
    guarantees = args.guarantees.split(",")
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start")
    print(f"workers: SLACLOCK_STORE={args.store}")
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        source, total = preload(bootstrap, args.tickets)
        print(
            f"pre-loaded {total:,} events ({args.tickets:,} tickets) in {time.monotonic() - t:.1f}s"
        )
        # A first pass of the plain loop, not reported: the broker's JIT and page cache
        # warm up on it (the first measured run was up to 30% slower without it)
        plain_run(bootstrap, source, total, 1, guarantees[0])
        profile = args.profile
        for guarantee in guarantees:
            for n in counts:
                workdir = Path(tmp) / f"{guarantee}-{n}"
                workdir.mkdir()
                sampled = profile if (n == 1 and guarantee == "exactly_once") else None
                runs = [worker_run(bootstrap, source, total, n, guarantee, workdir, sampled, args)]
                print(runs[0].line(), flush=True)
                for i, spec in enumerate(args.variant):
                    name, _, rest = spec.partition("=")
                    python, _, tree = rest.partition("@")
                    variant_dir = workdir / f"variant-{i}"
                    variant_dir.mkdir()
                    cwd = Path(tree).resolve() if tree else variant_dir
                    variant = (name, str(Path(python).absolute()), cwd)
                    runs.append(
                        worker_run(
                            bootstrap, source, total, n, guarantee, variant_dir, None, args, variant
                        )
                    )
                    print(runs[-1].line(), flush=True)
                plain = plain_run(bootstrap, source, total, n, guarantee)
                print(plain.line(), flush=True)
                for run in runs:
                    cpu = ""
                    if run.cpu_us and plain.cpu_us:
                        cpu = f", CPU per event {run.cpu_us / plain.cpu_us:.1f}x the plain loop's"
                    print(
                        f"{run.label:<44} / plain: steady {run.steady_eps / plain.steady_eps:.0%}, "
                        f"overall {run.overall_eps / plain.overall_eps:.0%}{cpu}",
                        flush=True,
                    )
                if sampled is not None:
                    print(summarise(sampled.read_text().splitlines(), top=25))
                    profile = None


if __name__ == "__main__":
    main()
