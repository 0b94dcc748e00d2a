"""Service availability: services stage throughput and the cost of a busy service month.

    .venv/bin/python benchmarks/availability_bench.py

Two measurements on one core, through the same objects replay and the Kafka worker use
(decode with pydantic + `ServiceStage.on_event`, then the period-end timers):

1. **events/s**: a seeded stream of status changes and maintenance announcements for many
   services (24x7 and business-hours calendars) over three months, all in memory;
2. **one service, one month, 10,000 status changes** (plus 50 maintenance windows): the
   time to apply them and report the month, and the state record's size at the end.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slaclock.processors.engine.availability import compile_services  # noqa: E402
from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant  # noqa: E402
from slaclock.processors.engine.services_stage import ServiceStage  # noqa: E402
from slaclock.processors.engine.ticket import Rejected  # noqa: E402
from slaclock.processors.services_intake import decode_service_event  # noqa: E402
from slaclock.schemas.policy import parse_policy  # noqa: E402

STATUSES = [
    "operational",
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
]


def policy_yaml(services: int) -> str:
    lines = [
        "default_tier: t",
        "calendars:",
        "  always: {timezone: UTC, hours: 24x7}",
        "  office:",
        "    timezone: Europe/Berlin",
        '    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"],'
        ' thu: ["09:00-17:00"], fri: ["09:00-17:00"]}',
        "tiers:",
        "  t: {calendar: always, targets: {first_response: {high: 1h}}}",
        "services:",
    ]
    for i in range(services):
        calendar = "office" if i % 4 == 0 else "always"
        lines += [
            f"  s{i}:",
            "    timezone: Europe/Berlin",
            f"    calendar: {calendar}",
            '    target: "99.5"',
            '    down_on: {partial_outage: "0.3", degraded_performance: "0.1"}',
            "    warnings: [0.5, 0.75, 0.9]",
            '    credits: [{below: "99.5", percent: 10}, {below: "99", percent: 25}]',
        ]
    return "\n".join(lines) + "\n"


def stream(services: int, events: int, start: int, span: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    instants = sorted(rng.randrange(start, start + span) for _ in range(events))
    lines = []
    for n, at in enumerate(instants):
        service = f"s{rng.randrange(services)}"
        event: dict[str, Any] = {
            "event_id": f"e{n}",
            "service_id": service,
            "occurred_at": format_us(at),
        }
        if rng.random() < 0.03:
            begins = at + rng.randrange(3600, 5 * 86_400) * US_PER_SECOND
            event.update(
                type="maintenance.scheduled",
                maintenance_id=f"m{rng.randrange(20)}",
                starts_at=format_us(begins),
                ends_at=format_us(begins + rng.randrange(600, 4 * 3600) * US_PER_SECOND),
            )
        else:
            event.update(type="service.status_changed", status=rng.choice(STATUSES))
        lines.append(orjson.dumps(event))
    return lines


def run(yaml_text: str, lines: list[bytes], until: int) -> tuple[float, int, ServiceStage]:
    stage = ServiceStage(compile_services(parse_policy(yaml_text, "bench.yaml")), {}, 0)
    outputs = 0
    began = time.perf_counter()
    for line in lines:
        try:
            event = decode_service_event(line)
            outputs += len(stage.on_event(event, parse_instant(event.occurred_at.isoformat())))
        except Rejected:
            pass
    outputs += len(stage.advance_to(until))
    return time.perf_counter() - began, outputs, stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--month-changes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    start = parse_instant("2026-01-01T00:00:00Z")
    span = 90 * 86_400 * US_PER_SECOND
    until = parse_instant("2026-04-01T00:00:00Z")
    print(f"python {platform.python_version()} on {platform.machine()}")

    lines = stream(args.services, args.events, start, span, args.seed)
    seconds, outputs, _ = run(policy_yaml(args.services), lines, until)
    print(
        f"stream: {args.events:,} events, {args.services} services, 3 months: "
        f"{seconds:.2f} s = {args.events / seconds:,.0f} events/s, {outputs:,} outputs"
    )

    month_start = parse_instant("2026-03-01T00:00:00Z")
    month = 31 * 86_400 * US_PER_SECOND
    for calendar, label in (("always", "24x7"), ("office", "office hours")):
        yaml_text = policy_yaml(1).replace("calendar: office", f"calendar: {calendar}")
        one = stream(1, args.month_changes, month_start, month - US_PER_SECOND, args.seed)
        seconds, outputs, stage = run(yaml_text, one, month_start + month)
        state = stage.store["s0"]
        size = len(orjson.dumps(state.to_record()))
        print(
            f"one service, one month ({label}), {args.month_changes:,} changes: "
            f"{seconds * 1000:.0f} ms ({seconds / args.month_changes * 1e6:.1f} µs per event), "
            f"{outputs} outputs, state record {size:,} bytes"
        )


if __name__ == "__main__":
    main()
