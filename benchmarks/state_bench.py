"""State size, recovery time and timer precision of one slaclock worker on Kafka.

    .venv/bin/python benchmarks/state_bench.py [--scale 10000,100000] [--stores memory,rocksdb]
                                               [--timer-tickets 10000] [--bootstrap HOST:PORT]

1. Scale of state: for each store, a worker is started on empty topics (baseline RSS), then
   N `ticket.created` events (stamped "now", customer without contract -> tier `standard`,
   priority low: 16 business hours to first response, so no timer fires) are published in
   steps; after each step, once the worker has caught up, its VmRSS and (rocksdb) the size
   of SLACLOCK_STATE_DIR are read. Bytes per open ticket = (RSS - baseline) / N.
2. Recovery: with the largest state, the worker is SIGKILLed and restarted; one
   `ticket.agent_replied` (public) for an existing ticket is published right after the
   restart; recovery time = restart until its `sla.completed` is readable (read_committed).
   The RSS of the restarted worker (state rebuilt from the changelog) is also read.
3. Timer precision: a policy with first-response targets of 20 s..2 min (two tiers, four
   priorities); tickets are created "now" over ~10 s plus a trickle of other events; after
   the last deadline, every `sla.breach` is read with its record timestamp (CreateTime, set
   by the worker's producer at emission): delay = timestamp - (at + grace).

4. State records (no broker; `--skip scale,timers` runs only this part): the shared
   workload (`slaclock.workload`, the replay benchmark's) is replayed under
   examples/policy.yaml; then the changelog record of every ticket (`to_record`, as JSON)
   is measured, open and closed tickets apart, and the Python heap the store holds per
   ticket (tracemalloc). Run it on two commits to see what a change adds per ticket.

Without --bootstrap a local broker is started on free ports and stopped at the end (only
when the scale or timer part runs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slaclock.local_kafka import LocalKafka  # noqa: E402
from slaclock.processors.engine.instants import format_us, parse_instant  # noqa: E402
from tests.kafka.pipeline import LivePipeline, WorkerProcess  # noqa: E402

TIMER_POLICY = """\
default_tier: fast
calendars:
  always: {timezone: UTC, hours: 24x7}
tiers:
  fast:
    calendar: always
    targets:
      first_response: {urgent: 20s, high: 45s, normal: 1m20s, low: 2m}
      resolution: {urgent: 1h, high: 1h, normal: 1h, low: 1h}
    pause_on: [pending]
    warnings: [0.5]
  slow:
    calendar: always
    targets:
      first_response: {urgent: 30s, high: 1m, normal: 1m40s, low: 1m50s}
      resolution: {urgent: 1h, high: 1h, normal: 1h, low: 1h}
    pause_on: [pending]
    warnings: [0.5]
customers:
  slowco: {tier: slow, monthly_fee: "100.00", currency: EUR, timezone: UTC}
"""


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


def now_us() -> int:
    return time.time_ns() // 1000


def created(ticket: str, customer: str, priority: str) -> tuple[bytes, bytes]:
    event = {
        "event_id": f"{ticket}-1",
        "type": "ticket.created",
        "ticket_id": ticket,
        "occurred_at": format_us(now_us()),
        "customer_id": customer,
        "priority": priority,
    }
    return ticket.encode(), orjson.dumps(event)


def other(ticket: str, n: int, kind: str, **fields: Any) -> tuple[bytes, bytes]:
    event = {
        "event_id": f"{ticket}-{n}",
        "type": kind,
        "ticket_id": ticket,
        "occurred_at": format_us(now_us()),
        **fields,
    }
    return ticket.encode(), orjson.dumps(event)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def du_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def restored_lines(worker: WorkerProcess) -> int:
    try:
        return worker.log_path.read_text(errors="replace").count(": restored ")
    except FileNotFoundError:
        return 0


def wait_restored(worker: WorkerProcess, partitions: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if restored_lines(worker) >= partitions:
            return time.monotonic()
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited\n{worker.log_tail()}")
        time.sleep(0.05)
    raise TimeoutError(f"worker did not restore\n{worker.log_tail()}")


def wait_caught_up(pipeline: LivePipeline, timeout: float = 1800) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipeline.unprocessed_input() == 0:
            return time.monotonic()
        time.sleep(0.25)
    raise TimeoutError("worker did not catch up")


def tail_consumer(bootstrap: str, topic: str, partitions: int) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-tail-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
    consumer.poll(0.5)  # resolve the end offsets now, before the output can exist
    return consumer


def settle_rss(pid: int, seconds: float = 3.0) -> tuple[int, int]:
    time.sleep(seconds)
    return rss_kib(pid)


def scale_and_recovery(
    bootstrap: str, store: str, steps: list[int], workdir: Path
) -> list[dict[str, Any]]:
    state_dir = workdir / f"state-{store}"
    pipeline = LivePipeline(
        bootstrap,
        f"s{uuid.uuid4().hex[:6]}.",
        workdir,
        extra_env={
            "SLACLOCK_STORE": store,
            "SLACLOCK_STATE_DIR": str(state_dir),
            "SLACLOCK_TICK_INTERVAL": "1",
            "SLACLOCK_GRACE": "2",
        },
    )
    rows: list[dict[str, Any]] = []
    try:
        worker = pipeline.start_worker()
        wait_restored(worker, pipeline.partitions)
        base_rss, _ = settle_rss(worker.process.pid)
        base_disk = du_bytes(state_dir)
        print(f"[{store}] baseline worker: RSS {base_rss / 1024:.1f} MiB, disk {base_disk:,} B")
        rows.append({"store": store, "tickets": 0, "rss_kib": base_rss, "disk": base_disk})
        published = 0
        for target in steps:
            t = time.monotonic()
            n = pipeline.publish(
                created(f"T{i:07d}", "walk-in", "low") for i in range(published, target)
            )
            published = target
            wait_caught_up(pipeline)
            elapsed = time.monotonic() - t
            rss, hwm = settle_rss(worker.process.pid)
            disk = du_bytes(state_dir)
            per = (rss - base_rss) * 1024 / target
            print(
                f"[{store}] {target:,} open tickets: +{n:,} in {elapsed:.1f}s "
                f"({n / elapsed:,.0f} ev/s); RSS {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f}), "
                f"{per:,.0f} B/ticket over baseline; disk {disk / 1e6:.1f} MB "
                f"({disk / target:,.0f} B/ticket)"
            )
            rows.append(
                {
                    "store": store,
                    "tickets": target,
                    "rss_kib": rss,
                    "hwm_kib": hwm,
                    "per_ticket": per,
                    "disk": disk,
                }
            )
            # -- recovery: after a SIGKILL; for rocksdb also after a clean stop (warm store)
            for how in ("kill", "clean") if store == "rocksdb" else ("kill",):
                worker, row = recover(pipeline, worker, published, how, base_rss)
                rows.append({"store": store, **row})
        worker.stop()
        rec = [r for r in rows if r.get("restarted")]
        if len(rec) >= 2:
            (n1, r1), (n2, r2) = [(r["tickets"], r["recovery"]) for r in rec[-2:]]
            slope = (r2 - r1) / (n2 - n1)
            print(
                f"[{store}] recovery slope {slope * 1e6:.1f} s per 1M tickets; linear "
                f"extrapolation (fixed + slope) to 1M: {r2 + slope * (1_000_000 - n2):.0f}s"
            )
    finally:
        pipeline.close()
    return rows


def recover(
    pipeline: LivePipeline, worker: WorkerProcess, published: int, how: str, base_rss: int
) -> tuple[WorkerProcess, dict[str, Any]]:
    """Stop the worker (`kill`: SIGKILL; `clean`: SIGTERM), restart it, and time until a
    new event's output is readable. Returns the new worker and the figures."""
    store = pipeline.extra_env["SLACLOCK_STORE"]
    tail = tail_consumer(
        pipeline.bootstrap, pipeline.settings.topic_completions, pipeline.partitions
    )
    if how == "kill":
        worker.kill()
    else:
        assert worker.stop() == 0, worker.log_tail()
    start = time.monotonic()
    worker = pipeline.start_worker()
    probe = f"T{published // 2 + (how == 'clean'):07d}"
    pipeline.publish([other(probe, 2, "ticket.agent_replied", public=True)])
    restored_at: float | None = None
    done_at: float | None = None
    deadline = start + 600
    while done_at is None and time.monotonic() < deadline:
        for message in tail.consume(100, timeout=0.05):
            if message.error() is None and orjson.loads(message.value()).get("ticket_id") == probe:
                done_at = time.monotonic()
        if restored_at is None and restored_lines(worker) >= pipeline.partitions:
            restored_at = time.monotonic()
    tail.close()
    if done_at is None:
        raise TimeoutError(f"no sla.completed for {probe}\n{worker.log_tail()}")
    if restored_at is None:
        restored_at = wait_restored(worker, pipeline.partitions)
    warm = worker.log_path.read_text(errors="replace").count("reuses its local store")
    rss, hwm = settle_rss(worker.process.pid)
    recovery = done_at - start
    label = "SIGKILL" if how == "kill" else f"clean stop ({warm} warm tasks)"
    print(
        f"[{store}] recovery of {published:,} tickets after {label}: restore done "
        f"{restored_at - start:.2f}s, first new output {recovery:.2f}s after restart; "
        f"restarted RSS {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f}), "
        f"{(rss - base_rss) * 1024 / published:,.0f} B/ticket over baseline"
    )
    row = {
        "tickets": published,
        "how": how,
        "warm_tasks": warm,
        "recovery": recovery,
        "restore": restored_at - start,
        "rss_kib": rss,
        "hwm_kib": hwm,
        "per_ticket": (rss - base_rss) * 1024 / published,
        "restarted": how == "kill",
    }
    return worker, row


def timer_precision(
    bootstrap: str, tickets: int, workdir: Path, timer_ticks: bool = True, seconds: float = 135
) -> list[float]:
    policy = workdir / "timer-policy.yaml"
    policy.write_text(TIMER_POLICY)
    pipeline = LivePipeline(
        bootstrap,
        f"t{uuid.uuid4().hex[:6]}.",
        workdir,
        policy_path=policy,
        extra_env={
            "SLACLOCK_TICK_INTERVAL": "1",
            "SLACLOCK_GRACE": "2",
            "SLACLOCK_TIMER_TICKS": "true" if timer_ticks else "false",
        },
    )
    grace_us = 2_000_000
    rng = random.Random(11)
    try:
        worker = pipeline.start_worker()
        wait_restored(worker, pipeline.partitions)
        time.sleep(2)
        priorities = ("urgent", "high", "normal", "low")
        # creations over ~10 s in 20 slices
        per_slice = tickets // 20
        first = time.monotonic()
        for s in range(20):
            pipeline.publish(
                created(f"P{i:07d}", rng.choice(("walk-in", "slowco")), rng.choice(priorities))
                for i in range(s * per_slice, (s + 1) * per_slice)
            )
            time.sleep(max(0.0, first + (s + 1) * 0.5 - time.monotonic()))
        created_n = per_slice * 20
        print(f"[timers] {created_n:,} tickets created in {time.monotonic() - first:.1f}s")
        # trickle: ~20 events/s for `seconds` (2 min 15 s): customer replies, internal notes, and
        # public replies (which complete first_response: those tickets do not breach)
        counters: dict[str, int] = {}
        touched: dict[str, list[float]] = {}  # ticket -> wall times of its trickle events
        end = first + seconds
        while time.monotonic() < end:
            batch = []
            for _ in range(10):
                ticket = f"P{rng.randrange(created_n):07d}"
                n = counters[ticket] = counters.get(ticket, 1) + 1
                touched.setdefault(ticket, []).append(time.time())
                roll = rng.random()
                if roll < 0.5:
                    batch.append(other(ticket, n, "ticket.customer_replied"))
                elif roll < 0.8:
                    batch.append(other(ticket, n, "ticket.agent_replied", public=False))
                else:
                    batch.append(other(ticket, n, "ticket.agent_replied", public=True))
            pipeline.publish(batch)
            time.sleep(0.5)
        wait_caught_up(pipeline)
        time.sleep(8)  # last deadline + grace + tick + commit
        delays = []
        by_event = 0
        by_own_event: list[float] = []
        for message in pipeline._read_all(pipeline.settings.topic_breaches):
            breach = orjson.loads(message.value())
            if breach.get("metric") != "first_response":
                continue
            _, ts_ms = message.timestamp()
            due_us = parse_instant(breach["at"]) + grace_us
            # a timer fires the breach at its deadline (decided_at == at); a breach decided
            # by the ticket's own late event (a public reply past the deadline) is emitted
            # at once, without waiting for the grace: those are not timer precision
            if breach["decided_at"] != breach["at"]:
                by_event += 1
                continue
            # the ticket's own event between the deadline and deadline + grace also fires
            # its due timer at once (grace delays only other tickets' timers)
            deadline_s = parse_instant(breach["at"]) / 1e6
            own = touched.get(breach["ticket_id"], ())
            if any(deadline_s - 0.5 <= t <= deadline_s + 2.5 for t in own):
                by_own_event.append(ts_ms / 1000 - due_us / 1e6)
                continue
            delays.append(ts_ms / 1000 - due_us / 1e6)
        warnings = sum(1 for _ in pipeline._read_all(pipeline.settings.topic_warnings))
        print(
            f"[timers] {len(delays) + len(by_own_event) + by_event:,} first_response breaches "
            f"({len(delays):,} fired by ticks, {len(by_own_event):,} by the ticket's own event "
            f"within the grace, {by_event:,} decided by a late event), "
            f"{warnings:,} warnings read"
        )
        if by_own_event:
            print(
                f"[timers] delay of breaches fired by the ticket's own event: "
                f"min {min(by_own_event):.3f}s, max {max(by_own_event):.3f}s"
            )
        worker.stop()
    finally:
        pipeline.close()
    return delays


def state_records(tickets: int, seed: int) -> None:
    """Part 4: bytes of state per ticket, serialised and in memory, after a replay."""
    import gc
    import tracemalloc

    from slaclock.processors.engine.policy import compile_policy
    from slaclock.processors.replay import Replayer
    from slaclock.schemas.policy import load_policy
    from slaclock.schemas.rejection import Rejected
    from slaclock.workload import WorkloadShape, ticket_events

    policy = compile_policy(load_policy(ROOT / "examples" / "policy.yaml"))
    shape = WorkloadShape(tickets=tickets, customers=(*policy.contracts, "walk-in"), seed=seed)
    lines = [orjson.dumps(event) for event in ticket_events(shape)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    replayer = Replayer(policy, lambda output: None, closed_retention_us=1 << 62)
    for line in lines:
        with contextlib.suppress(Rejected):
            replayer.on_line(line)
    replayer.finish(None)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    states = list(replayer.store.values())
    sizes: dict[str, list[int]] = {"open": [], "closed": []}
    for state in states:
        kind = "open" if state.closed_at is None else "closed"
        sizes[kind].append(len(orjson.dumps(state.to_record())))
    every = sizes["open"] + sizes["closed"]
    print(
        f"[records] {tickets} tickets, {len(lines)} events (seed {seed}): serialised state "
        f"{sum(every) / max(1, len(every)):.0f} B/ticket "
        f"(open {sum(sizes['open']) / max(1, len(sizes['open'])):.0f} B over "
        f"{len(sizes['open'])}, closed {sum(sizes['closed']) / max(1, len(sizes['closed'])):.0f} B "
        f"over {len(sizes['closed'])}); in memory {held / max(1, len(states)):.0f} B/ticket"
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="10000,100000")
    parser.add_argument("--stores", default="memory,rocksdb")
    parser.add_argument("--timer-tickets", type=int, default=10_000)
    parser.add_argument("--timer-ticks", default="on,off", help="SLACLOCK_TIMER_TICKS to compare")
    parser.add_argument(
        "--timer-seconds", type=float, default=135, help="how long the steady trickle runs"
    )
    parser.add_argument("--skip", default="", help="comma list of: scale, timers, records")
    parser.add_argument("--record-tickets", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bootstrap")
    args = parser.parse_args()
    steps = [int(s) for s in args.scale.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    print(f"load average at start: {os.getloadavg()}")
    if "records" not in skip:
        state_records(args.record_tickets, args.seed)
    if {"scale", "timers"} <= skip:
        return
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "scale" not in skip:
            for store in args.stores.split(","):
                scale_and_recovery(bootstrap, store, steps, workdir)
        if "timers" not in skip:
            for mode in filter(None, args.timer_ticks.split(",")):
                delays = timer_precision(
                    bootstrap, args.timer_tickets, workdir, mode == "on", args.timer_seconds
                )
                if delays:
                    print(
                        f"[timers] timer ticks {mode}: breach emission delay "
                        f"(CreateTime - (at + grace)): p50 {pct(delays, 0.5):.3f}s, "
                        f"p99 {pct(delays, 0.99):.3f}s, max {max(delays):.3f}s, "
                        f"min {min(delays):.3f}s, n={len(delays):,}"
                    )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
