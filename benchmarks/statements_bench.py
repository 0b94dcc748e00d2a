"""Monthly accounting cost: replay of a 3-month workload, month-end closing, ledger size.

Measures, on this machine:
1. replay of a generated workload over three months (every customer with a contract with
   earn-back): events/s, and how many statements and earn-backs it produced;
2. the ledger closing one month for many customers (the period-end work alone):
   statements per second;
3. the ledger state per customer after three months: the changelog record's size.

    .venv/bin/python benchmarks/statements_bench.py [--tickets 30000] [--customers 200]
        [--closing-customers 10000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import orjson

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.ledger import LedgerStage
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.replay import replay
from slaclock.schemas.policy import parse_policy
from slaclock.workload import WorkloadShape, ticket_events

POLICY = """
default_tier: gold
calendars:
  always: {timezone: UTC, hours: 24x7}
tiers:
  gold:
    calendar: always
    targets:
      first_response: {urgent: 15m, high: 1h, normal: 4h, low: 8h}
      next_response: {urgent: 30m, high: 2h, normal: 8h}
      periodic_update: {urgent: 1h}
      resolution: {urgent: 4h, high: 1d, normal: 3d, low: 5d}
    pause_on: [pending, on_hold]
    warnings: [0.75]
    credits:
      per_breach: {first_response: 1.0, resolution: 2.5}
      monthly_cap: 20
      earn_back: {months: 2, min_compliance: 0.9}
customers:
"""


def policy_text(customers: list[str]) -> str:
    lines = [
        f'  {c}: {{tier: gold, monthly_fee: "1000.00", currency: EUR, timezone: Europe/Berlin}}'
        for c in customers
    ]
    return POLICY + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=30_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--closing-customers", type=int, default=10_000)
    args = parser.parse_args()

    customers = [f"c{n:05d}" for n in range(args.customers)]
    policy = compile_policy(parse_policy(policy_text(customers), "bench.yaml"))
    start = datetime(2026, 10, 1, tzinfo=UTC)
    shape = WorkloadShape(
        tickets=args.tickets,
        spread_seconds=91 * 86_400,
        mean_gap_seconds=3 * 3600.0,
        customers=customers,
        seed=3,
    )
    lines = [orjson.dumps(e) for e in ticket_events(shape, start=start)]
    outputs: list[dict[str, object]] = []
    began = time.perf_counter()
    summary = replay(
        policy, lines, outputs.append, lambda r: None, parse_instant("2026-12-31T23:00:00Z")
    )
    elapsed = time.perf_counter() - began
    kinds: dict[str, int] = {}
    for output in outputs:
        kinds[str(output["type"])] = kinds.get(str(output["type"]), 0) + 1
    print(
        f"replay, 3 months: {len(lines)} events, {len(customers)} customers, "
        f"{elapsed:.2f} s, {len(lines) / elapsed:,.0f} events/s; statements "
        f"{kinds.get('sla.statement', 0)}, earned back {kinds.get('sla.credit_earned_back', 0)}, "
        f"credits {kinds.get('sla.credit', 0)} ({summary.describe()})"
    )

    # ledger state per customer after three months (what the changelog holds)
    import slaclock.processors.replay as replay_module

    outputs.clear()
    replayer = replay_module.Replayer(policy, outputs.append)
    for line in lines:
        replayer.on_line(line)
    replayer.finish(parse_instant("2026-12-31T23:00:00Z"))
    sizes = [len(orjson.dumps(a.to_record())) for a in replayer.ledger.accounts.values()]
    print(
        f"ledger record per customer after 3 months: mean {statistics.mean(sizes):.0f} B, "
        f"max {max(sizes)} B (periods kept: the open one and the earn-back window)"
    )

    # closing one month for many customers: the period-end work alone
    many = [f"k{n:06d}" for n in range(args.closing_customers)]
    big = compile_policy(parse_policy(policy_text(many), "bench.yaml"))
    ledger = LedgerStage(big, ContractBook.from_policy(big), ["s"])
    ledger.on_watermark(
        "s", parse_instant("2026-11-15T00:00:00Z"), parse_instant("2026-11-01T00:00:00Z")
    )
    ledger.release()
    began = time.perf_counter()
    ledger.on_watermark("s", parse_instant("2026-12-01T00:00:00Z"), None)
    closed = ledger.release()
    elapsed = time.perf_counter() - began
    statements = sum(1 for o in closed if o["type"] == "sla.statement")
    print(
        f"closing November for {len(many)} customers: {statements} statements in "
        f"{elapsed:.3f} s, {statements / elapsed:,.0f} statements/s"
    )


if __name__ == "__main__":
    main()
