"""What a policy version costs at its P with many open tickets (docs/semantics.md: Policy changes).

One partition's stage holds N open tickets (created over the two days before P: half of
them answered, a fifth waiting on the customer, the rest untouched). Every timer due before
P fires first (not measured); then the clock moves to P, which applies the version to every
open ticket, and that step alone is timed. Three versions:

- `targets`: resolution targets shortened (the calendar is kept: no clock is split), so
  tickets whose new deadline is already past breach at P;
- `calendar`: a holiday added to the calendar every ticket runs under (each running or
  paused clock freezes its segments under the old calendar);
- `same`: a document identical to the one in force (nothing changes but the version id).

For each: wall time of the step at P, tickets recomputed, outputs (breaches decided at P,
warnings skipped are not outputs), and the changelog bytes the step writes (every open
ticket's record, as a live batch would commit them), with the memory store; `--rocks DIR`
also runs it on the RocksDB store the worker uses.

    .venv/bin/python benchmarks/policy_change_bench.py [--tickets 100000] [--rocks /tmp/pcb]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections import Counter
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import format_us, parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import TicketEngine, TicketState
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.intake import decode_event
from slaclock.processors.policy_versions import take_policy_change
from slaclock.schemas.policy import parse_policy
from slaclock.schemas.policy_versions import PolicyPublication

POLICY = """
version: "1"
default_tier: gold
calendars:
  office:
    timezone: Europe/Berlin
    hours: {mon: ["08:00-18:00"], tue: ["08:00-18:00"], wed: ["08:00-18:00"],
            thu: ["08:00-18:00"], fri: ["08:00-18:00"]}
    holidays: ["2026-12-24"]
tiers:
  gold:
    calendar: office
    targets:
      first_response: {urgent: 1h, high: 2h, normal: 8h, low: 16h}
      next_response: {urgent: 1h, high: 4h, normal: 8h}
      periodic_update: {urgent: 2h, high: 8h}
      resolution: {urgent: 8h, high: 2d, normal: 5d, low: 10d}
    pause_on: [pending, on_hold]
    warnings: [0.5, 0.75, 0.9]
    credits:
      per_breach: {first_response: 1.0, resolution: 2.5}
      monthly_cap: 20
customers:
  acme: {tier: gold, monthly_fee: "1000.00", currency: EUR, timezone: Europe/Berlin}
"""
PRIORITIES = ("urgent", "high", "normal", "low")
P = parse_instant("2026-11-18T12:00:00Z")  # a Wednesday
START = parse_instant("2026-11-16T08:00:00Z")  # two days before


def versions_doc(kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(POLICY)
    doc = copy.deepcopy(doc)
    if kind == "targets":
        doc["tiers"]["gold"]["targets"]["resolution"] = {
            "urgent": "4h", "high": "1d", "normal": "2d", "low": "5d"
        }  # fmt: skip
    elif kind == "calendar":
        doc["calendars"]["office"]["holidays"] = ["2026-11-19", "2026-12-24"]
    doc["version"] = "2"
    return doc


def events(tickets: int) -> list[bytes]:
    step = (P - 3_600_000_000 - START) // tickets  # all before P - 1 h
    lines: list[bytes] = []
    for n in range(tickets):
        at = START + n * step
        ticket = f"T{n:07d}"
        lines.append(
            orjson.dumps(
                {
                    "event_id": f"c{n}",
                    "type": "ticket.created",
                    "ticket_id": ticket,
                    "customer_id": "acme",
                    "priority": PRIORITIES[n % 4],
                    "occurred_at": format_us(at),
                }
            )
        )
        if n % 2 == 0:
            lines.append(
                orjson.dumps(
                    {
                        "event_id": f"r{n}",
                        "type": "ticket.agent_replied",
                        "ticket_id": ticket,
                        "occurred_at": format_us(at + 60_000_000),
                    }
                )
            )
        if n % 5 == 0:
            lines.append(
                orjson.dumps(
                    {
                        "event_id": f"s{n}",
                        "type": "ticket.status_changed",
                        "ticket_id": ticket,
                        "status": "pending",
                        "occurred_at": format_us(at + 120_000_000),
                    }
                )
            )
    lines.sort(key=lambda raw: orjson.loads(raw)["occurred_at"])
    return lines


def run(kind: str, lines: list[bytes], store: MutableMapping[str, TicketState]) -> dict[str, Any]:
    policy = compile_policy(parse_policy(POLICY, "bench.yaml"))
    versions = PolicyBook(policy)
    contracts = ContractBook.from_policy(policy, versions)
    stage = TicketStage(TicketEngine(policy, contracts, versions), store)
    for raw in lines:
        event = decode_event(raw)
        stage.on_event(event, parse_instant(event.occurred_at.isoformat()))
    stage.advance_to(P - 1)  # every timer before P fires first: not measured
    doc = versions_doc(kind)
    if kind == "same":
        doc = yaml.safe_load(POLICY)
        doc["version"] = "2"
    publication = PolicyPublication(version="2", policy=doc)
    take_policy_change(versions, contracts, publication, P - 3_600_000_000, "bench")
    open_tickets = sum(1 for state in store.values() if state.closed_at is None)
    began = time.perf_counter()
    outputs = stage.advance_to(P)
    elapsed = time.perf_counter() - began
    changelog = sum(len(orjson.dumps(state.to_record())) for state in store.values())
    return {
        "version": kind,
        "open tickets": open_tickets,
        "recomputed": stage.counters.recomputed_at_last_version,
        "seconds": round(elapsed, 2),
        "tickets/s": round(open_tickets / elapsed) if elapsed else None,
        "outputs": dict(Counter(o["type"] for o in outputs)),
        "breaches decided at P": stage.counters.breaches_at_last_version,
        "changelog MB": round(changelog / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rocks", type=Path, default=None, help="also run on RocksDB here")
    args = parser.parse_args()
    lines = events(args.tickets)
    print(f"{args.tickets} tickets, {len(lines)} events before P ({format_us(P)})")
    for kind in ("targets", "calendar", "same"):
        print("memory", run(kind, lines, {}))
    if args.rocks is not None:
        from slaclock.processors.live.store import RocksTicketStore

        for kind in ("targets", "calendar"):
            with tempfile.TemporaryDirectory(dir=args.rocks) as directory:
                store = RocksTicketStore.fresh(Path(directory) / "db")
                try:
                    print("rocksdb", run(kind, lines, store))
                finally:
                    store.close()


if __name__ == "__main__":
    main()
