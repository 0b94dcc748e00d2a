"""Credit ledger behaviour (docs/semantics.md: Credits).

acme: enterprise, fee 1000.00 EUR, Europe/Berlin; first_response 1% (10.00),
resolution 2.5% (25.00), monthly cap 5% (50.00).
"""

from __future__ import annotations

from typing import Any

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.ledger import LedgerStage
from tests.core.builders import POLICY_YAML, Harness, breach_record, created, make_policy

T0 = "2026-03-02T09:00:00Z"
AFTER_BOTH = "2026-03-02T17:00:01Z"  # after first_response (10:00) and resolution (17:00)


END = parse_instant("2026-03-31T00:00:00Z")  # before March's end: no statements in the way


def acme_ledger() -> LedgerStage:
    """An empty ledger stage under the test policy (acme's contract), one source."""
    policy = make_policy()
    return LedgerStage(policy, ContractBook.from_policy(policy), ["s"])


def release(ledger: LedgerStage, watermark: str | int | None) -> list[dict[str, Any]]:
    """Credits released at `watermark` (None: everything, as replay's last advance)."""
    if watermark is None:
        return ledger.release(through=END, final=True)
    instant = parse_instant(watermark) if isinstance(watermark, str) else watermark
    return ledger.release(through=instant)


def _breach_two_metrics(h: Harness, *tickets: str) -> None:
    h.feed(*(created(T0, ticket=t) for t in tickets)).until(AFTER_BOTH)


def test_breach_of_credited_metric_earns_percent_of_monthly_fee() -> None:
    h = Harness()
    _breach_two_metrics(h, "T1")
    credits = h.of("credit")
    assert [(c["metric"], c["amount"], c["percent"], c["capped"]) for c in credits] == [
        ("first_response", "10.00", "1.0", False),
        ("resolution", "25.00", "2.5", False),
    ]
    first = credits[0]
    assert first["currency"] == "EUR" and first["period"] == "2026-03"
    assert first["breach_event_id"] == h.one("breach", "first_response")["event_id"]
    assert credits[1]["period_total"] == "35.00"


def test_breach_of_metric_without_credit_terms_earns_nothing() -> None:
    h = Harness().feed(
        created(T0),
    )
    h.feed(
        {
            "event_id": "a",
            "type": "ticket.agent_replied",
            "ticket_id": "T1",
            "occurred_at": "2026-03-02T09:05:00Z",
        }
    )
    h.until("2026-03-02T13:06:00Z")  # periodic_update (4h) breached: no per_breach entry
    assert h.one("breach", "periodic_update")
    assert h.of("credit") == []


def test_credit_reaching_cap_is_cut_to_remainder() -> None:
    h = Harness()
    _breach_two_metrics(h, "T1", "T2")  # 10 + 10 at 10:00, then 25 + 25 at 17:00
    amounts = [(c["ticket_id"], c["metric"], c["amount"], c["capped"]) for c in h.of("credit")]
    assert amounts == [
        ("T1", "first_response", "10.00", False),
        ("T2", "first_response", "10.00", False),
        ("T1", "resolution", "25.00", False),
        ("T2", "resolution", "5.00", True),
    ]
    assert h.of("credit")[-1]["period_total"] == "50.00"


def test_credits_after_the_cap_are_zero_and_capped() -> None:
    h = Harness()
    _breach_two_metrics(h, "T1", "T2", "T3")
    last = h.of("credit")[-1]
    assert (last["ticket_id"], last["amount"], last["capped"], last["period_total"]) == (
        "T3",
        "0.00",
        True,
        "50.00",
    )


def test_credit_exactly_reaching_cap_is_not_capped() -> None:
    yaml_text = POLICY_YAML.replace("monthly_cap: 5", "monthly_cap: 4.5")  # 45.00
    h = Harness(make_policy(yaml_text))
    _breach_two_metrics(h, "T1")
    h.feed(created("2026-03-02T18:00:00Z", ticket="T2")).until("2026-03-02T19:00:01Z")
    third = h.of("credit")[2]
    assert (third["amount"], third["capped"], third["period_total"]) == ("10.00", False, "45.00")


def test_amount_is_rounded_half_up_to_cents() -> None:
    yaml_text = POLICY_YAML.replace('monthly_fee: "1000.00"', 'monthly_fee: "1000.50"')
    h = Harness(make_policy(yaml_text))
    h.feed(created(T0)).until("2026-03-02T10:00:00Z")
    assert h.one("credit")["amount"] == "10.01"  # 10.005 half-up (banker's would give 10.00)


def test_billing_period_uses_contract_time_zone() -> None:
    # 2026-03-31T22:30Z is already 1 April 00:30 in Berlin (CEST).
    h = Harness().feed(created("2026-03-31T21:30:00Z")).until("2026-03-31T22:30:00Z")
    credit = h.one("credit")
    assert credit["at"] == "2026-03-31T22:30:00Z"
    assert credit["period"] == "2026-04"


def test_cap_applies_per_billing_period() -> None:
    h = Harness()
    _breach_two_metrics(h, "T1", "T2")
    h.feed(created("2026-04-06T09:00:00Z", ticket="T9")).until("2026-04-06T10:00:00Z")
    april = [c for c in h.of("credit") if c["period"] == "2026-04"]
    assert [(c["amount"], c["period_total"]) for c in april] == [("10.00", "10.00")]


def test_customer_without_contract_gets_no_credit() -> None:
    h = Harness().feed(created(T0, customer="nobody", tier="enterprise")).until(AFTER_BOTH)
    assert h.of("breach") != []
    assert h.of("credit") == []


def test_credits_are_allocated_in_key_order_not_arrival_order() -> None:
    breaches = [
        breach_record("T2", "resolution", "2026-03-02T17:00:00Z"),
        breach_record("T1", "resolution", "2026-03-02T17:00:00Z"),
        breach_record("T3", "first_response", "2026-03-02T10:00:00Z"),
        breach_record("T1", "first_response", "2026-03-02T17:00:00Z"),
    ]
    results = []
    for order in (breaches, list(reversed(breaches))):
        ledger = acme_ledger()
        for b in order:
            ledger.on_outcome(b)
        credits = release(ledger, "2026-03-03T00:00:00Z")
        results.append([(c["ticket_id"], c["metric"], c["amount"]) for c in credits])
    assert (
        results[0]
        == results[1]
        == [
            ("T3", "first_response", "10.00"),
            ("T1", "first_response", "10.00"),
            ("T1", "resolution", "25.00"),
            ("T2", "resolution", "5.00"),
        ]
    )


def test_breach_is_held_until_the_watermark_passes_its_decision() -> None:
    ledger = acme_ledger()
    ledger.on_outcome(breach_record("T1", "first_response", "2026-03-02T10:00:00Z", "b1"))
    assert release(ledger, "2026-03-02T10:00:00Z") == []
    assert len(release(ledger, "2026-03-02T10:00:00.000001Z")) == 1


def test_breach_is_released_by_the_least_clock_of_all_sources() -> None:
    policy = make_policy()
    ledger = LedgerStage(policy, ContractBook.from_policy(policy), ["tickets/0", "tickets/1"])
    ledger.on_outcome(breach_record("T1", "first_response", "2026-03-02T10:00:00Z", "b1"))
    ledger.on_watermark("tickets/0", parse_instant("2026-03-02T12:00:00Z"), None)
    assert ledger.release() == []  # partition 1 has not reported a clock yet
    ledger.on_watermark("tickets/1", parse_instant("2026-03-02T10:00:00Z"), None)
    assert ledger.release() == []  # partition 1 lags exactly at the decision
    ledger.on_watermark("tickets/1", parse_instant("2026-03-02T10:00:01Z"), None)
    assert [c["ticket_id"] for c in ledger.release()] == ["T1"]


def test_a_breach_delivered_twice_is_credited_once() -> None:
    ledger = acme_ledger()
    b = breach_record("T1", "first_response", "2026-03-02T10:00:00Z", event_id="b1")
    ledger.on_outcome(b)
    assert len(release(ledger, None)) == 1
    ledger.on_outcome(b)
    assert release(ledger, None) == []
    restored = acme_ledger()
    restored.restore_account(ledger.accounts["acme"].to_record())
    restored.on_outcome(b)
    assert release(restored, None) == []


def test_a_breach_redelivered_after_a_watermark_release_is_credited_once() -> None:
    ledger = acme_ledger()
    b = breach_record("T1", "first_response", "2026-03-02T10:00:00Z", event_id="b1")
    ledger.on_outcome(b)
    assert len(release(ledger, "2026-03-02T11:00:00Z")) == 1
    ledger.on_outcome(b)
    assert ledger.accounts["acme"].held == {}
    assert release(ledger, "2026-03-02T12:00:00Z") == []


def test_a_breach_decided_at_the_released_watermark_is_still_credited() -> None:
    """Release takes breaches decided strictly before the watermark: one decided exactly
    at it may still arrive, and is new."""
    ledger = acme_ledger()
    watermark = "2026-03-02T11:00:00Z"
    ledger.on_outcome(breach_record("T1", "first_response", "2026-03-02T10:00:00Z"))
    release(ledger, watermark)
    ledger.on_outcome(breach_record("T2", "first_response", watermark))
    credits = release(ledger, "2026-03-02T11:00:00.000001Z")
    assert [c["ticket_id"] for c in credits] == ["T2"]


def test_ledger_state_does_not_grow_with_the_breaches_it_credited() -> None:
    ledger = acme_ledger()
    sizes = []
    for n in range(1, 201):
        decided = f"2026-03-02T10:{n // 60:02d}:{n % 60:02d}Z"
        ledger.on_outcome(breach_record(f"T{n}", "first_response", decided))
        release(ledger, parse_instant(decided) + 1)
        sizes.append(len(str(ledger.accounts["acme"].to_record())))
    # only the counters' digits grow (breached count, totals); no list of ids does
    assert max(sizes) - min(sizes) <= 8, sizes


# -- the contract decides: its cap, its term, its changes in time -----------------------

PREMIUM_TIER = """  premium:
    calendar: always
    targets:
      first_response: {high: 1h}
    credits:
      per_breach: {first_response: 30}
  business:"""


def test_a_ticket_of_another_tier_earns_its_tiers_percent_under_the_contracts_cap() -> None:
    h = Harness(make_policy(POLICY_YAML.replace("  business:", PREMIUM_TIER, 1)))
    h.feed(created(T0, ticket="T1", tier="premium")).until("2026-03-02T10:00:01Z")
    credit = h.one("credit")
    # premium has no cap of its own; 30% = 300.00 is cut to acme's enterprise cap 50.00
    assert (credit["tier"], credit["percent"], credit["amount"], credit["capped"]) == (
        "premium",
        "30",
        "50.00",
        True,
    )


def test_a_credit_carries_its_decision_instant_and_no_service() -> None:
    h = Harness().feed(created(T0)).until("2026-03-02T10:00:01Z")
    credit = h.one("credit")
    assert credit["decided_at"] == h.one("breach")["decided_at"] == "2026-03-02T10:00:00Z"
    assert credit["service_id"] is None


def contract_changed(at: str, customer: str, contract: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "contract.changed",
        "customer_id": customer,
        "occurred_at": at,
        "contract": contract,
    }


NEWCO = {"tier": "enterprise", "monthly_fee": "2000.00", "currency": "EUR"}


def test_a_contract_published_after_tickets_exist_affects_only_later_decisions() -> None:
    h = Harness()
    h.feed(created(T0, ticket="OLD", customer="newco"))  # no contract: the default tier
    h.feed(contract_changed("2026-03-02T09:30:00Z", "newco", NEWCO))
    h.feed(created("2026-03-02T09:40:00Z", ticket="NEW", customer="newco"))
    h.until("2026-03-02T20:00:00Z")
    tiers = {o["ticket_id"]: o["tier"] for o in h.of("warning") + h.of("breach")}
    assert tiers == {"OLD": "business", "NEW": "enterprise"}
    # NEW's first response (10:40) is credited at 1% of newco's fee; OLD's tier earns none
    assert [(c["ticket_id"], c["amount"]) for c in h.of("credit")][:1] == [("NEW", "20.00")]


def test_a_contract_takes_effect_at_its_effective_instant_never_before_publication() -> None:
    later = {**NEWCO, "effective_at": "2026-03-02T12:00:00Z"}
    earlier = {**NEWCO, "effective_at": "2026-03-01T00:00:00Z"}  # retroactive: refused as such
    h = Harness()
    h.feed(contract_changed("2026-03-02T08:00:00Z", "newco", later))
    h.feed(contract_changed("2026-03-02T08:00:00Z", "late-co", earlier))
    h.feed(created("2026-03-02T09:00:00Z", ticket="A", customer="newco"))  # before 12:00
    h.feed(created("2026-03-02T09:00:00Z", ticket="B", customer="late-co"))  # from 08:00
    h.feed(created("2026-03-02T12:00:00Z", ticket="C", customer="newco"))  # exactly at it
    h.until("2026-03-02T14:00:00Z")
    tiers = {o["ticket_id"]: o["tier"] for o in h.of("warning")}
    assert tiers == {"A": "business", "B": "enterprise", "C": "enterprise"}


def test_a_contract_changing_time_zone_is_refused() -> None:
    h = Harness()
    h.feed(contract_changed(T0, "acme", {**NEWCO, "timezone": "Asia/Tokyo"}))
    assert [r.error_class for r in h.rejections] == ["ContractTimezoneChange"]


def test_a_withdrawn_contract_earns_no_credit_for_later_decisions() -> None:
    h = Harness()
    h.feed(created(T0, ticket="T1"))  # first response due 10:00
    h.feed(contract_changed("2026-03-02T09:30:00Z", "acme", None))
    h.until("2026-03-02T10:00:01Z")
    assert h.one("breach", "first_response")["tier"] == "enterprise"
    assert h.of("credit") == []


def test_a_contract_naming_an_unknown_service_is_refused() -> None:
    h = Harness()
    h.feed(contract_changed(T0, "newco", {**NEWCO, "services": ["portal"]}))
    assert [r.error_class for r in h.rejections] == ["UnknownService"]
