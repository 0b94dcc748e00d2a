"""The report's figures: pure functions of the output events, a period and (optionally) the policy.

Counting follows the statements' rules, so a report and the month's `sla.statement` agree:
each `sla.breach` is one *breached* outcome in the period that contains its `decided_at`;
each `sla.completed` with outcome `met` is one *met* outcome in the period that contains
its `at`, unless the same (ticket, metric, cycle) was counted met before. Compliance is
met / (met + breached), rounded half-up to 4 places; none without outcomes.

A customer's month is the calendar month in its contract's time zone (from the month's
statement when the outputs have one, else from the policy, else the report's time zone).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from slaclock.processors.engine.instants import format_us, from_us, parse_instant, to_us
from slaclock.processors.report.outputs import Output, Outputs, ReportInputError
from slaclock.schemas.common import Metric, Priority

if TYPE_CHECKING:
    from slaclock.processors.report.groups import GroupFigures

METRICS: tuple[str, ...] = tuple(m.value for m in Metric)
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
FOUR_PLACES = Decimal("0.0001")
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
ZERO = Decimal("0.00")
DAILY_TREND_MAX_DAYS = 62
CLOSE_CALLS = 10
TIME_USED_BINS: tuple[tuple[str, Decimal, Decimal | None], ...] = (
    # label, lower bound (exclusive except the first), upper bound (inclusive); None: open
    ("0-25%", Decimal(-1), Decimal("0.25")),
    ("25-50%", Decimal("0.25"), Decimal("0.5")),
    ("50-75%", Decimal("0.5"), Decimal("0.75")),
    ("75-90%", Decimal("0.75"), Decimal("0.9")),
    ("90-100%", Decimal("0.9"), Decimal(1)),
    ("100-150%", Decimal(1), Decimal("1.5")),
    ("150-200%", Decimal("1.5"), Decimal(2)),
    (">200%", Decimal(2), None),
)
"""Bins of time used / target; a completion at exactly 100% is met and falls in 90-100%."""


def ratio4(numerator: int, denominator: int) -> Decimal | None:
    """numerator / denominator rounded half-up to 4 places; None when the denominator is 0."""
    if denominator == 0:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(FOUR_PLACES, ROUND_HALF_UP)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- periods -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A half-open interval of instants [start_us, end_us) and the zone its days are in."""

    start_us: int
    end_us: int
    timezone: str
    period: str | None = None  # "YYYY-MM" when the window is one calendar month

    def contains(self, instant: int) -> bool:
        return self.start_us <= instant < self.end_us

    @property
    def label(self) -> str:
        if self.period is not None:
            return self.period
        zone = ZoneInfo(self.timezone)
        first = from_us(self.start_us).astimezone(zone)
        last = from_us(self.end_us - 1).astimezone(zone)
        return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} ({self.timezone})"


def _local_midnight(day: date, zone: ZoneInfo) -> int:
    """The first instant of a local date (where midnight is skipped, the instant the gap ends)."""
    naive = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - localised on the next line
    aware = naive.replace(tzinfo=zone)
    instant = to_us(aware)
    if from_us(instant).astimezone(zone).replace(tzinfo=None) != naive:
        # midnight falls in a DST gap: its fold=0 reading lies before the gap; take the gap's end
        instant = to_us(aware.replace(fold=1))
    return instant


def parse_period(text: str) -> tuple[int, int]:
    try:
        first = datetime.strptime(text, "%Y-%m")  # noqa: DTZ007 - a month name, not an instant
    except ValueError:
        raise ReportInputError(
            f"--period {text!r}: expected a month as YYYY-MM, e.g. 2026-10"
        ) from None
    return first.year, first.month


def month_window(period: str, timezone: str) -> Window:
    year, month = parse_period(period)
    zone = ZoneInfo(timezone)
    after = date(year + (month == 12), month % 12 + 1, 1)
    return Window(
        _local_midnight(date(year, month, 1), zone),
        _local_midnight(after, zone),
        timezone,
        f"{year:04d}-{month:02d}",
    )


def latest_period(outputs: Outputs, timezone: str) -> str:
    """The month (in `timezone`) of the latest breach or completion; a report's default."""
    instants = [parse_instant(o["at"]) for o in (*outputs.breaches, *outputs.completions)]
    if not instants:
        periods = sorted(s["period"] for s in outputs.statements) or sorted(
            r["period"] for r in outputs.availability_reports
        )
        if not periods:
            raise ReportInputError("the outputs hold no outcomes; give --period or --from/--to")
        return str(periods[-1])
    return from_us(max(instants)).astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def next_period(period: str, months: int = 1) -> str:
    year, month = parse_period(period)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# --- figures -------------------------------------------------------------------------------


@dataclass
class Tally:
    met: int = 0
    breached: int = 0

    @property
    def total(self) -> int:
        return self.met + self.breached

    @property
    def compliance(self) -> Decimal | None:
        return ratio4(self.met, self.total)

    def add(self, other: Tally) -> None:
        self.met += other.met
        self.breached += other.breached


@dataclass(frozen=True)
class BreachRow:
    ticket_id: str
    customer_id: str
    tier: str
    priority: str
    metric: str
    cycle: int
    deadline: str
    decided_at: str
    target_seconds: int
    overrun_seconds: int | float | None  # counted time past the target, once completed
    completed_at: str | None
    rule: str


@dataclass(frozen=True)
class CloseCall:
    ticket_id: str
    customer_id: str
    metric: str
    priority: str
    cycle: int
    at: str
    elapsed_seconds: int | float
    target_seconds: int
    used: Decimal  # elapsed / target, 4 places


@dataclass(frozen=True)
class CreditFigures:
    currency: str
    count: int
    capped_count: int
    credited: Decimal  # the amounts credited, after the cap
    gross: Decimal | None  # before the cap (needs the monthly fee)
    cap: Decimal | None  # the cap as an amount (None: no cap or unknown, see cap_known)
    cap_known: bool
    cap_used: Decimal | None  # credited / cap, 4 places
    availability: Decimal  # the part of `credited` from service availability
    earned_back: Decimal
    net: Decimal  # credited - earned back
    earn_back_status: str
    source: str  # "statement" or "credit events"


@dataclass(frozen=True)
class ServiceRow:
    service_id: str
    period: str
    uptime_percent: str
    target_percent: str
    met: bool
    measured_seconds: int | float
    downtime_seconds: int | float
    excused_seconds: int | float
    budget_seconds: int | float
    alerts: int  # availability warnings and breaches of the period
    breached_at: str | None


@dataclass
class Section:
    """The figures of one customer, or of all customers together (`customer_id` None)."""

    customer_id: str | None
    window: Window
    tiers: list[str] = field(default_factory=list)
    metrics: dict[str, Tally] = field(default_factory=lambda: {m: Tally() for m in METRICS})
    overall: Tally = field(default_factory=Tally)
    by_priority: dict[str, dict[str, Tally]] = field(
        default_factory=lambda: {m: {p: Tally() for p in PRIORITIES} for m in METRICS}
    )
    by_tier: dict[str, dict[str, Tally]] = field(default_factory=dict)
    trend_unit: str = "day"
    trend: dict[str, dict[str, int]] = field(default_factory=dict)  # bucket -> metric -> n
    time_used: dict[str, int] = field(default_factory=lambda: {b[0]: 0 for b in TIME_USED_BINS})
    closest: list[CloseCall] = field(default_factory=list)
    breaches: list[BreachRow] = field(default_factory=list)
    credits: list[CreditFigures] = field(default_factory=list)
    statement: Output | None = None
    availability: list[ServiceRow] = field(default_factory=list)
    min_compliance: Decimal | None = None  # the contract's compliance figure (earn-back)
    targets: dict[str, dict[str, int]] = field(default_factory=dict)  # metric -> priority -> s
    notes: list[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return bool(
            self.overall.total
            or self.credits
            or self.statement is not None
            or self.availability
            or sum(self.time_used.values())
        )


@dataclass
class Report:
    window_label: str
    sections: list[Section]  # "all customers" first unless the report is for one customer
    source: str
    notes: list[str] = field(default_factory=list)
    groups: GroupFigures | None = None  # "By group" (processors.report.groups)


@dataclass(frozen=True)
class ContractInfo:
    """What the report uses of a contract in the policy (all optional without --policy)."""

    tier: str
    monthly_fee: Decimal
    currency: str
    timezone: str
    monthly_cap: Decimal | None
    earn_back_months: int | None
    min_compliance: Decimal | None
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class TierInfo:
    calendar: str
    pause_on: tuple[str, ...]
    targets: Mapping[str, Mapping[str, int]]  # metric -> priority -> seconds


@dataclass(frozen=True)
class PolicyInfo:
    contracts: Mapping[str, ContractInfo] = field(default_factory=dict)
    tiers: Mapping[str, TierInfo] = field(default_factory=dict)
    group_zones: Mapping[str, str] = field(default_factory=dict)  # group -> calendar's zone


@dataclass(frozen=True)
class ReportRequest:
    period: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    customer: str | None = None
    timezone: str = "UTC"


def build_report(
    outputs: Outputs, request: ReportRequest, policy: PolicyInfo, source: str
) -> Report:
    """All figures of a report. Raises `ReportInputError` for an unknown customer or no data."""
    known = outputs.customers() | set(policy.contracts)
    if request.customer is not None and request.customer not in known:
        sample = ", ".join(sorted(known)[:8]) or "none"
        raise ReportInputError(
            f"--customer {request.customer!r}: no such customer in the outputs or the policy "
            f"(customers: {sample})"
        )
    customers = [request.customer] if request.customer is not None else sorted(known)
    index = _Index(outputs)
    sections = [
        _customer_section(outputs, index, request, policy, customer) for customer in customers
    ]
    if not any(section.has_data for section in sections) and not _services_in(
        outputs, _overall_window(request, sections)
    ):
        raise ReportInputError(
            f"no outputs in {_overall_window(request, sections).label}"
            f"{' for customer ' + repr(request.customer) if request.customer else ''}; "
            f"{index.coverage()}; choose another --period or --from/--to"
        )
    notes = _notes(outputs)
    if request.customer is None:
        overall = _overall_section(sections, outputs, request)
        sections = [overall, *[s for s in sections if s.has_data or s.statement is not None]]
    return Report(_overall_window(request, sections).label, sections, source, notes)


class _Index:
    """Look-ups over the whole outputs: the first met completion of each key, final outcomes."""

    def __init__(self, outputs: Outputs) -> None:
        self.first_met: dict[tuple[str, str, int], Output] = {}
        self.last_completion: dict[tuple[str, str, int], Output] = {}
        for completion in outputs.completions:
            key = (completion["ticket_id"], completion["metric"], completion["cycle"])
            self.last_completion[key] = completion
            if completion["outcome"] == "met" and key not in self.first_met:
                self.first_met[key] = completion
        instants = [parse_instant(o["at"]) for o in (*outputs.breaches, *outputs.completions)]
        self.first = min(instants) if instants else None
        self.last = max(instants) if instants else None

    def coverage(self) -> str:
        if self.first is None or self.last is None:
            return "the outputs hold no breaches or completions"
        return f"the outputs cover {format_us(self.first)} to {format_us(self.last)}"


def _decided(breach: Output) -> int:
    return parse_instant(breach.get("decided_at") or breach["at"])


def _statement_for(outputs: Outputs, customer: str, period: str) -> Output | None:
    found = None
    for statement in outputs.statements:
        if statement["customer_id"] == customer and statement["period"] == period:
            found = statement
    return found


def _customer_window(
    outputs: Outputs, request: ReportRequest, contract: ContractInfo | None, customer: str
) -> tuple[Window, Output | None]:
    if request.period is None:
        assert request.start_us is not None and request.end_us is not None
        return Window(request.start_us, request.end_us, request.timezone), None
    statement = _statement_for(outputs, customer, request.period)
    timezone = contract.timezone if contract is not None else request.timezone
    if statement is not None:
        return (
            Window(
                parse_instant(statement["period_start"]),
                parse_instant(statement["at"]),
                timezone,
                request.period,
            ),
            statement,
        )
    return month_window(request.period, timezone), None


def _overall_window(request: ReportRequest, sections: list[Section]) -> Window:
    if request.period is None:
        assert request.start_us is not None and request.end_us is not None
        return Window(request.start_us, request.end_us, request.timezone)
    if len(sections) == 1:
        return sections[0].window
    return month_window(request.period, request.timezone)


def _customer_section(
    outputs: Outputs,
    index: _Index,
    request: ReportRequest,
    policy: PolicyInfo,
    customer: str,
) -> Section:
    contract = policy.contracts.get(customer)
    window, statement = _customer_window(outputs, request, contract, customer)
    section = Section(customer, window, statement=statement)
    tiers: set[str] = set()
    trend_days = _trend_buckets(window)
    section.trend_unit = "day" if trend_days[1] == "day" else "week"
    section.trend = {bucket: {m: 0 for m in METRICS} for bucket in trend_days[0]}
    zone = ZoneInfo(window.timezone)

    def bucket_of(instant: int) -> str:
        local = from_us(instant).astimezone(zone).date()
        if section.trend_unit == "week":
            local = local - timedelta(days=local.weekday())
        return local.isoformat()

    def count(output: Output, met: bool) -> None:
        metric, priority, tier = output["metric"], output["priority"], output["tier"]
        tiers.add(tier)
        for tally in (
            section.metrics[metric],
            section.overall,
            section.by_priority[metric][priority],
            section.by_tier.setdefault(tier, {m: Tally() for m in METRICS})[metric],
        ):
            if met:
                tally.met += 1
            else:
                tally.breached += 1

    for breach in outputs.breaches:
        if breach["customer_id"] != customer:
            continue
        decided = _decided(breach)
        if not window.contains(decided):
            continue
        count(breach, met=False)
        section.trend.setdefault(bucket_of(decided), {m: 0 for m in METRICS})[breach["metric"]] += 1
        section.breaches.append(_breach_row(breach, index, policy))
    for completion in index.first_met.values():
        if completion["customer_id"] == customer and window.contains(
            parse_instant(completion["at"])
        ):
            count(completion, met=True)
    closest: list[CloseCall] = []
    for completion in outputs.completions:
        if completion["customer_id"] != customer:
            continue
        if not window.contains(parse_instant(completion["at"])):
            continue
        used = Decimal(str(completion["elapsed_seconds"])) / Decimal(completion["target_seconds"])
        section.time_used[_bin_of(used)] += 1
        if completion["outcome"] == "met":
            closest.append(
                CloseCall(
                    completion["ticket_id"],
                    customer,
                    completion["metric"],
                    completion["priority"],
                    completion["cycle"],
                    completion["at"],
                    completion["elapsed_seconds"],
                    completion["target_seconds"],
                    used.quantize(FOUR_PLACES, ROUND_HALF_UP),
                )
            )
        tiers.add(completion["tier"])
    closest.sort(key=lambda c: (-c.used, c.at, c.ticket_id, c.metric, c.cycle))
    section.closest = closest[:CLOSE_CALLS]
    section.breaches.sort(
        key=lambda b: (b.decided_at, b.ticket_id, METRICS.index(b.metric), b.cycle)
    )
    credits = _credit_figures(outputs, window, request, contract, customer, statement)
    section.credits = [credits] if credits is not None else []
    if contract is not None:
        tiers.add(contract.tier)
        section.min_compliance = contract.min_compliance
        tier_info = policy.tiers.get(contract.tier)
        if tier_info is not None:
            section.targets = {m: dict(p) for m, p in tier_info.targets.items()}
    elif statement is not None:
        tiers.add(statement["tier"])
    section.tiers = sorted(tiers)
    services = set(contract.services) if contract is not None else set()
    services |= {
        c["service_id"]
        for c in outputs.credits
        if c["customer_id"] == customer and c.get("service_id") and _credit_in(c, window, request)
    }
    section.availability = [r for r in _services_in(outputs, window) if r.service_id in services]
    return section


def _trend_buckets(window: Window) -> tuple[list[str], str]:
    zone = ZoneInfo(window.timezone)
    first = from_us(window.start_us).astimezone(zone).date()
    last = from_us(window.end_us - 1).astimezone(zone).date()
    days = (last - first).days + 1
    if days <= DAILY_TREND_MAX_DAYS:
        return [(first + timedelta(days=n)).isoformat() for n in range(days)], "day"
    monday = first - timedelta(days=first.weekday())
    weeks = []
    while monday <= last:
        weeks.append(monday.isoformat())
        monday += timedelta(days=7)
    return weeks, "week"


def _bin_of(used: Decimal) -> str:
    for label, low, high in TIME_USED_BINS:
        if used > low and (high is None or used <= high):
            return label
    return TIME_USED_BINS[-1][0]


def format_duration(seconds: int | float) -> str:
    """1h30m style, as targets are written in the policy."""
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    if whole or not parts:
        parts.append(f"{whole}s")
    return "".join(parts)


def _breach_row(breach: Output, index: _Index, policy: PolicyInfo) -> BreachRow:
    key = (breach["ticket_id"], breach["metric"], breach["cycle"])
    completion = index.last_completion.get(key)
    overrun = None
    completed_at = None
    if completion is not None and completion["outcome"] == "breached":
        elapsed = completion["elapsed_seconds"]
        overrun = elapsed - completion["target_seconds"]
        completed_at = completion["at"]
    target = breach["target_seconds"]
    tier = policy.tiers.get(breach["tier"])
    where = (
        f" on the {tier.calendar} calendar"
        + (f", paused while {'/'.join(tier.pause_on)}" if tier.pause_on else "")
        if tier is not None
        else ""
    )
    cycle = (
        f" cycle {breach['cycle']}"
        if breach["metric"] in ("next_response", "periodic_update")
        else ""
    )
    rule = (
        f"{breach['metric']}{cycle}: the {breach['tier']} target for {breach['priority']} is "
        f"{format_duration(target)} of counted time{where}; it ran out at {breach['deadline']}"
    )
    decided = breach.get("decided_at") or breach["at"]
    if parse_instant(decided) > parse_instant(breach["at"]):
        rule += (
            f"; decided at {decided}, when a later change (priority or reopen) put the "
            "recomputed deadline in the past"
        )
    return BreachRow(
        breach["ticket_id"],
        breach["customer_id"],
        breach["tier"],
        breach["priority"],
        breach["metric"],
        breach["cycle"],
        breach["deadline"],
        decided,
        target,
        overrun,
        completed_at,
        rule,
    )


def _credit_in(credit: Output, window: Window, request: ReportRequest) -> bool:
    if request.period is not None:
        return bool(credit["period"] == request.period)
    return window.contains(_decided(credit))


def _credit_figures(
    outputs: Outputs,
    window: Window,
    request: ReportRequest,
    contract: ContractInfo | None,
    customer: str,
    statement: Output | None,
) -> CreditFigures | None:
    credits = [
        c
        for c in outputs.credits
        if c["customer_id"] == customer and _credit_in(c, window, request)
    ]
    if not credits and statement is None:
        return None
    currency = (
        statement["currency"]
        if statement is not None
        else credits[0]["currency"]
        if credits
        else (contract.currency if contract else "")
    )
    fee = (
        Decimal(statement["monthly_fee"])
        if statement is not None
        else contract.monthly_fee
        if contract is not None
        else None
    )
    availability = sum((Decimal(c["amount"]) for c in credits if c.get("service_id")), start=ZERO)
    if statement is not None:
        credited = Decimal(statement["credits_total"])
        count = int(statement["credits"])
        availability = Decimal(statement.get("availability_credits_total") or "0.00")
        cap: Decimal | None = (
            Decimal(statement["credit_cap"]) if statement.get("credit_cap") is not None else None
        )
        cap_known = True
        source = "statement"
    else:
        credited = sum((Decimal(c["amount"]) for c in credits), start=ZERO)
        count = len(credits)
        cap_known = contract is not None and request.period is not None
        cap = (
            money(contract.monthly_cap / HUNDRED * contract.monthly_fee)
            if cap_known and contract is not None and contract.monthly_cap is not None
            else None
        )
        source = "credit events"
    gross = (
        sum((money(Decimal(c["percent"]) / HUNDRED * fee) for c in credits), start=ZERO)
        if fee is not None
        else None
    )
    if statement is not None and len(credits) != count:
        gross = None  # the credit events of the period are not all in the outputs
    earned_back, status = _earn_back(outputs, request, contract, customer, credited - availability)
    return CreditFigures(
        currency=currency,
        count=count,
        capped_count=sum(1 for c in credits if c.get("capped")),
        credited=credited,
        gross=gross,
        cap=cap,
        cap_known=cap_known,
        cap_used=ratio4_decimal(credited, cap) if cap else None,
        availability=availability,
        earned_back=earned_back,
        net=credited - earned_back,
        earn_back_status=status,
        source=source,
    )


def ratio4_decimal(numerator: Decimal, denominator: Decimal) -> Decimal:
    return (numerator / denominator).quantize(FOUR_PLACES, ROUND_HALF_UP)


def _earn_back(
    outputs: Outputs,
    request: ReportRequest,
    contract: ContractInfo | None,
    customer: str,
    ticket_credits: Decimal,
) -> tuple[Decimal, str]:
    """(amount earned back, status text) for the report's month."""
    period = request.period
    if period is None:
        total = sum(
            (
                Decimal(e["amount"])
                for e in outputs.earned_back
                if e["customer_id"] == customer
                and request.start_us is not None
                and request.end_us is not None
                and request.start_us <= parse_instant(e["at"]) < request.end_us
            ),
            start=ZERO,
        )
        return total, "per month: use --period for the earn-back status of one month"
    for event in outputs.earned_back:
        if event["customer_id"] == customer and event["period"] == period:
            return Decimal(event["amount"]), (
                f"earned back on {event['at']}: every month through {event['earned_through']} "
                f"met the {event['min_compliance']} compliance"
            )
    months = contract.earn_back_months if contract is not None else None
    if months is None:
        months = next(
            (int(e["months"]) for e in outputs.earned_back if e["customer_id"] == customer), None
        )
    if ticket_credits <= 0:
        return ZERO, "nothing to earn back"
    statement = _statement_for(outputs, customer, period)
    if statement is not None and statement.get("compliant") is None and months is None:
        return ZERO, "the contract has no earn-back"
    if months is None:
        return ZERO, "unavailable: the outputs hold no later statements and no --policy was given"
    later = [next_period(period, n) for n in range(1, months + 1)]
    seen = 0
    for month in later:
        following = _statement_for(outputs, customer, month)
        if following is None:
            continue
        seen += 1
        if following.get("compliant") is False:
            overall = following.get("overall", {}).get("compliance")
            return ZERO, f"forfeited: {month} was not compliant (overall {overall})"
    return ZERO, (
        f"pending: needs {later[0]} to {later[-1]} compliant ({seen} of {months} months known)"
    )


def _services_in(outputs: Outputs, window: Window) -> list[ServiceRow]:
    rows = []
    for report in outputs.availability_reports:
        if window.period is not None:
            if report["period"] != window.period:
                continue
        elif not window.start_us < parse_instant(report["at"]) <= window.end_us:
            continue
        alerts = [
            a
            for a in outputs.availability_alerts
            if a["service_id"] == report["service_id"] and a["period"] == report["period"]
        ]
        breached_at = next(
            (a["at"] for a in alerts if a["type"] == "sla.availability_breach"), None
        )
        rows.append(
            ServiceRow(
                report["service_id"],
                report["period"],
                str(report["uptime_percent"]),
                str(report["target_percent"]),
                bool(report["met"]),
                report["measured_seconds"],
                report["downtime_seconds"],
                report["excused_seconds"],
                report["budget_seconds"],
                len(alerts),
                breached_at,
            )
        )
    rows.sort(key=lambda r: (r.service_id, r.period))
    return rows


def _overall_section(sections: list[Section], outputs: Outputs, request: ReportRequest) -> Section:
    window = _overall_window(request, sections)
    overall = Section(None, window)
    buckets: set[str] = set()
    tiers: set[str] = set()
    closest: list[CloseCall] = []
    by_currency: dict[str, list[CreditFigures]] = defaultdict(list)
    for section in sections:
        tiers.update(section.tiers)
        for metric in METRICS:
            overall.metrics[metric].add(section.metrics[metric])
            for priority in PRIORITIES:
                overall.by_priority[metric][priority].add(section.by_priority[metric][priority])
        overall.overall.add(section.overall)
        for tier, by_metric in section.by_tier.items():
            mine = overall.by_tier.setdefault(tier, {m: Tally() for m in METRICS})
            for metric, tally in by_metric.items():
                mine[metric].add(tally)
        overall.trend_unit = section.trend_unit
        buckets.update(section.trend)
        for label, n in section.time_used.items():
            overall.time_used[label] += n
        closest.extend(section.closest)
        overall.breaches.extend(section.breaches)
        for credit in section.credits:
            by_currency[credit.currency].append(credit)
    overall.trend = {b: {m: 0 for m in METRICS} for b in sorted(buckets)}
    for section in sections:
        for bucket, counts in section.trend.items():
            for name, n in counts.items():
                overall.trend[bucket][name] += n
    closest.sort(key=lambda c: (-c.used, c.at, c.ticket_id, c.metric, c.cycle))
    overall.closest = closest[:CLOSE_CALLS]
    overall.breaches.sort(
        key=lambda b: (b.decided_at, b.ticket_id, METRICS.index(b.metric), b.cycle)
    )
    overall.credits = [
        _sum_credits(currency, items) for currency, items in sorted(by_currency.items())
    ]
    overall.tiers = sorted(tiers)
    overall.availability = _services_in(outputs, window)
    return overall


def _sum_credits(currency: str, items: Iterable[CreditFigures]) -> CreditFigures:
    items = list(items)
    gross_known = all(i.gross is not None for i in items)
    credited = sum((i.credited for i in items), start=ZERO)
    earned = sum((i.earned_back for i in items), start=ZERO)
    return CreditFigures(
        currency=currency,
        count=sum(i.count for i in items),
        capped_count=sum(i.capped_count for i in items),
        credited=credited,
        gross=sum((i.gross or ZERO for i in items), start=ZERO) if gross_known else None,
        cap=None,
        cap_known=False,
        cap_used=None,
        availability=sum((i.availability for i in items), start=ZERO),
        earned_back=earned,
        net=credited - earned,
        earn_back_status="see each customer",
        source="customers",
    )


def _notes(outputs: Outputs) -> list[str]:
    notes = []
    if not outputs.statements:
        notes.append(
            "The outputs hold no monthly statements: credit figures come from the credit "
            "events; the cap needs the policy (--policy) and the earn-back status needs the "
            "statements of the following months."
        )
    if not outputs.availability_reports:
        notes.append("The outputs hold no service availability reports: availability is not shown.")
    return notes
