"""Notification delivery: throughput and delay from output commit to delivery.

    .venv/bin/python benchmarks/notify_bench.py --bootstrap 127.0.0.1:9092
        [--backlog 5000] [--rate 200] [--seconds 30] [--partitions 4]

Runs `slaclock notify` (a subprocess, as deployed) with one webhook target: a local aiohttp
receiver that answers 200 at once and records when each notification arrived.

1. throughput: `--backlog` warnings are committed (transactions of 100) before notify
   starts; notifications/s = backlog / (last arrival - first arrival).
2. delay: with notify running and caught up, warnings are committed at `--rate` per second
   for `--seconds` (one transaction each 50 ms); for each, delay = arrival at the receiver
   - the instant its transaction's commit returned. Reported: p50, p99, max.

Both phases use fresh topics under a unique prefix (deleted at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from aiohttp import web
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

SLACLOCK = Path(sys.executable).parent / "slaclock"
TOPICS = ("sla.warnings", "sla.breaches", "sla.completions", "sla.credits")


class FastReceiver:
    """An aiohttp server in a thread: 200 for every POST, arrival instants by event_id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.requests += 1
            self.arrivals.setdefault(body["event_id"], time.time())
            return web.Response(text="{}", content_type="application/json")

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/hook", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()


def warning(n: int, prefix: str) -> dict[str, object]:
    return {
        "event_id": f"{prefix}w{n}",
        "type": "sla.warning",
        "ticket_id": f"B{n:07d}",
        "customer_id": "acme",
        "tier": "gold",
        "priority": "high",
        "metric": "first_response",
        "cycle": 1,
        "at": "2026-11-30T10:00:00Z",
        "threshold": 0.75,
        "deadline": "2026-11-30T10:15:00Z",
        "target_seconds": 3600,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark stalled")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--verbose", action="store_true", help="the worst delay per second")
    args = parser.parse_args()

    prefix = f"nb{uuid.uuid4().hex[:6]}."
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    names = [prefix + t for t in TOPICS]
    for future in admin.create_topics(
        [NewTopic(n, num_partitions=args.partitions) for n in names]
    ).values():
        future.result(30)
    receiver = FastReceiver()
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": f"{prefix}bench",
            "linger.ms": 5,
        }
    )
    producer.init_transactions(30)
    committed: dict[str, float] = {}

    def write(outputs: list[dict[str, object]]) -> None:
        producer.begin_transaction()
        for output in outputs:
            producer.produce(
                names[0], key=str(output["ticket_id"]).encode(), value=json.dumps(output).encode()
            )
        producer.commit_transaction(30)
        now = time.time()
        for output in outputs:
            committed[str(output["event_id"])] = now

    workdir = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    routing = workdir / "notify.yaml"
    routing.write_text(
        "targets:\n"
        f"  hook: {{kind: webhook, url: 'http://127.0.0.1:{receiver.port}/hook', "
        "secret_env: BENCH_SECRET}\n"
        "routes: [{targets: [hook]}]\n"
        "delivery: {concurrency: 32}\n"
        "topics: [" + ", ".join(names) + "]\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "BENCH_SECRET": "bench",
        "SLACLOCK_BOOTSTRAP_SERVERS": args.bootstrap,
        "SLACLOCK_NOTIFY_PATH": str(routing),
        "SLACLOCK_NOTIFY_APP_ID": f"{prefix}notify",
        "SLACLOCK_NOTIFY_DLQ_TOPIC": f"{prefix}dlq",
        "SLACLOCK_NOTIFY_HTTP_HOST": "127.0.0.1",
        "SLACLOCK_NOTIFY_HTTP_PORT": str(free_port()),
        "SLACLOCK_NOTIFY_DATADIR": str(workdir / "data"),
    }
    process: subprocess.Popen[bytes] | None = None
    try:
        # 1. throughput from a backlog
        backlog = [warning(n, prefix) for n in range(args.backlog)]
        for i in range(0, len(backlog), 100):
            write(backlog[i : i + 100])
        with (workdir / "notify.log").open("wb") as log:
            process = subprocess.Popen(
                [str(SLACLOCK), "notify"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(lambda: len(receiver.arrivals) >= args.backlog, 600)
        times = [receiver.arrivals[str(o["event_id"])] for o in backlog]
        span = max(times) - min(times)
        print(
            f"throughput: {args.backlog} notifications in {span:.2f} s = "
            f"{args.backlog / span:.0f} notifications/s ({args.partitions} partitions, "
            f"concurrency 32, receiver on loopback)"
        )
        # 2. delay at a steady rate
        batch = max(1, round(args.rate * 0.05))
        steady: list[str] = []
        n = args.backlog
        end = time.monotonic() + args.seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            outputs = [warning(n + i, prefix) for i in range(batch)]
            n += batch
            write(outputs)
            steady.extend(str(o["event_id"]) for o in outputs)
            next_at += 0.05
            time.sleep(max(next_at - time.monotonic(), 0))
        wait_for(lambda: all(e in receiver.arrivals for e in steady), 120)
        delays = sorted(receiver.arrivals[e] - committed[e] for e in steady)
        p50 = statistics.median(delays)
        p99 = delays[min(len(delays) - 1, round(0.99 * len(delays)))]
        if args.verbose:
            by_second: dict[int, list[float]] = {}
            start = min(committed[e] for e in steady)
            for e in steady:
                by_second.setdefault(int(committed[e] - start), []).append(
                    receiver.arrivals[e] - committed[e]
                )
            for second, values in sorted(by_second.items()):
                print(f"  second {second:3d}: max delay {max(values) * 1000:6.0f} ms")
        print(
            f"delay commit -> delivery at {args.rate:g}/s for {args.seconds:g} s "
            f"({len(steady)} notifications): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {delays[-1] * 1000:.0f} ms"
        )
        print(f"requests received: {receiver.requests} (duplicates: {receiver.requests - n})")
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        changelog = f"{prefix}notify-delivered-changelog"
        for future in admin.delete_topics([*names, f"{prefix}dlq", changelog]).values():
            with contextlib.suppress(Exception):  # best effort
                future.result(15)


if __name__ == "__main__":
    main()
