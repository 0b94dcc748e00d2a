"""A customer's account as people read it: the open period so far and the recent closed ones.

Pure: built from a ledger stage's account, the contract book and the ledger's watermark
(the instant everything is counted as of, never the wall clock). The worker serves it at
`GET /customers/{customer_id}`.
"""

from __future__ import annotations

import calendar
from decimal import Decimal
from typing import Any

from slaclock.processors.engine.instants import format_us
from slaclock.processors.engine.ledger import (
    METRICS,
    ZERO,
    CustomerAccount,
    LedgerStage,
    PeriodAccount,
    metric_figures,
    money,
)
from slaclock.processors.engine.periods import Period, period_bounds, period_of, shift_period


def month_name(period: Period) -> str:
    year, month = period.split("-")
    return f"{calendar.month_name[int(month)]} {year}"


def _figures(totals: PeriodAccount) -> dict[str, Any]:
    return {
        "metrics": {
            metric: metric_figures(totals.met[i], totals.breached[i])
            for i, metric in enumerate(METRICS)
        },
        "overall": metric_figures(sum(totals.met), sum(totals.breached)),
        "credits_total": str(money(totals.credits_total)),
        "availability_credits_total": str(money(totals.availability_total)),
        "credits": totals.credits,
    }


def customer_view(stage: LedgerStage, customer_id: str) -> dict[str, Any] | None:
    """The customer's account as of the ledger's watermark; None if it has no contract."""
    as_of = stage.watermark()
    instant = as_of if as_of is not None else stage.first_instant
    contract = None if instant is None else stage.book.in_force(customer_id, instant)
    if contract is None:
        zone_contract = None
        for version in stage.book.versions.get(customer_id, ()):
            zone_contract = version.contract or zone_contract
        contract = zone_contract
    if contract is None:
        return None
    account = stage.accounts.get(customer_id) or CustomerAccount(customer_id)
    zone = contract.timezone
    policy = (
        stage.versions.first.policy if instant is None else stage.versions.in_force(instant).policy
    )
    cap = stage.cap_amount(contract, policy)
    terms = stage.earn_back_terms(contract, policy)
    view: dict[str, Any] = {
        "customer_id": customer_id,
        "as_of": None if as_of is None else format_us(as_of),
        "contract": {
            "tier": contract.tier,
            "monthly_fee": str(money(contract.monthly_fee)),
            "currency": contract.currency,
            "timezone": zone.key,
            "credit_cap": None if cap is None else str(cap),
            "earn_back": None
            if terms is None
            else {"months": terms[0], "min_compliance": str(terms[1])},
        },
        "open_period": None,
        "closed_periods": [],
    }
    if instant is None:
        return view
    current = period_of(instant, zone)
    start, end = period_bounds(current, zone)
    totals = account.periods.get(current) or PeriodAccount()
    open_figures = _figures(totals)
    open_figures["remaining_cap"] = (
        None if cap is None else str(max(cap - totals.credits_total, ZERO))
    )
    view["open_period"] = {
        "period": current,
        "start": format_us(start),
        "end": format_us(end),
        **open_figures,
    }
    closed = sorted((p for p in account.periods if p < current), reverse=True)
    for period in closed:
        period_totals = account.periods[period]
        entry = {"period": period, **_figures(period_totals)}
        if terms is not None:
            overall = period_totals.overall()
            entry["compliant"] = overall is None or overall >= terms[1]
            entry["earn_back"] = _earn_back_status(account, period, current, terms, contract)
        view["closed_periods"].append(entry)
    return view


def _earn_back_status(
    account: CustomerAccount,
    period: Period,
    current: Period,
    terms: tuple[int, Decimal],
    contract: Any,
) -> dict[str, Any]:
    months, minimum = terms
    totals = account.periods[period]
    amount = money(totals.credits_total - totals.availability_total)
    if amount <= ZERO:
        return {"status": "nothing to earn back", "amount": "0.00"}
    window = [shift_period(period, offset) for offset in range(1, months + 1)]
    last = window[-1]
    label = f"{month_name(period)}'s {amount} {contract.currency}"
    for month in window:
        if month >= current:
            break
        overall = account.periods[month].overall() if month in account.periods else None
        if overall is not None and overall < minimum:
            return {
                "status": "cancelled",
                "amount": str(amount),
                "text": f"{label} will not be earned back: {month_name(month)} was below {minimum}",
            }
    if last < current:
        return {
            "status": "earned back",
            "amount": str(amount),
            "text": f"{label} was earned back at the end of {month_name(last)}",
        }
    pending = [m for m in window if m >= current]
    names = " and ".join(month_name(m).split()[0] for m in pending)
    verb = "stays" if len(pending) == 1 else "stay"
    return {
        "status": "pending",
        "amount": str(amount),
        "text": f"{label} will be earned back at the end of {month_name(last)} "
        f"if {names} {verb} at or above {minimum}",
    }
