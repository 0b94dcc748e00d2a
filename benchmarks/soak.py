"""Soak: two workers and a notifier for a long while, with faults, on a local broker.

    .venv/bin/python benchmarks/soak.py --minutes 120            # the full soak (own broker)
    .venv/bin/python benchmarks/soak.py --minutes 2 --bootstrap HOST:PORT \\
        --kill-worker-every 0.5 --kill-notifier-every 0.75 --sample-every 10   # the smoke

A live workload (tickets created now, with targets of seconds to minutes, so warnings,
breaches, completions, cancellations and credits happen all along) is published at its
events' own instants to two workers (`w1`, `w2`) and a notifier that sends every breach
to a local webhook receiver. Faults on a schedule: SIGKILL of a worker (then restarted),
SIGKILL of the notifier (then restarted) and, on a broker this script started itself, a
broker restart. Every `--sample-every` seconds: the RSS of every process, the input lag of
stage 1, the abandoned transactional calls of the workers. At the end: the committed
outputs against a replay of everything published (missing, duplicated), the breaches
delivered against the breaches committed, the RSS slope of each process over the last
half of the run (the last hour of a two-hour run), and a CSV of the samples plus a chart
(RSS and lag over time) in `--out`.

Exit status 1 when an output is missing or duplicated or a breach was not delivered.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import yaml  # noqa: E402

from slaclock.local_kafka import LocalKafka, free_port  # noqa: E402
from slaclock.processors.engine.instants import (  # noqa: E402
    US_PER_SECOND,
    format_us,
    parse_instant,
)
from slaclock.processors.engine.policy import compile_policy  # noqa: E402
from slaclock.processors.live.policies import read_policy_log  # noqa: E402
from slaclock.processors.replay import Replayer  # noqa: E402
from slaclock.schemas.policy import load_policy  # noqa: E402
from slaclock.schemas.rejection import Rejected  # noqa: E402
from slaclock.workload import WorkloadShape, ticket_events  # noqa: E402
from tests.kafka.pipeline import (  # noqa: E402
    LivePipeline,
    WorkerProcess,
    comparable,
    difference,
)
from tests.notify.harness import NotifyRun, wait_for  # noqa: E402
from tests.notify.receivers import Receiver  # noqa: E402

SOAK_POLICY = """\
default_tier: soak
calendars:
  always: {timezone: UTC, hours: 24x7}
tiers:
  soak:
    calendar: always
    targets:
      first_response: {urgent: 30s, high: 1m, normal: 2m, low: 5m}
      next_response: {urgent: 1m, high: 2m, normal: 4m}
      periodic_update: {urgent: 2m, high: 4m}
      resolution: {urgent: 5m, high: 10m, normal: 20m, low: 40m}
    pause_on: [pending]
    warnings: [0.5, 0.75]
    credits:
      per_breach: {first_response: 1.0, resolution: 2.5}
      monthly_cap: 5
groups:                        # the generator's teams (slaclock.workload.group_of_agent)
  support:
    calendar: always
    targets:
      group_response: {urgent: 20s, high: 40s, normal: 90s, low: 3m}
      group_resolution: {urgent: 3m, high: 6m, normal: 12m, low: 30m}
    pause_on: [pending]
    warnings: [0.75]
  tier2:
    calendar: always
    targets:
      group_response: {urgent: 30s, high: 1m, normal: 2m}
      group_resolution: {urgent: 4m, high: 8m, normal: 15m}
    pause_on: [pending, on_hold]
    warnings: [0.75]
  engineering:
    calendar: always
    targets:
      group_response: {urgent: 1m, high: 2m, normal: 4m}
      group_resolution: {urgent: 10m, high: 20m, normal: 30m}
    pause_on: [pending, on_hold]
    warnings: [0.5, 0.9]
customers:
  acme: {tier: soak, monthly_fee: "1000.00", currency: EUR, timezone: Europe/Berlin}
  globex: {tier: soak, monthly_fee: "500.00", currency: USD, timezone: America/New_York}
  initech: {tier: soak, monthly_fee: "800.00", currency: EUR, timezone: UTC}
"""
# Policy versions published during the run (at these fractions of it) with `slaclock policy
# publish`, each in force a minute after its publication: version 2 shortens the resolution
# and engineering targets for open tickets too; version 3 restores them for new tickets only.
VERSIONS = (
    (
        0.4,
        "v2",
        "open",
        {"resolution": {"urgent": "3m", "high": "6m", "normal": "12m", "low": "30m"}},
    ),
    (
        0.75,
        "v3",
        "new",
        {"resolution": {"urgent": "5m", "high": "10m", "normal": "20m", "low": "40m"}},
    ),
)
CUSTOMERS = ("acme", "globex", "initech", "hooli", "walk-in")
ROUTING = "routes:\n  - {match: {type: sla.breach}, targets: [hook]}\n"


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def scrape(port: int, metric: str) -> float:
    """The sum of a metric's samples on a worker's /metrics (0 when not reachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(m.group(1)) for m in re.finditer(rf"^{metric}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    )


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


@dataclass
class Schedule:
    """A fault every `every` seconds (0: never), first one after `every` seconds."""

    every: float
    action: Callable[[], None]
    name: str
    next_at: float = 0.0
    done: int = 0

    def due(self, elapsed: float) -> bool:
        return self.every > 0 and elapsed >= self.next_at

    def run(self, elapsed: float) -> None:
        self.action()
        self.done += 1
        self.next_at = elapsed + self.every


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path
    bootstrap: str
    broker: LocalKafka | None
    samples: list[dict[str, object]] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    # the versions in the log, as the replay's `policy.changed` lines: (publish instant, line)
    version_lines: list[tuple[int, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        prefix = f"s{uuid.uuid4().hex[:6]}."
        # what benchmarks/notify_shadow.py needs to read the same outputs
        print(f"broker {self.bootstrap}, topic prefix {prefix}", flush=True)
        policy = self.workdir / "soak-policy.yaml"
        policy.write_text(SOAK_POLICY, encoding="utf-8")
        self.pipeline = LivePipeline(self.bootstrap, prefix, self.workdir, policy_path=policy)
        self.hook = Receiver("webhook")
        routing = (
            f"targets:\n  hook: {{kind: webhook, url: '{self.hook.url}', secret_env: SOAK_HOOK}}\n"
            + ROUTING
        )
        notify_env = {"SOAK_HOOK": "s", **self.heap_trim_env("notify")}
        self.notify = NotifyRun(self.bootstrap, prefix, self.workdir, routing, notify_env)
        self.workers: dict[str, WorkerProcess] = {}
        for instance in ("w1", "w2"):
            self.ports[instance] = free_port()
            self.start_worker(instance)
        self.notify.start()

    # -- processes ------------------------------------------------------------------------

    def start_worker(self, instance: str) -> None:
        env = {
            "SLACLOCK_HTTP_PORT": str(self.ports[instance]),
            "SLACLOCK_TICK_INTERVAL": "1",
            # the clock trails wall time by more than an event's way through the publisher,
            # a broker restart included: an event held back longer would be late, applied
            # as of the clock (docs/semantics.md: Late events), and differ from the replay
            "SLACLOCK_GRACE": str(self.args.grace),
            "SLACLOCK_CLOSED_RETENTION": str(self.args.closed_retention),
            **self.heap_trim_env(instance),
        }
        self.workers[instance] = self.pipeline.start_worker(instance, env=env)

    def heap_trim_env(self, process: str) -> dict[str, str]:
        """No periodic heap trim for the processes named by --no-heap-trim-on (a side-by-side
        comparison in one run)."""
        return {"SLACLOCK_HEAP_TRIM_INTERVAL": "0"} if process in self.args.no_heap_trim_on else {}

    def kill_a_worker(self) -> None:
        instance = ("w1", "w2")[self.kills_of_workers.done % 2]
        self.workers[instance].kill()
        time.sleep(2)
        self.start_worker(instance)

    def kill_the_notifier(self) -> None:
        self.notify.kill()
        time.sleep(1)
        self.notify.start()

    def restart_the_broker(self) -> None:
        assert self.broker is not None
        self.broker.down()
        time.sleep(5)
        self.broker.up(timeout=120)

    def publish_a_version(self, version: str, applies_to: str, targets: dict[str, object]) -> None:
        """`slaclock policy publish`, as an operator would, in force a minute later; the
        record it wrote (read back for its publish instant) becomes the replay's line."""
        document = yaml.safe_load(SOAK_POLICY)
        document["tiers"]["soak"]["targets"].update(targets)
        if version == "v2":
            document["groups"]["engineering"]["targets"]["group_resolution"] = {
                "urgent": "5m", "high": "10m", "normal": "15m"
            }  # fmt: skip
        file = self.workdir / f"policy-{version}.yaml"
        file.write_text(yaml.safe_dump(document), encoding="utf-8")
        effective = datetime.fromtimestamp(time.time() + 60, UTC).replace(microsecond=0)
        command = [
            sys.executable, "-c", "from slaclock.cli import main; main()", "policy", "publish",
            str(file), "--version", version, "--applies-to", applies_to,
            "--effective-at", effective.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "--bootstrap", self.bootstrap,
        ]  # fmt: skip
        for _attempt in range(5):
            done = subprocess.run(
                command, env=self.pipeline.env("policy"), capture_output=True, text=True
            )
            print(f"policy publish {version}: exit {done.returncode} {done.stdout.strip()} "
                  f"{done.stderr.strip()}", flush=True)  # fmt: skip
            if done.returncode == 0:
                break
            time.sleep(5)
        for record in read_policy_log(self.pipeline.settings):
            if record.publication.version == version:
                line = {
                    "type": "policy.changed",
                    "event_id": f"policy-{version}",
                    "occurred_at": format_us(record.published_at),
                    **record.publication.model_dump(mode="json", exclude_none=True),
                }
                self.version_lines.append((record.published_at, orjson.dumps(line)))

    def replay_input(self) -> list[bytes]:
        """Everything published, with each version at its publish instant."""
        lines: list[bytes] = []
        versions = sorted(self.version_lines)
        for _, value in self.pipeline.published:
            at = parse_instant(orjson.loads(value)["occurred_at"])
            while versions and versions[0][0] <= at:
                lines.append(versions.pop(0)[1])
            lines.append(value)
        lines.extend(line for _, line in versions)
        return lines

    def replay(self, lines: list[bytes], until: int) -> list[dict[str, Any]]:
        """The replay of `lines` with the workers' closed-ticket retention (the live
        workers send the same rejections to their dead-letter topic)."""
        outputs: list[dict[str, Any]] = []
        policy = compile_policy(load_policy(self.pipeline.policy_path))
        retention = int(self.args.closed_retention * US_PER_SECOND)
        replayer = Replayer(policy, outputs.append, closed_retention_us=retention)
        rejected = 0
        for line in lines:
            try:
                replayer.on_line(line)
            except Rejected:
                rejected += 1
        replayer.finish(until)
        print(f"replay: {len(lines)} lines, {rejected} rejected", flush=True)
        return outputs

    def pids(self) -> dict[str, int]:
        found = {name: w.process.pid for name, w in self.workers.items()}
        if self.notify.process is not None:
            found["notify"] = self.notify.process.pid
        return found

    # -- the run --------------------------------------------------------------------------

    def run(self) -> int:
        seconds = self.args.minutes * 60
        now = datetime.now(UTC).replace(microsecond=0)
        shape = WorkloadShape(
            tickets=max(10, round(self.args.tickets_per_minute * self.args.minutes)),
            start=now,
            spread_seconds=int(seconds),
            mean_gap_seconds=self.args.mean_gap,
            customers=CUSTOMERS,
            seed=self.args.seed,
            close_every_ticket=self.args.close_every_ticket,
        )
        end_us = int((time.time() + seconds) * US_PER_SECOND)
        events = [e for e in ticket_events(shape) if parse_instant(e["occurred_at"]) < end_us]
        self.kills_of_workers = Schedule(self.args.kill_worker_every * 60, self.kill_a_worker, "w")
        schedules = [
            self.kills_of_workers,
            Schedule(self.args.kill_notifier_every * 60, self.kill_the_notifier, "notifier"),
        ]
        if self.broker is not None:
            schedules.append(
                Schedule(self.args.restart_broker_every * 60, self.restart_the_broker, "broker")
            )
        for schedule in schedules:
            schedule.next_at = schedule.every
        for fraction, version, applies_to, targets in VERSIONS:
            schedules.append(
                Schedule(
                    seconds * 2,  # once
                    lambda v=version, a=applies_to, t=targets: self.publish_a_version(v, a, t),
                    f"policy {version}",
                    next_at=seconds * fraction,
                )
            )
        stop = threading.Event()
        publisher = threading.Thread(target=self.publish, args=(events, stop), daemon=True)
        started = time.monotonic()
        publisher.start()
        next_sample = 0.0
        while (elapsed := time.monotonic() - started) < seconds:
            for schedule in schedules:
                if schedule.due(elapsed):
                    print(f"[{elapsed:7.0f} s] fault: {schedule.name}", flush=True)
                    schedule.run(elapsed)
            if elapsed >= next_sample:
                self.sample(elapsed)
                next_sample += self.args.sample_every
            time.sleep(0.5)
        stop.set()
        publisher.join(60)
        self.sample(time.monotonic() - started)
        return self.finish(schedules)

    def publish(self, events: list[dict[str, object]], stop: threading.Event) -> None:
        """Each event at its own instant (batches every 0.2 s)."""
        pending = list(events)
        while pending and not stop.is_set():
            now = int(time.time() * US_PER_SECOND)
            due = [e for e in pending if parse_instant(str(e["occurred_at"])) <= now]
            pending = pending[len(due) :]
            if due:
                self.pipeline.publish(
                    [(str(e["ticket_id"]).encode(), orjson.dumps(e)) for e in due]
                )
            stop.wait(0.2)

    def sample(self, elapsed: float) -> None:
        row: dict[str, object] = {"seconds": round(elapsed)}
        for name, pid in self.pids().items():
            row[f"rss_kib_{name}"] = rss_kib(pid) or ""
        try:
            row["lag"] = self.pipeline.unprocessed_input()
        except Exception:  # the broker may be restarting
            row["lag"] = ""
        for column, metric in (
            ("abandoned", "slaclock_transactional_calls_abandoned_total"),
            ("late", "slaclock_late_events_total"),
        ):
            row[column] = sum(scrape(port, metric) for port in self.ports.values())
        self.samples.append(row)
        print(f"[{elapsed:7.0f} s] sample {json.dumps(row)}", flush=True)

    def finish(self, schedules: list[Schedule]) -> int:
        clock = self.pipeline.wait_for_clock(
            int((time.time() - self.args.grace) * US_PER_SECOND), timeout=300
        )
        cutoff = clock - 60 * US_PER_SECOND
        lines = self.replay_input()
        expected = comparable(self.replay(lines, clock), cutoff)
        live_outputs = self.pipeline.outputs()
        live = comparable(live_outputs, cutoff)
        missing = sum((expected - live).values())
        duplicated = sum((live - expected).values())
        breaches = {o["event_id"] for o in live_outputs if o["type"] == "sla.breach"}

        def delivered() -> set[str]:
            return {
                r.headers["Idempotency-Key"].removesuffix(":hook") for r in self.hook.accepted()
            }

        with contextlib.suppress(TimeoutError):
            wait_for(lambda: breaches <= delivered(), 180, "every breach delivered")
        undelivered = len(breaches - delivered())
        kinds: dict[str, int] = {}
        for o in live_outputs:
            kinds[str(o["type"])] = kinds.get(str(o["type"]), 0) + 1
        for worker in self.workers.values():
            worker.stop()
        self.notify.stop()
        self.hook.close()
        self.write_samples()
        half = self.samples[len(self.samples) // 2 :]
        print("\n== soak results")
        print(f"minutes {self.args.minutes}, lines published {len(lines)}, outputs {kinds}")
        print(
            f"policy versions published: {[orjson.loads(v)['version'] for _, v in self.version_lines]}"
        )
        groups = sum(1 for o in live_outputs if o.get("group"))
        print(f"outputs of group clocks: {groups}")
        print("faults: " + ", ".join(f"{s.name} {s.done}" for s in schedules))
        print(f"outputs vs replay: missing {missing}, duplicated {duplicated}")
        if missing or duplicated:
            print(difference(live, expected))
        print(f"breaches delivered: {len(breaches) - undelivered} of {len(breaches)}")
        abandoned = self.samples[-1].get("abandoned", 0) if self.samples else 0
        print(f"abandoned transactional calls (workers alive at the end): {abandoned}")
        for name in ("w1", "w2", "notify"):
            key = f"rss_kib_{name}"
            points = [(float(str(s["seconds"])), float(str(s[key]))) for s in half if s.get(key)]
            if points:
                print(
                    f"rss {name}: last {points[-1][1] / 1024:.0f} MiB, slope over the last half "
                    f"{slope_per_hour(points) / 1024:+.1f} MiB/h"
                )
        lags = [int(str(s["lag"])) for s in self.samples if s.get("lag") not in ("", None)]
        if lags:
            print(f"input lag: max {max(lags)}, last {lags[-1]}")
        late = [float(str(s["late"])) for s in self.samples if s.get("late") not in ("", None)]
        if late:
            print(f"late events (workers alive at a sample, most seen): {max(late):.0f}")
        print(f"samples and chart in {self.args.out}")
        return 0 if missing == duplicated == undelivered == 0 else 1

    def write_samples(self) -> None:
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        columns = sorted({k for s in self.samples for k in s}, key=lambda k: (k != "seconds", k))
        with (out / "soak-samples.csv").open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, columns)
            writer.writeheader()
            writer.writerows(self.samples)
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        figure, (rss_axis, lag_axis) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        minutes = [float(str(s["seconds"])) / 60 for s in self.samples]
        for name in ("w1", "w2", "notify"):
            values = [
                float(str(s[f"rss_kib_{name}"])) / 1024 if s.get(f"rss_kib_{name}") else None
                for s in self.samples
            ]
            rss_axis.plot(minutes, values, label=name)
        rss_axis.set_ylabel("RSS (MiB)")
        rss_axis.legend()
        lag_axis.plot(
            minutes, [s["lag"] if s.get("lag") != "" else None for s in self.samples], color="k"
        )
        lag_axis.set_ylabel("input lag (records)")
        lag_axis.set_xlabel("minutes")
        figure.tight_layout()
        figure.savefig(out / "soak.svg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--bootstrap", help="an existing broker (no broker restarts then)")
    parser.add_argument("--kill-worker-every", type=float, default=10.0, help="minutes; 0: never")
    parser.add_argument("--kill-notifier-every", type=float, default=15.0, help="minutes")
    parser.add_argument("--restart-broker-every", type=float, default=30.0, help="minutes")
    parser.add_argument("--sample-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--tickets-per-minute", type=float, default=60.0)
    parser.add_argument("--mean-gap", type=float, default=20.0, help="seconds between events")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--grace", type=float, default=30.0, help="the workers' SLACLOCK_GRACE, seconds"
    )
    parser.add_argument(
        "--closed-retention",
        type=float,
        default=7 * 86400.0,
        help="the workers' SLACLOCK_CLOSED_RETENTION, seconds: the state grows with the closed "
        "tickets kept until this has passed, so RSS can be flat only in a run longer than it",
    )
    parser.add_argument(
        "--close-every-ticket",
        action="store_true",
        help="every generated ticket is solved and closed at the end of its life (by default "
        "about a third stay open for good): with --closed-retention, the stored state is bounded",
    )
    parser.add_argument(
        "--no-heap-trim-on",
        nargs="*",
        default=[],
        choices=("w1", "w2", "notify"),
        help="processes run with SLACLOCK_HEAP_TRIM_INTERVAL=0 (to compare with the others)",
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="slaclock-soak-"))
    broker = None
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap is None:
        broker = LocalKafka.on_free_ports(workdir / "kafka", die_with_parent=True)
        bootstrap = broker.up(timeout=180)
    soak = Soak(args, workdir, bootstrap, broker)
    try:
        return soak.run()
    finally:
        for worker in soak.workers.values():
            worker.kill()
        soak.notify.close()
        if broker is not None:
            broker.down()


if __name__ == "__main__":
    sys.exit(main())
