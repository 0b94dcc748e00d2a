"""The ledger stage: credits under the contract's cap, monthly statements, earn-back.

Keyed by customer. Its inputs are what stage 1 (and the services stage) decided —
breaches, first met completions, availability reports — plus every input partition's
clock progress (a watermark per source) and contract changes. Its outputs are
`sla.credit`, `sla.statement` and `sla.credit_earned_back`.

Why it holds things: the cap is allocated in a fixed key order and months are closed at
fixed instants, so nothing may depend on which partition's records arrived first. The
ledger acts on an instant only once the least clock of all sources has passed it (Flink's
watermark): a ticket credit once the watermark is strictly after its `decided_at`, a
period end E (statement, earn-back, availability credits) once it is at or after E. At one
instant the period-end work of every customer (in customer order: availability credits,
statement, earn-back) comes before the ticket credits decided at that instant, which
belong to the next period. Replay drives the same object with one source whose watermark
is the replay clock, so live and replay agree amount for amount.

Counting: outcomes are counted into a period as they arrive. That is safe because an
outcome's instant is never before the clock of the partition that produced it, and a
period is closed only once every clock has reached its end.

State per customer is bounded: open periods plus the last `earn_back.months` closed ones.
Pure and deterministic; the adapters persist `to_record()` of what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from slaclock.processors.engine.contracts import ContractBook
from slaclock.processors.engine.group_ledger import GROUP_HOLD, GroupLedger
from slaclock.processors.engine.ids import output_event_id
from slaclock.processors.engine.instants import format_us, parse_instant
from slaclock.processors.engine.periods import (
    Period,
    PeriodLookup,
    next_period,
    period_bounds,
    period_of,
    shift_period,
)
from slaclock.processors.engine.policy import CompiledContract, CompiledPolicy
from slaclock.processors.engine.versions import PolicyBook, PolicyVersion
from slaclock.schemas.common import METRIC_ORDER
from slaclock.schemas.policy import Contract

Output = dict[str, Any]
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")
COMPLIANCE_PLACES = Decimal("0.0001")
METRICS = tuple(METRIC_ORDER)  # first_response, next_response, periodic_update, resolution

HeldKey = tuple[int, str, int, int]  # decided_at, ticket_id, metric order, cycle

# agenda phases at one instant
_PERIOD_END: Final = 0
_TICKET_CREDIT: Final = 1
_GROUP_END = 0.5  # group statements at E: after every customer's period-end work
_NEVER = 2**62
# period-end steps for one customer
_AVAILABILITY = 0
_STATEMENT = 1


def money(value: Decimal) -> Decimal:
    """Round half-up to cents."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def compliance(met: int, breached: int) -> Decimal | None:
    """met / (met + breached), half-up to 4 places; None when there is no outcome."""
    total = met + breached
    if total == 0:
        return None
    return (Decimal(met) / Decimal(total)).quantize(COMPLIANCE_PLACES, rounding=ROUND_HALF_UP)


def is_first_met(completion: Output) -> bool:
    """A met completion that counts: the first completion of its cycle.

    A cycle completed again after a reopen (resolution solved, reopened, solved again in
    time) must count once; its first completion has the id of completion number 1, and a
    later met completion of a cycle implies the earlier ones were met too (a breach stays).
    """
    if completion["outcome"] != "met":
        return False
    group = completion.get("group")
    key = (completion["ticket_id"], completion["metric"], completion["cycle"], 1)
    first = output_event_id("sla.completed", *key, *(() if group is None else (group,)))
    return bool(completion["event_id"] == first)


def ledger_input(output: Output) -> bool:
    """Whether an output of stage 1 goes to the ledger: every breach, first met completions,
    of the customer metrics (a group metric earns no credit and no customer statement counts
    it: docs/semantics.md: Groups)."""
    kind = output["type"]
    if kind == GROUP_HOLD:
        return True  # hold facts, for the group statements
    if kind == "sla.breach":
        return True
    return kind == "sla.completed" and is_first_met(output)


@dataclass
class PeriodAccount:
    """One customer's billing period: outcomes per metric and the credits allocated."""

    met: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    breached: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    credits_total: Decimal = ZERO
    availability_total: Decimal = ZERO
    credits: int = 0

    def outcomes(self) -> int:
        return sum(self.met) + sum(self.breached)

    def overall(self) -> Decimal | None:
        return compliance(sum(self.met), sum(self.breached))

    def to_record(self) -> list[object]:
        return [
            self.met,
            self.breached,
            str(self.credits_total),
            str(self.availability_total),
            self.credits,
        ]

    @classmethod
    def from_record(cls, record: list[Any]) -> PeriodAccount:
        met, breached, total, availability, credits = record
        return cls(list(met), list(breached), Decimal(total), Decimal(availability), credits)


@dataclass
class CustomerAccount:
    """What the ledger remembers about one customer."""

    customer_id: str
    periods: dict[Period, PeriodAccount] = field(default_factory=dict)
    held: dict[str, tuple[HeldKey, Output]] = field(default_factory=dict)
    # every ticket credit decided strictly before this instant has been allocated
    released_through: int | None = None
    # the last period end whose period-end work is done
    closed_through: int | None = None

    def period(self, period: Period) -> PeriodAccount:
        account = self.periods.get(period)
        if account is None:
            account = self.periods[period] = PeriodAccount()
        return account

    def to_record(self) -> list[object]:
        return [
            self.customer_id,
            {p: a.to_record() for p, a in sorted(self.periods.items())},
            [[list(key), breach] for key, breach in sorted(self.held.values(), key=_by_key)],
            self.released_through,
            self.closed_through,
        ]

    @classmethod
    def from_record(cls, record: list[Any]) -> CustomerAccount:
        customer_id, periods, held, released_through, closed_through = record
        account = cls(customer_id)
        account.periods = {p: PeriodAccount.from_record(a) for p, a in periods.items()}
        for key, breach in held:
            account.held[breach["event_id"]] = (_held_key(key), breach)
        account.released_through = released_through
        account.closed_through = closed_through
        return account


def _held_key(key: list[Any]) -> HeldKey:
    decided_at, ticket_id, metric, cycle = key
    return (int(decided_at), str(ticket_id), int(metric), int(cycle))


def _by_key(item: tuple[HeldKey, Output]) -> HeldKey:
    return item[0]


def allocation_key(breach: Output) -> HeldKey:
    return (
        parse_instant(breach["decided_at"]),
        breach["ticket_id"],
        METRIC_ORDER[breach["metric"]],
        breach["cycle"],
    )


@dataclass
class LedgerCounters:
    outcomes: int = 0
    credits: int = 0
    statements: int = 0
    earned_back: int = 0
    group_statements: int = 0
    credited: dict[str, Decimal] = field(default_factory=dict)  # currency -> amount

    def count_credit(self, credit: Output) -> None:
        self.credits += 1
        currency = credit["currency"]
        self.credited[currency] = self.credited.get(currency, ZERO) + Decimal(credit["amount"])


AvailabilityPercent = Callable[[CompiledPolicy, Output], Decimal | None]
"""The credit band's percent for an availability report (None: no credit)."""


def _no_availability_credit(policy: CompiledPolicy, report: Output) -> Decimal | None:
    return None


class LedgerStage:
    """One ledger task: the accounts of the customers it owns and the sources' clocks."""

    def __init__(
        self,
        policy: CompiledPolicy,
        book: ContractBook,
        sources: Iterable[str],
        owns: Callable[[str], bool] = lambda customer: True,
        availability_percent: AvailabilityPercent = _no_availability_credit,
        versions: PolicyBook | None = None,
    ) -> None:
        self.policy = policy  # the first version
        self.book = book
        # policy versions in time (shared with the contract book when it has them)
        if versions is None:
            versions = book.policies if book.policies is not None else PolicyBook(policy)
        self.versions = versions
        self.sources = frozenset(sources)
        self.owns = owns
        self.availability_percent = availability_percent
        self.accounts: dict[str, CustomerAccount] = {}
        self.watermarks: dict[str, int] = {}
        self.first_instant: int | None = None
        self.held_reports: list[Output] = []  # availability reports awaiting their period end
        self.counters = LedgerCounters()
        self.dirty: set[str] = set()  # customers whose record changed since the last flush
        self.meta_dirty = False
        self._next_due: int | None = None  # cache of `next_due()`; None: recompute
        self._ends: dict[str, int] = {}  # cache: customer -> next period end (`_next_end`)
        self._customer_list: list[str] | None = None  # cache of `_customers()`
        self._period_of = PeriodLookup()
        # group statements (docs/semantics.md: Groups), kept in the meta record
        self.groups = GroupLedger(versions, owns, metric_figures)

    # -- inputs ---------------------------------------------------------------------------

    def account(self, customer_id: str) -> CustomerAccount:
        account = self.accounts.get(customer_id)
        if account is None:
            account = self.accounts[customer_id] = CustomerAccount(customer_id)
            self._customer_list = None
        return account

    def on_outcome(self, output: Output) -> None:
        """A breach or a first met completion of an owned customer (see `ledger_input`)."""
        if output.get("group") is not None:  # a group metric's outcome or a hold fact
            self.groups.on_fact(output, self.first_instant)
            self._groups_changed()
            return
        customer = output["customer_id"]
        if not self.owns(customer):
            return
        if output["type"] == "sla.breach":
            instant = parse_instant(output["decided_at"])
            if self._is_repeat(customer, output, instant):
                return  # a creditable breach seen before: counted and held already
            self._count(customer, instant, output["metric"], breached=True)
            self._hold_credit(customer, output, instant)
        else:
            self._count(customer, parse_instant(output["at"]), output["metric"], breached=False)

    def _count(self, customer: str, instant: int, metric: str, breached: bool) -> None:
        contract = self.book.covering(customer, instant)
        if contract is None:
            return  # no contract (or outside its term) at that instant: no statement counts it
        account = self.account(customer)
        period = account.period(self._period_of(instant, contract.timezone))
        counts = period.breached if breached else period.met
        counts[METRIC_ORDER[metric]] += 1
        self.counters.outcomes += 1
        self.dirty.add(customer)

    def breach_policy(self, breach: Output) -> CompiledPolicy:
        """The policy version a breach was decided under (its `policy_version`): its tier's
        `per_breach` percent is that version's, a pinned ticket's included."""
        version = self.versions.find(breach.get("policy_version"))
        if version is None:
            version = self.versions.in_force(parse_instant(breach["decided_at"]))
        return version.policy

    def _creditable(self, breach: Output) -> bool:
        tier = self.breach_policy(breach).tiers.get(breach["tier"])
        return (
            tier is not None
            and tier.credits is not None
            and breach["metric"] in tier.credits.per_breach
        )

    def _is_repeat(self, customer: str, breach: Output, decided_at: int) -> bool:
        """A creditable breach delivered again (the ledger remembers those it holds, and
        that everything decided before `released_through` was allocated)."""
        account = self.accounts.get(customer)
        if account is None or not self._creditable(breach):
            return False
        if breach["event_id"] in account.held:
            return True
        return account.released_through is not None and decided_at < account.released_through

    def _hold_credit(self, customer: str, breach: Output, decided_at: int) -> None:
        if not self._creditable(breach):
            return
        if self.book.first_effective(customer) is None:
            return  # never had a contract, and a contract is never retroactive: no credit
        account = self.account(customer)
        account.held[breach["event_id"]] = (allocation_key(breach), breach)
        self.dirty.add(customer)
        self._due_at(decided_at)

    def on_availability(self, report: Output) -> None:
        """An availability report; its credits are decided at its period end."""
        self.held_reports.append(report)
        self.meta_dirty = True
        self._due_at(parse_instant(report["at"]))

    def on_watermark(self, source: str, clock: int, first: int | None) -> None:
        """Clock progress of one input partition and the least instant it has applied."""
        if clock > self.watermarks.get(source, -(2**62)):
            self.watermarks[source] = clock
            self.meta_dirty = True
        if first is not None and (self.first_instant is None or first < self.first_instant):
            self.first_instant = first
            self.meta_dirty = True
            self._forget_schedule()

    def contracts_changed(self) -> None:
        """The shared book learnt a change: period ends may have moved."""
        self._forget_schedule()

    def on_contract(self, customer_id: str, contract: Contract | None, published_at: int) -> None:
        """A contract change (raises `Rejected` for one the book refuses)."""
        self.book.change(customer_id, contract, published_at)
        self._forget_schedule()

    def watermark(self) -> int | None:
        """The least clock over every source, once each has reported one."""
        if not self.sources or any(s not in self.watermarks for s in self.sources):
            return None
        return min(self.watermarks[s] for s in self.sources)

    # -- release --------------------------------------------------------------------------

    def release(self, through: int | None = None, final: bool = False) -> list[Output]:
        """Act on everything the watermark (or `through`) has passed, in instant order.

        Period ends at or before it; ticket credits decided strictly before it (at or
        before, when `final`: replay's last advance releases everything decided at or
        before `--until`).
        """
        limit = self.watermark() if through is None else through
        if limit is None:
            return []
        due = self.next_due()
        if due is None or due > limit:
            return []
        agenda: list[tuple[tuple[Any, ...], Callable[[], list[Output]]]] = []
        released: set[str] = set()
        for customer in self._customers():
            account = self.accounts.get(customer)
            holding = account is not None and account.held
            if not holding and self._next_end(customer) > limit:
                continue
            if account is not None and account.held:
                released.add(customer)
                for key, breach in list(account.held.values()):
                    if key[0] < limit or (final and key[0] == limit):
                        # key order across customers too: (decided_at, ticket, metric, cycle)
                        order: tuple[Any, ...] = (
                            key[0],
                            _TICKET_CREDIT,
                            (0, key[1], key[2], key[3]),
                            customer,
                        )
                        agenda.append((order, _bind(self._ticket_credit, customer, breach)))
            if self._next_end(customer) > limit:
                continue  # no period end due (cached: most releases are ticket credits)
            for end in self._period_ends(customer, limit):
                order = (end, _PERIOD_END, customer, (_STATEMENT, "", 0, 0))
                agenda.append((order, _bind(self._close, customer, end)))
        if self.first_instant is not None:
            for group in self.groups.groups():
                for end in self.groups.ends(group, self.first_instant, limit):
                    order = (end, _GROUP_END, group, (_STATEMENT, "", 0, 0))
                    agenda.append((order, _bind(self._close_group, group, end)))
        for report in list(self.held_reports):
            end = parse_instant(report["at"])
            if end > limit:
                continue
            self.held_reports.remove(report)
            self.meta_dirty = True
            service = report["service_id"]
            for customer in self._customers():
                contract = self._availability_contract(customer, end)
                if contract is None or service not in contract.services:
                    continue
                step = _bind(self._availability_credit, customer, report)
                if (
                    period_bounds(period_of(end - 1, contract.timezone), contract.timezone)[1]
                    == end
                ):
                    # the customer's month ends here too: before its statement
                    order = (end, _PERIOD_END, customer, (_AVAILABILITY, service, 0, 0))
                else:
                    # mid-month for the customer: after its ticket credits decided at `end`
                    order = (end, _TICKET_CREDIT, (1, service, 0, 0), customer)
                agenda.append((order, step))
        agenda.sort(key=lambda item: item[0])
        outputs: list[Output] = []
        for _key, step in agenda:
            outputs.extend(step())
        self._note_released(released, limit + 1 if final else limit)
        self._next_due = None
        return outputs

    def next_due(self) -> int | None:
        """The earliest instant at which `release` has anything to do (cached).

        A held ticket credit is due at its `decided_at` (released once the limit is past
        it; `release` compares exactly), a period end or an availability report at its end.
        """
        if self._next_due is None:
            candidates: list[int] = [_NEVER]
            for customer in self._customers():
                account = self.accounts.get(customer)
                if account is not None and account.held:
                    candidates.append(min(key[0] for key, _ in account.held.values()))
                candidates.append(self._next_end(customer))
            candidates.extend(parse_instant(report["at"]) for report in self.held_reports)
            if self.first_instant is not None:
                for group in self.groups.groups():
                    candidates.extend(self.groups.ends(group, self.first_instant, None))
            self._next_due = min(candidates)
        return None if self._next_due == _NEVER else self._next_due

    def _due_at(self, instant: int) -> None:
        if self._next_due is not None and instant < self._next_due:
            self._next_due = instant

    def _customers(self) -> list[str]:
        """Owned customers, in order: every one with a contract or an account (cached)."""
        if self._customer_list is None:
            known = set(self.book.customers()) | set(self.accounts)
            self._customer_list = sorted(c for c in known if self.owns(c))
        return self._customer_list

    def _next_end(self, customer: str) -> int:
        """The customer's next period end not yet closed (cached; _NEVER: none)."""
        end = self._ends.get(customer)
        if end is None:
            ends = self._period_ends(customer, None)
            end = self._ends[customer] = ends[0] if ends else _NEVER
        return end

    def _forget_schedule(self) -> None:
        """Contracts or the earliest input changed: period ends and customers may have."""
        self._next_due = None
        self._ends.clear()
        self._customer_list = None

    def _note_released(self, customers: set[str], through: int) -> None:
        """Every held breach of `customers` decided before `through` has been allocated."""
        for customer in customers:
            account = self.account(customer)
            if account.released_through is None or through > account.released_through:
                account.released_through = through
                self.dirty.add(customer)

    def _period_ends(self, customer: str, limit: int | None) -> list[int]:
        """The period ends of `customer` not yet closed and at or before `limit`.

        With `limit` None: only the next one.
        """
        if self.first_instant is None:
            return []
        zone = self.book.timezone_of(customer)
        first_effective = self.book.first_effective(customer)
        if zone is None or first_effective is None:
            return []
        account = self.accounts.get(customer)
        closed = None if account is None else account.closed_through
        if closed is None:
            period = period_of(max(self.first_instant, first_effective), zone)
        else:
            period = period_of(closed, zone)  # the period that starts at the last end
        ends: list[int] = []
        while True:
            end = period_bounds(period, zone)[1]
            if limit is None:
                return [end]
            if end > limit:
                return ends
            ends.append(end)
            period = next_period(period)

    # -- allocation -------------------------------------------------------------------------

    def cap_amount(
        self, contract: CompiledContract, policy: CompiledPolicy | None = None
    ) -> Decimal | None:
        """The contract's cap as an amount, under the tier terms of `policy` (default: the
        first version)."""
        tier = (policy or self.policy).tiers.get(contract.tier)
        terms = None if tier is None else tier.credits
        if terms is None or terms.monthly_cap is None:
            return None
        return money(terms.monthly_cap / HUNDRED * contract.monthly_fee)

    def _allocate(
        self,
        customer: str,
        contract: CompiledContract,
        period: Period,
        amount: Decimal,
        policy: CompiledPolicy,
    ) -> tuple[Decimal, bool, PeriodAccount]:
        account = self.account(customer).period(period)
        cap = self.cap_amount(contract, policy)
        capped = False
        if cap is not None:
            remaining = cap - account.credits_total
            if remaining < amount:
                amount = max(remaining, ZERO)
                capped = True
        account.credits_total += amount
        account.credits += 1
        self.dirty.add(customer)
        return amount, capped, account

    def _ticket_credit(self, customer: str, breach: Output) -> list[Output]:
        account = self.account(customer)
        del account.held[breach["event_id"]]
        self.dirty.add(customer)
        decided_at = parse_instant(breach["decided_at"])
        contract = self.book.covering(customer, decided_at)
        tier = self.breach_policy(breach).tiers.get(breach["tier"])
        terms = None if tier is None else tier.credits
        if contract is None or terms is None:
            return []  # no contract, or outside its term: no credit
        percent = terms.per_breach[breach["metric"]]
        period = self._period_of(decided_at, contract.timezone)
        amount = money(percent / HUNDRED * contract.monthly_fee)
        # the cap: the contract tier's, in the version in force at the decision
        in_force = self.versions.in_force(decided_at).policy
        amount, capped, totals = self._allocate(customer, contract, period, amount, in_force)
        credit: Output = {
            "event_id": output_event_id("sla.credit", breach["event_id"]),
            "type": "sla.credit",
            "ticket_id": breach["ticket_id"],
            "customer_id": customer,
            "tier": breach["tier"],
            "metric": breach["metric"],
            "at": breach["at"],
            "period": period,
            "decided_at": breach["decided_at"],
            "amount": str(amount),
            "currency": contract.currency,
            "percent": str(percent),
            "capped": capped,
            "period_total": str(totals.credits_total),
            "breach_event_id": breach["event_id"],
            "service_id": None,
            "policy_version": breach.get("policy_version", self.versions.first.version_id),
        }
        self.counters.count_credit(credit)
        return [credit]

    def period_contract(self, customer: str, end: int) -> CompiledContract | None:
        """The contract that governs a period ending at `end` (E): the one in force during
        the period's last instant, E - 1 us (docs/semantics.md: Statements and earn-back).

        A change effective exactly at E (the usual "from the 1st") governs the next period
        only, and a withdrawal at E leaves the closing period its statement. Statements,
        earn-back and availability credits all ask this one question.
        """
        return self.book.in_force(customer, end - 1)

    def period_version(self, end: int) -> PolicyVersion:
        """The policy version whose terms govern a period ending at `end`: the one in
        force during its last instant, E - 1 us (the same rule as `period_contract`)."""
        return self.versions.in_force(end - 1)

    def _availability_contract(self, customer: str, end: int) -> CompiledContract | None:
        """The contract of a service period ending at E, if the credited month's last
        instant (E - 1 us) is inside its term."""
        contract = self.period_contract(customer, end)
        if contract is None or not contract.in_term(end - 1):
            return None
        return contract

    def _availability_credit(self, customer: str, report: Output) -> list[Output]:
        end = parse_instant(report["at"])
        contract = self._availability_contract(customer, end)
        if contract is None:
            return []
        percent = self.availability_percent(self.policy, report)
        if percent is None:
            return []
        period = period_of(end - 1, contract.timezone)
        amount = money(percent / HUNDRED * contract.monthly_fee)
        version = self.period_version(end)
        amount, capped, totals = self._allocate(customer, contract, period, amount, version.policy)
        totals.availability_total += amount
        credit: Output = {
            "event_id": output_event_id("sla.credit", report["event_id"], customer),
            "type": "sla.credit",
            "ticket_id": None,
            "customer_id": customer,
            "tier": contract.tier,
            "metric": "availability",
            "at": report["at"],
            "period": period,
            "decided_at": report["at"],
            "amount": str(amount),
            "currency": contract.currency,
            "percent": str(percent),
            "capped": capped,
            "period_total": str(totals.credits_total),
            "breach_event_id": report["event_id"],
            "service_id": report["service_id"],
            "policy_version": version.version_id,
        }
        self.counters.count_credit(credit)
        return [credit]

    # -- period end -------------------------------------------------------------------------

    def _close_group(self, group: str, end: int) -> list[Output]:
        assert self.first_instant is not None  # a month end is only due after the first input
        outputs = self.groups.close(group, end, self.first_instant)
        self.counters.group_statements += len(outputs)
        self._groups_changed()
        return outputs

    def _groups_changed(self) -> None:
        if self.groups.dirty:
            self.groups.dirty = False
            self.meta_dirty = True

    def _close(self, customer: str, end: int) -> list[Output]:
        """Period-end work at `end` for one customer: its statement, then its earn-back."""
        account = self.account(customer)
        account.closed_through = end
        self._ends.pop(customer, None)
        self.dirty.add(customer)
        contract = self.period_contract(customer, end)
        if contract is None:
            return []
        period = period_of(end - 1, contract.timezone)
        start, _ = period_bounds(period, contract.timezone)
        if contract.term_start is not None and end <= contract.term_start:
            return []
        if contract.term_end is not None and start >= contract.term_end:
            return []
        first_effective = self.book.first_effective(customer)
        if first_effective is not None and end <= first_effective:
            return []
        version = self.period_version(end)
        outputs = [self._statement(account, contract, period, start, end, version)]
        earned = self._earn_back(account, contract, period, end, version)
        if earned is not None:
            outputs.append(earned)
        self._prune(account, contract, period, version.policy)
        return outputs

    def earn_back_terms(
        self, contract: CompiledContract, policy: CompiledPolicy | None = None
    ) -> tuple[int, Decimal] | None:
        """The contract tier's earn-back terms in `policy` (default: the first version)."""
        tier = (policy or self.policy).tiers.get(contract.tier)
        terms = None if tier is None else tier.credits
        if terms is None or terms.earn_back is None:
            return None
        return terms.earn_back.months, terms.earn_back.min_compliance

    def _compliant(self, account: PeriodAccount | None, minimum: Decimal) -> bool:
        overall = None if account is None else account.overall()
        return overall is None or overall >= minimum

    def _statement(
        self,
        account: CustomerAccount,
        contract: CompiledContract,
        period: Period,
        start: int,
        end: int,
        version: PolicyVersion,
    ) -> Output:
        totals = account.periods.get(period) or PeriodAccount()
        metrics = {
            metric: metric_figures(totals.met[i], totals.breached[i])
            for i, metric in enumerate(METRICS)
        }
        overall = metric_figures(sum(totals.met), sum(totals.breached))
        earn_back = self.earn_back_terms(contract, version.policy)
        compliant = None if earn_back is None else self._compliant(totals, earn_back[1])
        cap = self.cap_amount(contract, version.policy)
        self.counters.statements += 1
        return {
            "event_id": output_event_id("sla.statement", account.customer_id, period),
            "type": "sla.statement",
            "customer_id": account.customer_id,
            "tier": contract.tier,
            "period": period,
            "at": format_us(end),
            "period_start": format_us(start),
            "currency": contract.currency,
            "monthly_fee": str(money(contract.monthly_fee)),
            "credits_total": str(money(totals.credits_total)),
            "availability_credits_total": str(money(totals.availability_total)),
            "credit_cap": None if cap is None else str(cap),
            "credits": totals.credits,
            "metrics": metrics,
            "overall": overall,
            "compliant": compliant,
            "policy_version": version.version_id,
        }

    def _earn_back(
        self,
        account: CustomerAccount,
        contract: CompiledContract,
        period: Period,
        end: int,
        version: PolicyVersion,
    ) -> Output | None:
        """At the end of M+k: return M's ticket credits if M+1 .. M+k were all compliant,
        judged with the terms in force for M+k."""
        terms = self.earn_back_terms(contract, version.policy)
        if terms is None:
            return None
        months, minimum = terms
        earned_period = shift_period(period, -months)
        earned = account.periods.get(earned_period)
        if earned is None:
            return None
        amount = money(earned.credits_total - earned.availability_total)
        if amount <= ZERO:
            return None
        for offset in range(1, months + 1):
            if not self._compliant(
                account.periods.get(shift_period(earned_period, offset)), minimum
            ):
                return None
        self.counters.earned_back += 1
        return {
            "event_id": output_event_id(
                "sla.credit_earned_back", account.customer_id, earned_period
            ),
            "type": "sla.credit_earned_back",
            "customer_id": account.customer_id,
            "tier": contract.tier,
            "period": earned_period,
            "at": format_us(end),
            "amount": str(amount),
            "currency": contract.currency,
            "earned_through": period,
            "months": months,
            "min_compliance": str(minimum),
            "policy_version": version.version_id,
        }

    def _prune(
        self,
        account: CustomerAccount,
        contract: CompiledContract,
        period: Period,
        policy: CompiledPolicy,
    ) -> None:
        """Keep the open periods and the last `months` + 1 closed ones (the earn-back window
        and the month it just decided)."""
        terms = self.earn_back_terms(contract, policy)
        # M+k is closing: M was just decided (earned back or not); keep it one more month
        # so the customer view can still say what became of it
        keep_from = shift_period(period, -(terms[0] if terms is not None else 0))
        for old in [p for p in account.periods if p < keep_from]:
            del account.periods[old]

    # -- snapshots --------------------------------------------------------------------------

    def meta_record(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "watermarks": dict(sorted(self.watermarks.items())),
            "first_instant": self.first_instant,
            "held_reports": self.held_reports,
        }
        if self.groups.months or self.groups.closed:  # a policy with groups
            meta["groups"] = self.groups.to_record()
        return meta

    def restore_meta(self, meta: dict[str, Any]) -> None:
        self.watermarks = {str(s): int(c) for s, c in meta.get("watermarks", {}).items()}
        self.first_instant = meta.get("first_instant")
        self.held_reports = list(meta.get("held_reports", []))
        self.groups.restore(meta.get("groups", {}))
        self._forget_schedule()

    def restore_account(self, record: list[Any]) -> None:
        account = CustomerAccount.from_record(record)
        self.accounts[account.customer_id] = account
        self._forget_schedule()


def metric_figures(met: int, breached: int) -> dict[str, Any]:
    value = compliance(met, breached)
    return {"met": met, "breached": breached, "compliance": None if value is None else str(value)}


def _bind(
    function: Callable[[str, Any], list[Output]], customer: str, item: Any
) -> Callable[[], list[Output]]:
    return lambda: function(customer, item)
