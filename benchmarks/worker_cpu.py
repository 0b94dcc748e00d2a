"""Stage 1's per-record CPU without a broker: the live adapter on records in memory.

    .venv/bin/python benchmarks/worker_cpu.py --tickets 20000 [--store rocksdb|memory]
        [--repeat 3] [--profile FILE.prof] [--digest]

The same seeded workload as `pipeline_bench.py`, split over 4 partitions by key, is fed
to a `TicketProcessor` (the worker's stage 1, exactly as it runs in a worker) as
`confluent_kafka.Message`s in batches of 5,000, each followed by one clock tick per
partition (catching up: the clock follows the stream), `after_batch` and the changelog
flush, as `TransactionalLoop` does between the poll and the commit. The producer is a
stand-in that keeps every record it is given: `--digest` prints a SHA-256 of them all
(topic, partition, key, value, headers, in order), so two builds or trees can be shown to
produce byte-identical records. No broker, no transactions, no ledger thread: this is the
Python work a worker does per record, which `pipeline_bench.py` measures within the whole
process. Run it with another interpreter (the compiled build's) or in another tree
(`cd TREE && python ROOT/benchmarks/worker_cpu.py`) to compare; CPU time is the process's
(`time.process_time`) over the batches only (decoding the workload, building the
messages and the stores' set-up are outside).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Message

sys.path.insert(0, os.getcwd())  # the tree to measure: the current directory's slaclock

from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.gc_tuning import tune_gc
from slaclock.processors.live.records import Tick
from slaclock.processors.live.tickets import TicketProcessor
from slaclock.processors.settings import load_settings
from slaclock.schemas.policy import load_policy
from slaclock.workload import WorkloadShape, ticket_events

CUSTOMERS = ("acme", "globex", "initech", "muster-gmbh", "walk-in")  # as pipeline_bench
PARTITIONS = 4
BATCH = 5000
ROOT = Path(__file__).resolve().parent.parent


class RecordingProducer:
    """What the loop's producer is given, kept (and hashed) instead of sent."""

    def __init__(self, digest: bool) -> None:
        self.count = 0
        self.hash = hashlib.sha256() if digest else None

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        headers: Any = None,
    ) -> None:
        self.count += 1
        if self.hash is not None:
            self.hash.update(
                orjson.dumps(
                    [
                        topic.rsplit(".", 1)[-1],
                        partition,
                        (key or b"").hex(),
                        (value or b"").hex(),
                        [(k, v.hex()) for k, v in headers or ()],
                    ]
                )
            )

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0


def batches(tickets: int, topic_events: str, topic_clock: str) -> list[list[Message]]:
    events = ticket_events(WorkloadShape(tickets=tickets, customers=CUSTOMERS, seed=3))
    offsets = [0] * PARTITIONS
    messages: list[Message] = []
    for event in events:
        key = event["ticket_id"].encode()
        partition = zlib.crc32(key) % PARTITIONS
        messages.append(
            Message(
                topic=topic_events,
                partition=partition,
                offset=offsets[partition],
                key=key,
                value=orjson.dumps(event),
            )
        )
        offsets[partition] += 1
    out: list[list[Message]] = []
    for start in range(0, len(messages), BATCH):
        batch = messages[start : start + BATCH]
        # a tick per partition, as the ticker sends them every 0.5 s; `end_offset` beyond
        # the input, so the clock follows the stream (the same outputs on every run)
        now = int(time.time() * 1_000_000)
        for p in range(PARTITIONS):
            batch.append(
                Message(
                    topic=topic_clock,
                    partition=p,
                    offset=start,
                    value=Tick(now, 1 << 40).encode(),
                )
            )
        out.append(batch)
    return out


def run_once(args: argparse.Namespace, state_dir: Path) -> tuple[float, int, str, int]:
    settings = load_settings(
        bootstrap_servers="127.0.0.1:1",  # never contacted
        app_id="bench",
        instance_id="w1",
        http_port=0,
        store=args.store,
        state_dir=state_dir,
        grace=1,
        partitions=PARTITIONS,
    )
    policy = compile_policy(load_policy(ROOT / "examples" / "policy.yaml"))
    tickets = TicketProcessor(settings, policy, ledger_partitions=PARTITIONS)
    producer = RecordingProducer(args.digest)
    tickets.producer = producer  # type: ignore[assignment]
    try:
        for partition in range(PARTITIONS):
            tickets.restore_task(partition, [])
        work = batches(args.tickets, settings.topic_events, settings.topic_clock)
        events = sum(len(b) - PARTITIONS for b in work)
        tune_gc()
        profiler = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for batch in work:
            for task in tickets.tasks.values():
                task.last_in_batch = -1
            if hasattr(tickets, "process_batch"):
                tickets.process_batch(batch)
            else:  # a tree from before `process_batch`
                for message in batch:
                    tickets.process(message)
            tickets.after_batch()
            if hasattr(tickets, "produce_state_changes"):
                tickets.produce_state_changes()
            else:  # a tree from before it: the loop `TransactionalLoop` had
                for partition, key, value in tickets.flush_state():
                    tickets.produce(tickets.changelog_topic, value, key=key, partition=partition)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        cpu = time.process_time() - started
        digest = producer.hash.hexdigest() if producer.hash is not None else "-"
        return cpu, events, digest, producer.count
    finally:
        tickets.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--store", default="rocksdb", choices=("memory", "rocksdb"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", help="cProfile stats of the (last) run to this file")
    parser.add_argument("--digest", action="store_true", help="hash every produced record")
    args = parser.parse_args()
    cpus = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cpu, events, digest, produced = run_once(args, Path(tmp))
        cpus.append(cpu)
        print(
            f"{events:,} events: {cpu:.2f} s CPU, {cpu / events * 1e6:.1f} µs/event; "
            f"{produced:,} records produced, digest {digest[:16]}",
            flush=True,
        )
    best = sorted(cpus)[len(cpus) // 2]
    print(f"median {best / events * 1e6:.1f} µs/event ({sys.executable}, {os.getcwd()})")


if __name__ == "__main__":
    main()
