"""The terms in force during a period's last instant (E - 1 us) decide its statement.

docs/semantics.md: Statements and earn-back (contract changes "from the 1st"). A change
effective exactly at a month's end E (the next month's first instant) governs the new month
only: the closing month keeps its fee, cap, tier and earn-back terms, and a withdrawal at E
leaves it its statement. Policy: examples/policy.yaml (acme: enterprise, 12000.00 EUR,
Europe/Berlin, first response 1% = 120.00, cap 20% = 2400.00, earn-back after 2 months at
0.95; premium has no earn-back). Berlin is UTC+1 in winter: November ends at
2026-11-30T23:00:00Z = 2026-12-01T00:00:00+01:00.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.core.builders import Harness, created, make_policy, status

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = (ROOT / "examples" / "policy.yaml").read_text()
SERVICES_POLICY = (ROOT / "examples" / "services-policy.yaml").read_text()

NOV_END = "2026-11-30T23:00:00Z"
FROM_DECEMBER_1ST = "2026-12-01T00:00:00+01:00"  # = NOV_END
DEC_END = "2026-12-31T23:00:00Z"
PUBLISHED_NOV_20 = "2026-11-20T10:00:00Z"
ACME = {"tier": "enterprise", "monthly_fee": "12000.00", "currency": "EUR",
        "timezone": "Europe/Berlin"}  # fmt: skip


def contract_changed(at: str, customer: str, contract: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "contract.changed", "customer_id": customer, "occurred_at": at,
            "contract": contract}  # fmt: skip


def statements(h: Harness, customer: str = "acme") -> dict[str, dict[str, Any]]:
    return {s["period"]: s for s in h.of("sla.statement") if s["customer_id"] == customer}


def november_with_one_credit() -> Harness:
    """acme's November: one high ticket unanswered for its hour: 120.00 EUR."""
    h = Harness(make_policy(EXAMPLE_POLICY))
    h.feed(created("2026-11-10T09:00:00Z", ticket="N1"))  # first response due 10:00Z
    h.feed(status("2026-11-10T11:00:00Z", "solved", ticket="N1"))
    return h


def test_a_fee_change_from_the_1st_leaves_the_previous_months_statement_its_own_terms() -> None:
    h = november_with_one_credit()
    cheaper = {**ACME, "monthly_fee": "6000.00", "effective_at": FROM_DECEMBER_1ST}
    h.feed(contract_changed(PUBLISHED_NOV_20, "acme", cheaper))
    h.until(DEC_END)
    november, december = statements(h)["2026-11"], statements(h)["2026-12"]
    assert (november["at"], november["monthly_fee"], november["credit_cap"]) == (
        NOV_END,
        "12000.00",
        "2400.00",
    )
    assert november["credits_total"] == "120.00"
    assert (december["monthly_fee"], december["credit_cap"]) == ("6000.00", "1200.00")


def test_a_tier_change_from_the_1st_keeps_the_previous_months_earn_back_verdict() -> None:
    h = november_with_one_credit()
    h.feed(created("2026-11-11T09:00:00Z", ticket="N2"))  # solved in time: one met
    h.feed(status("2026-11-11T09:30:00Z", "solved", ticket="N2"))
    premium = {**ACME, "tier": "premium", "effective_at": FROM_DECEMBER_1ST}
    h.feed(contract_changed(PUBLISHED_NOV_20, "acme", premium))
    h.until(DEC_END)
    november, december = statements(h)["2026-11"], statements(h)["2026-12"]
    # November ran under enterprise (earn-back at 0.95): 2 met, 1 breached is not compliant
    assert (november["tier"], november["compliant"]) == ("enterprise", False)
    assert (december["tier"], december["compliant"]) == ("premium", None)


def test_a_contract_withdrawn_from_the_1st_still_gets_its_last_months_statement() -> None:
    h = november_with_one_credit()
    h.feed(contract_changed(NOV_END, "acme", None))  # a withdrawal takes effect when published
    h.until(DEC_END)
    assert sorted(statements(h)) == ["2026-11"]
    assert statements(h)["2026-11"]["credits_total"] == "120.00"


def test_a_withdrawal_one_microsecond_before_the_month_end_leaves_the_month_without_one() -> None:
    h = november_with_one_credit()
    h.feed(contract_changed("2026-11-30T22:59:59.999999Z", "acme", None))
    h.until(DEC_END)
    assert statements(h) == {}


def test_an_earn_back_is_judged_with_the_terms_of_its_last_month() -> None:
    h = Harness(make_policy(EXAMPLE_POLICY))
    h.feed(created("2026-10-10T09:00:00Z", ticket="O1"))  # October: 120.00 credited
    h.feed(status("2026-10-10T11:00:00Z", "solved", ticket="O1"))
    # enterprise earns back after November and December; from January acme is premium
    premium = {**ACME, "tier": "premium", "effective_at": "2027-01-01T00:00:00+01:00"}
    h.feed(contract_changed("2026-12-20T10:00:00Z", "acme", premium))
    h.until(DEC_END)
    earned = h.one("sla.credit_earned_back")
    assert (earned["period"], earned["earned_through"], earned["amount"]) == (
        "2026-10",
        "2026-12",
        "120.00",
    )


# -- availability credits: the contract of the service period's last instant ----------------

OUTAGE = [
    {"event_id": "o1", "type": "service.status_changed", "service_id": "portal",
     "occurred_at": "2026-11-10T00:00:00Z", "status": "major_outage"},
    {"event_id": "o2", "type": "service.status_changed", "service_id": "portal",
     "occurred_at": "2026-11-11T00:00:00Z", "status": "operational"},
]  # fmt: skip
ACME_SERVICES = {**ACME, "services": ["portal", "back-office"]}


def test_an_availability_credit_uses_the_contract_of_the_months_last_instant() -> None:
    h = Harness(make_policy(SERVICES_POLICY))
    cheaper = {**ACME_SERVICES, "monthly_fee": "6000.00", "effective_at": FROM_DECEMBER_1ST}
    h.feed(contract_changed(PUBLISHED_NOV_20, "acme", cheaper))
    h.feed(*OUTAGE)  # a day down: below 95 %, 100 % of the fee, cut to the cap (20 %)
    h.until("2026-12-02T00:00:00Z")
    portal = [c for c in h.of("credit") if c["customer_id"] == "acme"]
    assert [(c["period"], c["amount"], c["capped"]) for c in portal] == [
        ("2026-11", "2400.00", True)
    ]
    assert statements(h)["2026-11"]["availability_credits_total"] == "2400.00"


def test_a_contract_withdrawn_from_the_1st_still_earns_its_last_months_availability_credit() -> (
    None
):
    h = Harness(make_policy(SERVICES_POLICY))
    h.feed(*OUTAGE)
    h.feed(contract_changed(NOV_END, "acme", None))
    h.until("2026-12-02T00:00:00Z")
    assert [c["amount"] for c in h.of("credit") if c["customer_id"] == "acme"] == ["2400.00"]
