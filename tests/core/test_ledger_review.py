"""Review of the credit ledger (docs/semantics.md: Credits; Statements and earn-back; Service availability): edge cases the other ledger tests miss.

Found in review: each of the first tests showed a divergence from the product contract
before it was fixed; the others pin edge cases that hold. Policies: tests/core/builders.py (acme:
enterprise, 1000.00 EUR, Europe/Berlin, 1% first response, 2.5% resolution, cap 5%) and
examples/services-policy.yaml (acme: 12000.00 EUR, cap 20%, portal 10/25/100% bands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from slaclock.processors.engine.availability import compile_services, ledger_availability_percent
from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.ledger import LedgerStage
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.services_stage import ServiceStage
from slaclock.processors.services_intake import decode_service_event
from tests.core.builders import (
    POLICY_YAML,
    Harness,
    agent_reply,
    breach_record,
    created,
    make_policy,
    status,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICES_POLICY = (ROOT / "examples" / "services-policy.yaml").read_text()
OCT_END = "2026-10-31T23:00:00Z"  # Berlin
NOV_END = "2026-11-30T23:00:00Z"
DEC_END = "2026-12-31T23:00:00Z"
EARN_BACK_2 = "monthly_cap: 5\n      earn_back: {months: 2, min_compliance: 0.95}"


def statements(h: Harness, customer: str = "acme") -> dict[str, dict[str, Any]]:
    return {s["period"]: s for s in h.of("sla.statement") if s["customer_id"] == customer}


def contract_changed(at: str, customer: str, contract: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "contract.changed", "customer_id": customer, "occurred_at": at,
            "contract": contract}  # fmt: skip


def service_event(at: str, new_status: str, service: str = "portal") -> dict[str, Any]:
    return {
        "event_id": f"svc-{service}-{at}-{new_status}",
        "type": "service.status_changed",
        "service_id": service,
        "occurred_at": at,
        "status": new_status,
    }


def services_harness(yaml_text: str = SERVICES_POLICY) -> Harness:
    return Harness(make_policy(yaml_text))


def breached_ticket(h: Harness, at: str, ticket: str, customer: str = "acme") -> None:
    """A high ticket (enterprise) nobody answers within the hour: first_response breached."""
    h.feed(created(at, ticket=ticket, customer=customer))
    h.feed(status(at.replace("T09:", "T11:"), "solved", ticket=ticket))


def met_ticket(h: Harness, at: str, ticket: str) -> None:
    h.feed(created(at, ticket=ticket))
    h.feed(agent_reply(at.replace(":00:00Z", ":10:00Z"), ticket=ticket))
    h.feed(status(at.replace(":00:00Z", ":20:00Z"), "solved", ticket=ticket))


# -- availability credits against the statement of their period -----------------------------


def test_an_event_exactly_at_the_month_end_closes_the_month_after_its_availability_credits() -> (
    None
):
    h = services_harness()
    h.feed(service_event("2026-11-10T00:00:00Z", "major_outage"))
    h.feed(service_event("2026-11-11T00:00:00Z", "operational"))  # 24 h down: 25% band
    h.feed(created(NOV_END, ticket="AT-END"))  # any input exactly at acme's November end
    h.until("2026-12-02T00:00:00Z")
    acme = [o for o in h.outputs if o.get("customer_id") == "acme" and o["type"] != "sla.warning"]
    november = [(o["type"], o.get("metric")) for o in acme if o.get("period") == "2026-11"]
    # the order of docs/semantics.md: Statements and earn-back: the availability credits of the period ending at E, then the statement
    assert november == [
        ("sla.credit", "availability"),
        ("sla.statement", None),
    ]
    assert statements(h)["2026-11"]["availability_credits_total"] == "2400.00"  # 3000.00 capped


def test_live_services_watermark_at_the_month_end_does_not_close_the_month_before_its_report() -> (
    None
):
    policy = make_policy(SERVICES_POLICY)
    assert policy.raw is not None
    services = compile_services(policy.raw)
    grace = 2_000_000
    stage = ServiceStage(services, {}, grace)
    ledger = LedgerStage(
        policy,
        ContractBook.from_policy(policy),
        ["services/0"],
        availability_percent=ledger_availability_percent(services),
    )
    outputs: list[dict[str, Any]] = []

    def route(produced: list[dict[str, Any]]) -> None:
        """As processors/live/services.py: reports, then the clock watermark, then release."""
        for output in produced:
            if output["type"] == "sla.availability_report":
                ledger.on_availability(output)
        assert stage.fired_through is not None  # the watermark the adapter sends
        ledger.on_watermark("services/0", stage.fired_through, stage.first_applied)
        outputs.extend(ledger.release())

    for at, new_status in [
        ("2026-11-10T00:00:00Z", "major_outage"),
        ("2026-11-11T00:00:00Z", "operational"),
    ]:
        event = decode_service_event(orjson.dumps(service_event(at, new_status)))
        route(stage.on_event(event, parse_instant(at)))
    # another service's event at E + grace: the stage clock becomes E, portal's report at E
    # (unlike back-office's own) is not fired yet
    for at, new_status in [("2026-11-30T23:00:02Z", "degraded_performance")]:
        event = decode_service_event(
            orjson.dumps(service_event(at, new_status, service="back-office"))
        )
        route(stage.on_event(event, parse_instant(at)))
    route(stage.on_tick(parse_instant("2026-11-30T23:00:05Z"), caught_up=True))
    acme = [(o["type"], o.get("metric")) for o in outputs if o["customer_id"] == "acme"]
    assert acme[:2] == [("sla.credit", "availability"), ("sla.statement", None)]
    statement = next(
        o for o in outputs if o["type"] == "sla.statement" and o["customer_id"] == "acme"
    )
    assert statement["availability_credits_total"] == "2400.00"


def test_without_an_event_at_the_month_end_the_availability_credit_precedes_the_statement() -> None:
    h = services_harness()
    h.feed(service_event("2026-11-10T00:00:00Z", "major_outage"))
    h.feed(service_event("2026-11-11T00:00:00Z", "operational"))
    h.feed(created("2026-11-30T23:00:01Z", ticket="AFTER-END"))
    h.until("2026-12-02T00:00:00Z")
    statement = statements(h)["2026-11"]
    assert (statement["credits_total"], statement["availability_credits_total"]) == (
        "2400.00",  # 25% = 3000.00 cut to the 20% cap
        "2400.00",
    )


CROSS_ZONE = SERVICES_POLICY.replace(
    '  portal:                           # "the portal must be 99.5% operational in a month"\n'
    "    timezone: Europe/Berlin",
    "  portal:\n    timezone: UTC",
).replace("monthly_cap: 20", "monthly_cap: 10")


def test_availability_credit_from_another_zone_follows_ticket_credits_decided_at_its_instant() -> (
    None
):
    assert "timezone: UTC" in CROSS_ZONE and "monthly_cap: 10" in CROSS_ZONE
    h = services_harness(CROSS_ZONE)
    h.feed(service_event("2026-11-10T00:00:00Z", "major_outage"))
    h.feed(service_event("2026-11-11T00:00:00Z", "operational"))  # UTC November: 25% band
    # urgent first response (15 m) due exactly at the UTC month end 2026-12-01T00:00Z
    h.feed(created("2026-11-30T23:45:00Z", ticket="T1", priority="urgent"))
    h.until("2026-12-01T01:00:00Z")
    credits = [
        (c["metric"], c["period"], c["amount"], c["capped"])
        for c in h.of("credit")
        if c["customer_id"] == "acme"
    ]
    # Berlin's December started at 2026-11-30T23:00Z: both credits are December's; cap 1200.00
    assert credits == [
        ("first_response", "2026-12", "120.00", False),
        ("availability", "2026-12", "1080.00", True),
    ]


def test_a_utc_services_credit_lands_in_the_berlin_month_of_its_last_instant() -> None:
    h = services_harness(CROSS_ZONE)
    h.feed(service_event("2026-11-10T00:00:00Z", "major_outage"))
    h.feed(service_event("2026-11-11T00:00:00Z", "operational"))
    h.until("2026-12-01T00:00:00Z")
    credit = next(c for c in h.of("credit") if c["customer_id"] == "acme")
    assert (credit["period"], credit["decided_at"], credit["service_id"]) == (
        "2026-12",  # E - 1 µs = 2026-12-01T00:59:59.999999 Berlin
        "2026-12-01T00:00:00Z",
        "portal",
    )
    assert statements(h)["2026-11"]["availability_credits_total"] == "0.00"


TERM_TO_NOVEMBER = SERVICES_POLICY.replace(
    "    timezone: Europe/Berlin\n    services: [portal, back-office]",
    "    timezone: Europe/Berlin\n    end: 2026-11-30\n    services: [portal, back-office]",
)


def test_a_term_ending_with_the_month_still_credits_that_months_outage() -> None:
    assert "end: 2026-11-30" in TERM_TO_NOVEMBER
    h = services_harness(TERM_TO_NOVEMBER)
    h.feed(service_event("2026-11-10T00:00:00Z", "major_outage"))
    h.feed(service_event("2026-11-11T00:00:00Z", "operational"))
    h.until("2026-12-02T00:00:00Z")
    november = statements(h)["2026-11"]
    assert november["availability_credits_total"] == "2400.00"


TERM_FROM_DECEMBER = SERVICES_POLICY.replace(
    "    timezone: Europe/Berlin\n    services: [portal, back-office]",
    "    timezone: Europe/Berlin\n    start: 2026-12-01\n    services: [portal, back-office]",
)


def test_a_term_starting_at_the_month_end_earns_no_credit_for_the_month_before() -> None:
    assert "start: 2026-12-01" in TERM_FROM_DECEMBER
    h = services_harness(TERM_FROM_DECEMBER)
    h.feed(service_event("2026-11-10T00:00:00Z", "major_outage"))
    h.feed(service_event("2026-11-11T00:00:00Z", "operational"))
    h.until("2026-12-02T00:00:00Z")
    assert "2026-11" not in statements(h)
    assert [c for c in h.of("credit") if c["customer_id"] == "acme"] == []


# -- order across customers --------------------------------------------------------------------


def test_credits_decided_at_one_instant_are_emitted_in_ticket_order_across_customers() -> None:
    h = Harness(make_policy())
    h.feed(created("2026-10-06T09:00:00Z", ticket="B1", customer="acme"))
    h.feed(created("2026-10-06T09:00:00Z", ticket="A1", customer="globex", tier="enterprise"))
    h.until("2026-10-06T12:00:00Z")
    credits = [(c["decided_at"], c["ticket_id"], c["customer_id"]) for c in h.of("credit")]
    assert credits == [
        ("2026-10-06T10:00:00Z", "A1", "globex"),
        ("2026-10-06T10:00:00Z", "B1", "acme"),
    ]


# -- state of customers without a contract -----------------------------------------------------


def test_breaches_of_customers_without_a_contract_leave_no_ledger_state() -> None:
    policy = make_policy()
    ledger = LedgerStage(policy, ContractBook.from_policy(policy), ["s"])
    for n in range(50):
        ledger.on_outcome(
            breach_record("T", "first_response", "2026-03-02T10:00:00Z", customer=f"walk-in-{n}")
        )
    credits = ledger.release(through=parse_instant("2026-03-02T11:00:00Z"))
    assert credits == []
    assert sorted(ledger.accounts) == []


def test_a_breach_delivered_twice_counts_once_in_the_statement() -> None:
    policy = make_policy()
    ledger = LedgerStage(policy, ContractBook.from_policy(policy), ["s"])
    first = parse_instant("2026-03-01T00:00:00Z")
    ledger.on_watermark("s", first, first)
    breach = breach_record("T1", "first_response", "2026-03-02T10:00:00Z", "b1")
    ledger.on_outcome(breach)
    ledger.on_outcome(breach)
    outputs = ledger.release(through=parse_instant("2026-04-01T00:00:00Z"), final=True)
    acme = [o for o in outputs if o["customer_id"] == "acme"]
    assert [o["type"] for o in acme] == ["sla.credit", "sla.statement"]
    assert acme[1]["metrics"]["first_response"]["breached"] == 1


# -- periods: DST gaps, terms, contract versions -------------------------------------------------

ASUNCION = POLICY_YAML.replace(
    "    currency: EUR\n    timezone: Europe/Berlin",
    "    currency: EUR\n    timezone: America/Asuncion",
)
ASUNCION_SEP_END = "2023-10-01T04:00:00Z"  # local midnight 2023-10-01 is in the DST gap


def test_a_month_end_in_a_dst_gap_is_the_instant_the_gap_ends() -> None:
    h = Harness(make_policy(ASUNCION))
    breached_ticket(h, "2023-09-20T09:00:00Z", "SEP")
    h.feed(created(ASUNCION_SEP_END, ticket="AT-END"))  # an event at E: next period
    h.feed(agent_reply("2023-10-01T04:10:00Z", ticket="AT-END"))
    h.until("2023-11-01T03:00:00Z")  # October's end (UTC-3, no DST change)
    september, october = statements(h)["2023-09"], statements(h)["2023-10"]
    assert september["at"] == ASUNCION_SEP_END == october["period_start"]
    assert september["metrics"]["first_response"] == {
        "met": 0,
        "breached": 1,
        "compliance": "0.0000",
    }
    assert october["metrics"]["first_response"]["met"] == 1
    assert october["at"] == "2023-11-01T03:00:00Z"


MID_MONTH_TERM = POLICY_YAML.replace(
    "    timezone: Europe/Berlin\n  globex",
    "    timezone: Europe/Berlin\n    start: 2026-10-20\n    end: 2026-11-15\n  globex",
)


def test_a_term_starting_and_ending_mid_month_gets_both_months_statements_and_in_term_credits() -> (
    None
):
    h = Harness(make_policy(MID_MONTH_TERM))
    breached_ticket(h, "2026-10-06T09:00:00Z", "BEFORE")
    breached_ticket(h, "2026-10-21T09:00:00Z", "IN-OCT")
    breached_ticket(h, "2026-11-10T09:00:00Z", "IN-NOV")
    breached_ticket(h, "2026-11-20T09:00:00Z", "AFTER")
    h.until(DEC_END)
    assert [c["ticket_id"] for c in h.of("credit")] == ["IN-OCT", "IN-NOV"]
    assert sorted(statements(h)) == ["2026-10", "2026-11"]
    assert statements(h)["2026-10"]["metrics"]["first_response"]["breached"] == 1
    assert statements(h)["2026-11"]["metrics"]["first_response"]["breached"] == 1


def test_two_contract_versions_in_one_month_each_decide_their_own_credits_under_one_cap() -> None:
    h = Harness(make_policy())
    cheaper = {"tier": "enterprise", "monthly_fee": "400.00", "currency": "EUR",
               "timezone": "Europe/Berlin", "effective_at": "2026-11-10T00:00:00Z"}  # fmt: skip
    h.feed(contract_changed("2026-11-01T00:00:00Z", "acme", cheaper))  # known before A, B
    breached_ticket(h, "2026-11-03T09:00:00Z", "A")  # fee 1000: 10.00
    breached_ticket(h, "2026-11-04T09:00:00Z", "B")  # 10.00
    breached_ticket(h, "2026-11-12T09:00:00Z", "C")  # fee 400: 4.00, cap now 20.00
    h.until(NOV_END)
    amounts = [(c["ticket_id"], c["amount"], c["capped"]) for c in h.of("credit")]
    assert amounts == [("A", "10.00", False), ("B", "10.00", False), ("C", "0.00", True)]
    november = statements(h)["2026-11"]
    assert (november["monthly_fee"], november["credit_cap"], november["credits_total"]) == (
        "400.00",
        "20.00",
        "20.00",
    )


def test_a_customer_contracted_mid_run_gets_statements_from_that_month_on() -> None:
    h = Harness(make_policy())
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    h.until(NOV_END)
    met_ticket(h, "2026-12-02T09:00:00Z", "T2")  # the ledger's caches now hold every customer
    newco = {"tier": "enterprise", "monthly_fee": "2000.00", "currency": "EUR",
             "timezone": "Europe/Berlin"}  # fmt: skip
    h.feed(contract_changed("2026-12-10T00:00:00Z", "newco", newco))
    h.feed(contract_changed("2026-12-10T00:00:00Z", "quietco", newco))  # never an event
    h.feed(contract_changed("2026-12-10T00:00:00Z", "acme", None))  # acme withdrawn
    h.until(DEC_END)  # no event since the changes: only the book knows the new customers
    assert sorted(s["customer_id"] for s in h.of("sla.statement") if s["period"] == "2026-12") == [
        "newco",
        "quietco",
    ]  # globex (New York) closes December later
    breached_ticket(h, "2027-01-14T09:00:00Z", "N1", customer="newco")
    h.until("2027-01-31T23:00:00Z")
    assert sorted(statements(h, "newco")) == ["2026-12", "2027-01"]
    assert statements(h, "newco")["2027-01"]["credits_total"] == "20.00"
    assert sorted(statements(h, "quietco")) == ["2026-12", "2027-01"]
    assert sorted(statements(h)) == ["2026-10", "2026-11"]


# -- earn-back ------------------------------------------------------------------------------------


def test_earn_back_over_one_month_returns_the_credits_after_one_compliant_month() -> None:
    one = "monthly_cap: 5\n      earn_back: {months: 1, min_compliance: 0.95}"
    h = Harness(make_policy(POLICY_YAML.replace("monthly_cap: 5", one)))
    breached_ticket(h, "2026-10-06T09:00:00Z", "OCT")
    breached_ticket(h, "2026-11-06T09:00:00Z", "NOV")  # November not compliant
    met_ticket(h, "2026-12-07T09:00:00Z", "DEC")
    h.until("2027-01-31T23:00:00Z")
    earned = [(e["period"], e["earned_through"], e["at"]) for e in h.of("sla.credit_earned_back")]
    # October: November non-compliant; November: December compliant; December: no credits
    assert earned == [("2026-11", "2026-12", DEC_END)]
    kinds = [(o["type"], o.get("period")) for o in h.outputs if o["type"].startswith("sla.") and
             o["type"] in ("sla.statement", "sla.credit_earned_back")]  # fmt: skip
    assert kinds.index(("sla.statement", "2026-12")) + 1 == kinds.index(
        ("sla.credit_earned_back", "2026-11")
    )


# -- restore ----------------------------------------------------------------------------------------


def _ledger(policy: CompiledPolicy) -> LedgerStage:
    return LedgerStage(policy, ContractBook.from_policy(policy), ["s"])


def _roundtrip(ledger: LedgerStage) -> LedgerStage:
    """A ledger rebuilt from its changelog records (JSON, as the live adapter stores them)."""
    restored = _ledger(ledger.policy)
    restored.restore_meta(orjson.loads(orjson.dumps(ledger.meta_record())))
    for account in ledger.accounts.values():
        restored.restore_account(orjson.loads(orjson.dumps(account.to_record())))
    return restored


def test_a_ledger_restored_mid_month_continues_like_the_uninterrupted_run() -> None:
    policy = make_policy(POLICY_YAML.replace("monthly_cap: 5", EARN_BACK_2))
    first_half = [
        breach_record("T1", "first_response", "2026-10-06T10:00:00Z", "b1"),
        breach_record("T2", "resolution", "2026-10-20T10:00:00Z", "b2"),
        breach_record("T3", "first_response", "2026-11-05T10:00:00Z", "b3"),
    ]
    second_half = [
        breach_record("T4", "resolution", "2026-11-05T10:00:00Z", "b4"),
        breach_record("T5", "first_response", "2026-11-20T10:00:00Z", "b5"),
    ]
    marks = ["2026-10-10T00:00:00Z", "2026-11-05T10:00:00Z"]  # b3 still held at the cut
    later = ["2026-11-25T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"]

    def run(restore: bool) -> list[dict[str, Any]]:
        ledger = _ledger(policy)
        outputs: list[dict[str, Any]] = []
        for breach in first_half:
            ledger.on_outcome(breach)
        for mark in marks:
            ledger.on_watermark("s", parse_instant(mark), parse_instant("2026-10-01T08:00:00Z"))
            outputs += ledger.release()
        if restore:
            ledger = _roundtrip(ledger)
        for breach in second_half:
            ledger.on_outcome(breach)
        for mark in later:
            ledger.on_watermark("s", parse_instant(mark), None)
            outputs += ledger.release()
        return outputs

    uninterrupted = run(restore=False)
    acme = [
        o["period"]
        for o in uninterrupted
        if o["type"] == "sla.statement" and o["customer_id"] == "acme"
    ]
    assert acme == ["2026-10", "2026-11", "2026-12", "2027-01"]
    assert run(restore=True) == uninterrupted
