"""The credit ledger (SPEC 5): per customer, per billing month, capped, in a fixed order.

Breaches are *offered* as they are emitted and *held*; `release(watermark)` allocates
every held breach whose `decided_at` is strictly before the watermark, in the order of
the key (decided_at, ticket_id, metric order, cycle). Because the order is fixed, the
credits do not depend on which partition's breach arrived first: replay and live give
the same amounts. A breach id is credited at most once.

How a repeat is recognised without remembering every credited id (which would grow
without bound and be rewritten to the changelog with every change): a ledger notes the
watermark it has released through. Every breach decided before it has been allocated,
and a new breach is never decided before it (stage 1 emits a breach at or after the clock
it last reported, and the watermark is the least of those clocks), so a breach offered
with `decided_at` before it is a repeat and is ignored; one still held is recognised by
its id.

Pure and deterministic like the ticket engine; the state is updated in place.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from processors.engine.ids import output_event_id
from processors.engine.instants import from_us, parse_instant
from processors.engine.policy import CompiledPolicy
from schemas.common import METRIC_ORDER

Output = dict[str, Any]
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")

HeldKey = tuple[int, str, int, int]


def money(value: Decimal) -> Decimal:
    """Round half-up to cents (SPEC 5)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class CustomerLedger:
    """What the ledger remembers about one customer."""

    __slots__ = ("customer_id", "held", "released_through", "totals")

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.totals: dict[str, Decimal] = {}  # billing period "YYYY-MM" -> credited total
        # every breach decided strictly before this instant has been allocated
        self.released_through: int | None = None
        self.held: dict[str, tuple[HeldKey, Output]] = {}  # breach event id -> (key, breach)

    def to_record(self) -> list[object]:
        return [
            self.customer_id,
            {period: str(total) for period, total in sorted(self.totals.items())},
            self.released_through,
            [[list(key), breach] for key, breach in sorted(self.held.values(), key=_by_key)],
        ]

    @classmethod
    def from_record(cls, record: list[Any]) -> CustomerLedger:
        customer_id, totals, released_through, held = record
        ledger = cls(customer_id)
        ledger.totals = {period: Decimal(total) for period, total in totals.items()}
        ledger.released_through = released_through if isinstance(released_through, int) else None
        for key, breach in held:
            ledger.held[breach["event_id"]] = (tuple(key), breach)
        return ledger


def _by_key(item: tuple[HeldKey, Output]) -> HeldKey:
    return item[0]


def allocation_key(breach: Output) -> HeldKey:
    return (
        parse_instant(breach["decided_at"]),
        breach["ticket_id"],
        METRIC_ORDER[breach["metric"]],
        breach["cycle"],
    )


class CreditLedger:
    """Allocates service credits for breaches under one compiled policy."""

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy

    def is_creditable(self, breach: Output) -> bool:
        tier = self.policy.tiers.get(breach["tier"])
        return (
            tier is not None
            and tier.credits is not None
            and breach["metric"] in tier.credits.per_breach
        )

    def offer(self, ledger: CustomerLedger, breach: Output) -> None:
        """Hold a breach for allocation; repeats and breaches that earn nothing are ignored."""
        breach_id = breach["event_id"]
        if breach_id in ledger.held or not self.is_creditable(breach):
            return
        key = allocation_key(breach)
        if ledger.released_through is not None and key[0] < ledger.released_through:
            return  # allocated already: a repeat (see the module docstring)
        ledger.held[breach_id] = (key, breach)

    def release(self, ledger: CustomerLedger, watermark: int | None) -> list[Output]:
        """Allocate the held breaches decided strictly before `watermark` (None: all)."""
        ready = [
            item for item in ledger.held.values() if watermark is None or item[0][0] < watermark
        ]
        ready.sort(key=_by_key)
        outputs: list[Output] = []
        for _key, breach in ready:
            del ledger.held[breach["event_id"]]
            credit = self._allocate(ledger, breach)
            if credit is not None:
                outputs.append(credit)
        through = watermark if watermark is not None else (ready[-1][0][0] + 1 if ready else None)
        if through is not None and (
            ledger.released_through is None or through > ledger.released_through
        ):
            ledger.released_through = through
        return outputs

    def _allocate(self, ledger: CustomerLedger, breach: Output) -> Output | None:
        contract = self.policy.contracts.get(ledger.customer_id)
        tier = self.policy.tiers[breach["tier"]]
        if contract is None or tier.credits is None:
            return None  # no contract: no credit (SPEC 5)
        percent = tier.credits.per_breach[breach["metric"]]
        fee = contract.monthly_fee
        amount = money(percent / HUNDRED * fee)
        at = parse_instant(breach["at"])
        period = from_us(at).astimezone(contract.timezone).strftime("%Y-%m")
        total = ledger.totals.get(period, ZERO)
        capped = False
        if tier.credits.monthly_cap is not None:
            remaining = money(tier.credits.monthly_cap / HUNDRED * fee) - total
            if remaining < amount:
                amount = max(remaining, ZERO)
                capped = True
        total = total + amount
        ledger.totals[period] = total
        return {
            "event_id": output_event_id("sla.credit", breach["event_id"]),
            "type": "sla.credit",
            "ticket_id": breach["ticket_id"],
            "customer_id": ledger.customer_id,
            "tier": breach["tier"],
            "metric": breach["metric"],
            "at": breach["at"],
            "period": period,
            "amount": str(amount),
            "currency": contract.currency,
            "percent": str(percent),
            "capped": capped,
            "period_total": str(total),
            "breach_event_id": breach["event_id"],
        }
