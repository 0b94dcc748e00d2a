"""Monthly statements and earn-back, as a customer's billing months close.

acme: enterprise (24x7), fee 1000.00 EUR, Europe/Berlin; first_response 1% (10.00),
resolution 2.5% (25.00), cap 5% (50.00); earn-back after 2 compliant months at 0.95.
Berlin is UTC+1 in winter: October ends at 2026-10-31T23:00Z, November at 2026-11-30T23:00Z,
December at 2026-12-31T23:00Z.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.policy import CompiledPolicy
from tests.core.builders import (
    POLICY_YAML,
    Harness,
    agent_reply,
    created,
    make_policy,
    priority,
    status,
)
from tests.core.reference_model import REF_POLICY_YAML, random_scenario

EARN_BACK = "monthly_cap: 5\n      earn_back: {months: 2, min_compliance: 0.95}"
OCT_END = "2026-10-31T23:00:00Z"
NOV_END = "2026-11-30T23:00:00Z"
DEC_END = "2026-12-31T23:00:00Z"


def policy(yaml_text: str = POLICY_YAML, earn_back: str = EARN_BACK) -> CompiledPolicy:
    return make_policy(yaml_text.replace("monthly_cap: 5", earn_back))


def statements(h: Harness, customer: str = "acme") -> dict[str, dict[str, Any]]:
    return {s["period"]: s for s in h.of("sla.statement") if s["customer_id"] == customer}


def met_ticket(h: Harness, at: str, ticket: str) -> None:
    """A high ticket answered and solved in time: first_response and resolution met."""
    h.feed(created(at, ticket=ticket))
    h.feed(agent_reply(at.replace(":00:00Z", ":10:00Z"), ticket=ticket))
    h.feed(status(at.replace(":00:00Z", ":20:00Z"), "solved", ticket=ticket))


def breached_ticket(h: Harness, at: str, ticket: str) -> None:
    """A high ticket nobody answers in time: first_response breached (10.00), then solved."""
    h.feed(created(at, ticket=ticket))
    h.feed(status(at.replace("T09:", "T11:"), "solved", ticket=ticket))


def test_a_quiet_month_gets_a_statement_with_zeros() -> None:
    h = Harness(policy())
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    h.until(NOV_END)
    november = statements(h)["2026-11"]
    assert november["at"] == NOV_END
    assert november["period_start"] == OCT_END
    assert november["overall"] == {"met": 0, "breached": 0, "compliance": None}
    assert november["credits_total"] == "0.00" and november["credits"] == 0
    assert november["compliant"] is True  # a period with no outcomes is compliant
    assert november["credit_cap"] == "50.00" and november["monthly_fee"] == "1000.00"


def test_statement_counts_met_and_breached_outcomes_per_metric() -> None:
    h = Harness(policy())
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    breached_ticket(h, "2026-10-06T09:00:00Z", "T2")
    h.until(OCT_END)
    october = statements(h)["2026-10"]
    assert october["metrics"]["first_response"] == {
        "met": 1,
        "breached": 1,
        "compliance": "0.5000",
    }
    assert october["metrics"]["resolution"] == {"met": 2, "breached": 0, "compliance": "1.0000"}
    assert october["metrics"]["next_response"]["compliance"] is None
    assert october["overall"] == {"met": 3, "breached": 1, "compliance": "0.7500"}
    assert october["credits_total"] == "10.00" and october["credits"] == 1
    assert october["compliant"] is False


def test_a_period_exactly_at_min_compliance_is_compliant() -> None:
    h = Harness(
        policy(earn_back="monthly_cap: 5\n      earn_back: {months: 2, min_compliance: 0.75}")
    )
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    breached_ticket(h, "2026-10-06T09:00:00Z", "T2")  # 3 met, 1 breached: 0.7500
    h.until(OCT_END)
    assert statements(h)["2026-10"]["compliant"] is True


def test_credits_of_october_are_earned_back_after_two_compliant_months() -> None:
    h = Harness(policy())
    breached_ticket(h, "2026-10-06T09:00:00Z", "T1")
    met_ticket(h, "2026-11-05T09:00:00Z", "T2")
    met_ticket(h, "2026-12-07T09:00:00Z", "T3")
    h.until(DEC_END)
    earned = h.one("sla.credit_earned_back")
    assert earned == {
        "event_id": earned["event_id"],
        "type": "sla.credit_earned_back",
        "customer_id": "acme",
        "tier": "enterprise",
        "period": "2026-10",
        "at": DEC_END,
        "amount": "10.00",
        "currency": "EUR",
        "earned_through": "2026-12",
        "months": 2,
        "min_compliance": "0.95",
        "policy_version": "1",
    }
    # right after December's statement
    kinds = [o["type"] for o in h.outputs]
    assert kinds[-2:] == ["sla.statement", "sla.credit_earned_back"]
    assert h.outputs[-2]["period"] == "2026-12"


def test_a_non_compliant_month_in_the_window_cancels_the_earn_back() -> None:
    h = Harness(policy())
    breached_ticket(h, "2026-10-06T09:00:00Z", "T1")
    breached_ticket(h, "2026-11-05T09:00:00Z", "T2")  # November: 0.5 < 0.95
    met_ticket(h, "2026-12-07T09:00:00Z", "T3")
    h.until("2027-01-31T23:00:00Z")
    assert statements(h)["2026-11"]["compliant"] is False
    # October needed November and December: cancelled. November's own credits come back
    # at the end of January (December met, January quiet).
    assert [e["period"] for e in h.of("sla.credit_earned_back")] == ["2026-11"]


def test_novembers_credits_come_back_when_december_and_january_are_compliant() -> None:
    h = Harness(policy())
    breached_ticket(h, "2026-11-05T09:00:00Z", "T2")
    met_ticket(h, "2026-12-07T09:00:00Z", "T3")
    h.until("2027-01-31T23:00:00Z")
    assert [(e["period"], e["amount"]) for e in h.of("sla.credit_earned_back")] == [
        ("2026-11", "10.00")
    ]


def test_a_breach_decided_in_november_for_an_october_deadline_is_in_novembers_statement() -> None:
    h = Harness(policy())
    h.feed(created("2026-10-31T21:00:00Z", ticket="T1", priority="normal"))  # deadline 01:00Z
    h.feed(priority("2026-10-31T23:30:00Z", "urgent", ticket="T1"))  # new deadline 21:15Z
    breach = h.one("breach", "first_response")
    assert breach["at"] == "2026-10-31T21:15:00Z"  # October in Berlin
    assert breach["decided_at"] == "2026-10-31T23:30:00Z"  # November in Berlin
    h.until(NOV_END)
    credit = h.one("credit", "first_response")
    assert credit["period"] == "2026-11" and credit["decided_at"] == breach["decided_at"]
    by_period = statements(h)
    assert by_period["2026-10"]["metrics"]["first_response"]["breached"] == 0
    assert by_period["2026-10"]["credits_total"] == "0.00"
    assert by_period["2026-11"]["metrics"]["first_response"]["breached"] == 1
    # first response (10.00) and resolution (urgent 4 h: 01:00Z, 25.00) in November
    assert by_period["2026-11"]["credits_total"] == "35.00"


def test_a_cycle_met_then_breached_after_a_reopen_counts_in_both_periods() -> None:
    h = Harness(policy())
    h.feed(created("2026-10-31T20:00:00Z", ticket="T1"))  # high: resolution 8 h
    h.feed(agent_reply("2026-10-31T20:05:00Z", ticket="T1"))
    h.feed(status("2026-10-31T21:00:00Z", "solved", ticket="T1"))  # resolution met, October
    h.feed(status("2026-11-02T09:00:00Z", "open", ticket="T1"))  # reopen: 1 h counted, 7 h left
    h.until(NOV_END)
    by_period = statements(h)
    assert by_period["2026-10"]["metrics"]["resolution"] == {
        "met": 1,
        "breached": 0,
        "compliance": "1.0000",
    }
    assert by_period["2026-11"]["metrics"]["resolution"]["breached"] == 1
    assert by_period["2026-11"]["metrics"]["resolution"]["met"] == 0


def test_a_resolution_solved_twice_in_time_counts_once() -> None:
    h = Harness(policy())
    h.feed(created("2026-10-05T09:00:00Z", ticket="T1"))
    h.feed(agent_reply("2026-10-05T09:05:00Z", ticket="T1"))
    h.feed(status("2026-10-05T10:00:00Z", "solved", ticket="T1"))
    h.feed(status("2026-10-05T11:00:00Z", "open", ticket="T1"))
    h.feed(status("2026-10-05T12:00:00Z", "solved", ticket="T1"))
    h.until(OCT_END)
    assert len(h.of("completed", "resolution")) == 2
    assert statements(h)["2026-10"]["metrics"]["resolution"]["met"] == 1


def test_a_completion_exactly_at_the_period_end_belongs_to_the_next_period() -> None:
    h = Harness(policy())
    h.feed(created("2026-10-31T22:30:00Z", ticket="T1"))
    h.feed(agent_reply(OCT_END, ticket="T1"))  # first_response met exactly at E
    h.until(NOV_END)
    by_period = statements(h)
    assert by_period["2026-10"]["metrics"]["first_response"]["met"] == 0
    assert by_period["2026-11"]["metrics"]["first_response"]["met"] == 1
    # the event at E is applied before October's statement is emitted
    kinds = [(o["type"], o.get("period")) for o in h.outputs]
    assert kinds.index(("sla.completed", None)) < kinds.index(("sla.statement", "2026-10"))


def test_a_credit_decided_exactly_at_the_period_end_follows_the_statement() -> None:
    h = Harness(policy())
    h.feed(created("2026-10-31T22:00:00Z", ticket="T1"))  # high: first_response due at E
    h.until(NOV_END)
    credit = h.one("credit", "first_response")
    assert credit["decided_at"] == OCT_END and credit["period"] == "2026-11"
    order = [(o["type"], o.get("period")) for o in h.outputs if o["type"] != "sla.warning"]
    assert order.index(("sla.statement", "2026-10")) < order.index(("sla.credit", "2026-11"))
    assert statements(h)["2026-10"]["credits_total"] == "0.00"


def test_statements_at_one_instant_come_in_customer_order() -> None:
    yaml_text = POLICY_YAML.replace(
        "  globex:\n    tier: business",
        '  aaa-first:\n    tier: enterprise\n    monthly_fee: "10.00"\n    currency: EUR\n'
        "    timezone: Europe/Berlin\n  globex:\n    tier: business",
    )
    h = Harness(policy(yaml_text))
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    h.until(OCT_END)
    at_end = [s["customer_id"] for s in h.of("sla.statement") if s["at"] == OCT_END]
    assert at_end == ["aaa-first", "acme"]


def test_contract_term_bounds_statements_and_credits() -> None:
    yaml_text = POLICY_YAML.replace(
        "    timezone: Europe/Berlin\n  globex",
        "    timezone: Europe/Berlin\n    start: 2026-11-01\n    end: 2026-11-30\n  globex",
    )
    h = Harness(policy(yaml_text))
    breached_ticket(h, "2026-10-06T09:00:00Z", "T1")  # before the term: no credit
    breached_ticket(h, "2026-11-06T09:00:00Z", "T2")  # in the term: credited
    breached_ticket(h, "2026-12-07T09:00:00Z", "T3")  # after it: no credit
    h.until(DEC_END)
    assert [c["ticket_id"] for c in h.of("credit")] == ["T2"]
    assert sorted(statements(h)) == ["2026-11"]


def test_statements_start_with_the_month_of_the_earliest_input() -> None:
    h = Harness(policy())
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    h.until(DEC_END)
    assert sorted(statements(h)) == ["2026-10", "2026-11", "2026-12"]
    assert sorted(statements(h, "globex")) == ["2026-10", "2026-11"]  # New York: Dec ends later


def test_replay_until_past_a_month_end_emits_that_months_statements_only_once() -> None:
    h = Harness(policy())
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    h.until(OCT_END)
    h.until(NOV_END)
    periods = [s["period"] for s in h.of("sla.statement") if s["customer_id"] == "acme"]
    assert periods == ["2026-10", "2026-11"]


# -- invariants -------------------------------------------------------------------------


def _earn_back_policy() -> CompiledPolicy:
    return make_policy(
        REF_POLICY_YAML.replace(
            "monthly_cap: 6", "monthly_cap: 6\n      earn_back: {months: 1, min_compliance: 0.5}"
        )
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), tickets=st.integers(1, 6))
def test_statement_totals_are_the_sums_of_their_parts(seed: int, tickets: int) -> None:
    import random

    scenario = random_scenario(random.Random(seed), tickets)
    h = Harness(_earn_back_policy())
    h.feed(*scenario.events).until("2027-01-31T23:00:00Z")
    credits: dict[tuple[str, str], Decimal] = {}
    counts: dict[tuple[str, str], int] = {}
    for credit in h.of("credit"):
        key = (credit["customer_id"], credit["period"])
        credits[key] = credits.get(key, Decimal("0.00")) + Decimal(credit["amount"])
        counts[key] = counts.get(key, 0) + 1
    for statement in h.of("sla.statement"):
        key = (statement["customer_id"], statement["period"])
        assert Decimal(statement["credits_total"]) == credits.get(key, Decimal("0.00"))
        assert statement["credits"] == counts.get(key, 0)
        if statement["credit_cap"] is not None:
            assert Decimal(statement["credits_total"]) <= Decimal(statement["credit_cap"])
        for part in ("met", "breached"):
            assert statement["overall"][part] == sum(m[part] for m in statement["metrics"].values())
    emitted = [(s["customer_id"], s["period"]) for s in h.of("sla.statement")]
    assert len(emitted) == len(set(emitted)), "a statement emitted twice"


# -- the live view of a customer -----------------------------------------------------------


def test_customer_view_counts_the_open_period_as_of_the_watermark() -> None:
    from slaclock.processors.engine.ledger_view import customer_view

    h = Harness(policy())
    breached_ticket(h, "2026-10-06T09:00:00Z", "T1")
    met_ticket(h, "2026-11-05T09:00:00Z", "T2")
    h.feed(created("2026-11-20T09:00:00Z", ticket="T3", priority="low"))  # moves the clock
    view = customer_view(h.replayer.ledger, "acme")
    assert view is not None
    # after an event at 09:00 the ledger has heard of everything due before it
    assert view["as_of"] == "2026-11-20T08:59:59.999999Z"
    assert view["open_period"]["period"] == "2026-11"
    assert view["open_period"]["overall"] == {"met": 2, "breached": 0, "compliance": "1.0000"}
    assert view["open_period"]["remaining_cap"] == "50.00"
    october = view["closed_periods"][0]
    assert (october["period"], october["credits_total"], october["compliant"]) == (
        "2026-10",
        "10.00",
        False,
    )
    assert october["earn_back"] == {
        "status": "pending",
        "amount": "10.00",
        "text": "October 2026's 10.00 EUR will be earned back at the end of December 2026 "
        "if November and December stay at or above 0.95",
    }


def test_customer_view_of_an_unknown_customer_is_none() -> None:
    from slaclock.processors.engine.ledger_view import customer_view

    h = Harness(policy())
    met_ticket(h, "2026-10-05T09:00:00Z", "T1")
    assert customer_view(h.replayer.ledger, "nobody") is None


def test_customer_view_says_when_a_months_credits_were_earned_back() -> None:
    from slaclock.processors.engine.ledger_view import customer_view

    h = Harness(policy())
    breached_ticket(h, "2026-10-06T09:00:00Z", "T1")
    met_ticket(h, "2026-11-05T09:00:00Z", "T2")
    met_ticket(h, "2026-12-07T09:00:00Z", "T3")
    h.until("2027-01-05T00:00:00Z")
    view = customer_view(h.replayer.ledger, "acme")
    assert view is not None
    october = next(p for p in view["closed_periods"] if p["period"] == "2026-10")
    assert october["earn_back"] == {
        "status": "earned back",
        "amount": "10.00",
        "text": "October 2026's 10.00 EUR was earned back at the end of December 2026",
    }
