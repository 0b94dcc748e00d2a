"""Availability credits in the ledger: banded, under the contract's cap with ticket credits,
in the statement's `availability_credits_total`, never earned back.

The service half is the shipped example (examples/services-policy.yaml and
examples/services-events.jsonl): in November (Berlin) `portal` ends at 10% and
`back-office` at 5% of acme's 12000.00 EUR fee (1200.00 and 600.00); acme's cap is 20%
(2400.00). The tests add acme tickets that breach in November.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from slaclock.processors.engine.policy import compile_policy
from slaclock.schemas.policy import load_policy
from tests.core.builders import Harness, created

ROOT = Path(__file__).resolve().parents[2]
NOV_END = "2026-11-30T23:00:00Z"
EARN_BACK = "monthly_cap: 20\n      earn_back: {months: 2, min_compliance: 0.95}"


def harness(tmp_path: Path, earn_back: bool = False) -> Harness:
    text = (ROOT / "examples" / "services-policy.yaml").read_text()
    if earn_back:
        text = text.replace("monthly_cap: 20", EARN_BACK)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return Harness(compile_policy(load_policy(path)))


def service_events() -> list[bytes]:
    lines = (ROOT / "examples" / "services-events.jsonl").read_bytes().splitlines()
    return [line for line in lines if line.strip()]


def merged(tickets: list[dict[str, Any]]) -> list[bytes]:
    """Service and ticket lines in time order, as one replay file would have them."""
    lines = [*service_events(), *(orjson.dumps(t) for t in tickets)]
    return sorted(lines, key=lambda line: orjson.loads(line)["occurred_at"])


def unanswered(n: int) -> list[dict[str, Any]]:
    """Urgent tickets never answered: first response (120.00) and resolution (300.00)."""
    return [created(f"2026-11-1{n}T08:00:00Z", ticket=f"A{i}", priority="urgent") for i in range(n)]


def credits(h: Harness, customer: str = "acme") -> list[tuple[Any, ...]]:
    return [
        (c["metric"], c["service_id"], c["amount"], c["capped"], c["period"])
        for c in h.of("credit")
        if c["customer_id"] == customer
    ]


def test_band_credits_are_decided_at_the_period_end_in_service_order(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.feed(*service_events()).until(NOV_END)
    assert credits(h) == [
        ("availability", "back-office", "600.00", False, "2026-11"),
        ("availability", "portal", "1200.00", False, "2026-11"),
    ]
    credit = h.of("credit")[0]
    report = next(
        o
        for o in h.outputs
        if o["type"] == "sla.availability_report" and o["service_id"] == "back-office"
    )
    assert credit["ticket_id"] is None and credit["breach_event_id"] == report["event_id"]
    assert credit["at"] == credit["decided_at"] == NOV_END
    globex = credits(h, "globex")
    assert globex == [("availability", "portal", "450.00", False, "2026-11")]


def test_availability_credits_share_the_cap_after_the_ticket_credits(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.feed(*merged(unanswered(3))).until(NOV_END)
    tickets = [c for c in credits(h) if c[1] is None]
    assert sum(float(c[2]) for c in tickets) == 3 * 420.00  # 1260.00 of the 2400.00 cap
    assert credits(h)[-2:] == [
        ("availability", "back-office", "600.00", False, "2026-11"),
        ("availability", "portal", "540.00", True, "2026-11"),  # cut to the remainder
    ]
    statement = next(s for s in h.of("sla.statement") if s["customer_id"] == "acme")
    assert (statement["credits_total"], statement["availability_credits_total"]) == (
        "2400.00",
        "1140.00",
    )
    assert statement["credits"] == 8  # 6 ticket credits, 2 availability credits
    order = [o["type"] for o in h.outputs if o.get("customer_id") == "acme"][-3:]
    assert order == ["sla.credit", "sla.credit", "sla.statement"]


def test_availability_credits_are_never_earned_back(tmp_path: Path) -> None:
    h = harness(tmp_path, earn_back=True)
    h.feed(*merged(unanswered(3))).until("2027-01-31T23:00:00Z")
    earned = [e for e in h.of("sla.credit_earned_back") if e["customer_id"] == "acme"]
    assert [(e["period"], e["amount"]) for e in earned] == [("2026-11", "1260.00")]
