"""What changes between two policy documents, rule by rule, in words a support manager reads.

`diff_policies(a, b)` compares two validated policies and returns typed `RuleChange`s in a
fixed order: the default tier, tiers added or removed, then per tier its calendar, targets,
pauses, warnings and credits; calendars (time zone, weekly hours, holidays); services
(target, calendar, time zone, status weights, maintenance notice, warnings, credit bands).
Contracts (`customers:`) are not rules: they change through the contracts feed and are not
compared. Pure: no I/O; the CLI (`slaclock policy diff`) and the what-if report render it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from slaclock.schemas.policy import (
    CalendarSpec,
    CreditTerms,
    Policy,
    ServiceSpec,
    TierSpec,
    format_duration,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEP = " · "


class Area(StrEnum):
    """Where a change is, for grouping."""

    TIERS = "tiers"
    TARGETS = "targets"
    CALENDARS = "calendars"
    WARNINGS = "warnings"
    CREDITS = "credits"
    SERVICES = "services"


class Rule(StrEnum):
    """What kind of rule changed."""

    DEFAULT_TIER = "default_tier"
    TIER = "tier"
    TIER_CALENDAR = "tier_calendar"
    TARGET = "target"
    PAUSE_ON = "pause_on"
    WARNINGS = "warnings"
    PER_BREACH = "per_breach"
    MONTHLY_CAP = "monthly_cap"
    EARN_BACK = "earn_back"
    CALENDAR = "calendar"
    TIMEZONE = "timezone"
    HOURS = "hours"
    HOLIDAYS = "holidays"
    SERVICE = "service"
    SERVICE_TARGET = "service_target"
    SERVICE_CALENDAR = "service_calendar"
    SERVICE_TIMEZONE = "service_timezone"
    DOWN_ON = "down_on"
    MAINTENANCE_NOTICE = "maintenance_notice"
    SERVICE_WARNINGS = "service_warnings"
    CREDIT_BAND = "credit_band"


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One rule that differs: `before` / `after` as written (None: absent), and `effect`,
    a few words on what it does (`shorter`, `added`, `stricter`, ...)."""

    area: Area
    rule: Rule
    path: tuple[str, ...]  # where in the document, e.g. ("tiers", "gold", "targets", ...)
    subject: str  # e.g. "enterprise · first_response · urgent"
    before: str | None
    after: str | None
    effect: str = ""

    def text(self) -> str:
        """`enterprise · first_response · urgent: 15m → 10m (shorter)`."""
        if self.before is None and self.after is None:
            change = self.effect
        else:
            change = f"{self.before or 'none'} → {self.after or 'none'}"
            if self.effect:
                change += f" ({self.effect})"
        return f"{self.subject}: {change}"

    def to_json(self) -> dict[str, object]:
        return {
            "area": self.area.value,
            "rule": self.rule.value,
            "path": ".".join(self.path),
            "subject": self.subject,
            "before": self.before,
            "after": self.after,
            "effect": self.effect,
            "text": self.text(),
        }


def diff_policies(a: Policy, b: Policy) -> list[RuleChange]:
    """Every rule that differs from `a` to `b`, in document order (see the module doc)."""
    changes: list[RuleChange] = []
    if a.default_tier != b.default_tier:
        changes.append(
            RuleChange(
                Area.TIERS,
                Rule.DEFAULT_TIER,
                ("default_tier",),
                "default tier",
                a.default_tier,
                b.default_tier,
                "tickets without a tier or contract",
            )
        )
    for name in _union(a.tiers, b.tiers):
        changes.extend(_tier(name, a.tiers.get(name), b.tiers.get(name), b.default_tier))
    for name in _union(a.calendars, b.calendars):
        users = sorted(n for n, t in b.tiers.items() if t.calendar == name) or sorted(
            n for n, t in a.tiers.items() if t.calendar == name
        )
        users += sorted(n for n, s in b.services.items() if s.calendar == name)
        changes.extend(_calendar(name, a.calendars.get(name), b.calendars.get(name), users))
    for name in _union(a.services, b.services):
        changes.extend(_service(name, a.services.get(name), b.services.get(name)))
    return changes


def _union(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """Keys of `a` in order, then those only in `b`."""
    return [*a, *(k for k in b if k not in a)]


# -- tiers -------------------------------------------------------------------------------


def _tier(name: str, a: TierSpec | None, b: TierSpec | None, default: str) -> list[RuleChange]:
    path = ("tiers", name)
    if a is None or b is None:
        added = a is None
        effect = "added" if added else f"removed: its tickets move to the default tier, {default}"
        return [RuleChange(Area.TIERS, Rule.TIER, path, f"tier {name}", None, None, effect)]
    changes: list[RuleChange] = []
    if a.calendar != b.calendar:
        changes.append(
            RuleChange(
                Area.CALENDARS,
                Rule.TIER_CALENDAR,
                (*path, "calendar"),
                f"{name}{SEP}calendar",
                a.calendar,
                b.calendar,
            )
        )
    targets_a, targets_b = _targets(a), _targets(b)
    for metric in _union(targets_a, targets_b):
        by_a, by_b = targets_a.get(metric, {}), targets_b.get(metric, {})
        for priority in _union(by_a, by_b):
            before, after = by_a.get(priority), by_b.get(priority)
            if before == after:
                continue
            changes.append(
                RuleChange(
                    Area.TARGETS,
                    Rule.TARGET,
                    (*path, "targets", str(metric), str(priority)),
                    f"{name}{SEP}{metric}{SEP}{priority}",
                    "no target" if before is None else format_duration(before),
                    "no target" if after is None else format_duration(after),
                    _target_effect(before, after),
                )
            )
    pause_a = sorted(str(s) for s in a.pause_on)
    pause_b = sorted(str(s) for s in b.pause_on)
    if pause_a != pause_b:
        gained, lost = set(pause_b) - set(pause_a), set(pause_a) - set(pause_b)
        parts = []
        if gained:
            parts.append("also pauses on " + ", ".join(sorted(gained)))
        if lost:
            parts.append("no longer pauses on " + ", ".join(sorted(lost)))
        changes.append(
            RuleChange(
                Area.TARGETS,
                Rule.PAUSE_ON,
                (*path, "pause_on"),
                f"{name}{SEP}pauses on",
                ", ".join(pause_a) or "nothing",
                ", ".join(pause_b) or "nothing",
                "; ".join(parts),
            )
        )
    if tuple(a.warnings) != tuple(b.warnings):
        changes.append(_warnings(Rule.WARNINGS, (*path, "warnings"), name, a.warnings, b.warnings))
    changes.extend(_credits(name, path, a.credits, b.credits))
    return changes


def _targets(tier: TierSpec) -> dict[str, dict[str, int]]:
    return {
        str(metric): {str(priority): seconds for priority, seconds in by_priority.items()}
        for metric, by_priority in tier.targets.items()
    }


def _target_effect(before: int | None, after: int | None) -> str:
    if before is None:
        return "now tracked"
    if after is None:
        return "no longer tracked"
    return "shorter" if after < before else "longer"


def _percent(value: Decimal) -> str:
    return f"{_plain(value * 100)}%"


def _plain(value: Decimal) -> str:
    """A decimal without trailing zeros: 2.50 -> 2.5, 20 -> 20."""
    text = format(value.normalize(), "f")
    return text


def _warnings(
    rule: Rule, path: tuple[str, ...], owner: str, a: Iterable[Decimal], b: Iterable[Decimal]
) -> RuleChange:
    before, after = list(a), list(b)
    added = [f for f in after if f not in before]
    removed = [f for f in before if f not in after]
    parts = []
    if added:
        parts.append("adds " + ", ".join(_percent(f) for f in added))
    if removed:
        parts.append("drops " + ", ".join(_percent(f) for f in removed))
    of_what = "of the target" if rule is Rule.WARNINGS else "of the downtime budget"
    return RuleChange(
        Area.WARNINGS,
        rule,
        path,
        f"{owner}{SEP}warnings ({of_what})",
        ", ".join(_percent(f) for f in before) or "none",
        ", ".join(_percent(f) for f in after) or "none",
        "; ".join(parts),
    )


def _credits(
    name: str, path: tuple[str, ...], a: CreditTerms | None, b: CreditTerms | None
) -> list[RuleChange]:
    changes: list[RuleChange] = []
    per_a = {} if a is None else {str(m): p for m, p in a.per_breach.items()}
    per_b = {} if b is None else {str(m): p for m, p in b.per_breach.items()}
    for metric in _union(per_a, per_b):
        before, after = per_a.get(metric), per_b.get(metric)
        if before == after:
            continue
        if before is None:
            effect = "now earns a credit"
        elif after is None:
            effect = "no longer earns a credit"
        else:
            effect = "more" if after > before else "less"
        changes.append(
            RuleChange(
                Area.CREDITS,
                Rule.PER_BREACH,
                (*path, "credits", "per_breach", str(metric)),
                f"{name}{SEP}credit per {metric} breach",
                None if before is None else f"{_plain(before)}% of the fee",
                None if after is None else f"{_plain(after)}% of the fee",
                effect,
            )
        )
    cap_a = None if a is None else a.monthly_cap
    cap_b = None if b is None else b.monthly_cap
    if cap_a != cap_b:
        if cap_a is None or cap_b is None:
            effect = "no cap any more" if cap_b is None else "now capped"
        else:
            effect = "higher" if cap_b > cap_a else "lower"
        changes.append(
            RuleChange(
                Area.CREDITS,
                Rule.MONTHLY_CAP,
                (*path, "credits", "monthly_cap"),
                f"{name}{SEP}monthly credit cap",
                "no cap" if cap_a is None else f"{_plain(cap_a)}% of the fee",
                "no cap" if cap_b is None else f"{_plain(cap_b)}% of the fee",
                effect,
            )
        )
    earn_a = None if a is None else a.earn_back
    earn_b = None if b is None else b.earn_back
    if earn_a != earn_b:

        def words(terms: object) -> str:
            if terms is None:
                return "none"
            months = getattr(terms, "months", 0)
            minimum = getattr(terms, "min_compliance", Decimal(0))
            unit = "month" if months == 1 else "months"
            return f"after {months} {unit} at {_percent(minimum)} compliance"

        changes.append(
            RuleChange(
                Area.CREDITS,
                Rule.EARN_BACK,
                (*path, "credits", "earn_back"),
                f"{name}{SEP}earn-back",
                words(earn_a),
                words(earn_b),
            )
        )
    return changes


# -- calendars ---------------------------------------------------------------------------


def _week_seconds(spec: CalendarSpec) -> int:
    return sum(end - start for day in spec.weekly_intervals().values() for start, end in day)


def _day_text(spec: CalendarSpec, day: int) -> str:
    intervals = spec.weekly_intervals()[day]
    if not intervals:
        return "closed"
    if intervals == [(0, 86_400)]:
        return "all day"
    return ", ".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in intervals)


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _calendar(
    name: str, a: CalendarSpec | None, b: CalendarSpec | None, users: list[str]
) -> list[RuleChange]:
    path = ("calendars", name)
    subject = f"calendar {name}"
    used = f"used by {', '.join(users)}" if users else "used by no tier or service"
    if a is None or b is None:
        effect = "added" if a is None else "removed"
        return [RuleChange(Area.CALENDARS, Rule.CALENDAR, path, subject, None, None, effect)]
    changes: list[RuleChange] = []
    if a.timezone != b.timezone:
        changes.append(
            RuleChange(
                Area.CALENDARS,
                Rule.TIMEZONE,
                (*path, "timezone"),
                f"{subject}{SEP}time zone",
                str(a.timezone),
                str(b.timezone),
                used,
            )
        )
    if a.weekly_intervals() != b.weekly_intervals():
        week_a, week_b = _week_seconds(a), _week_seconds(b)
        for day in range(7):
            before, after = _day_text(a, day), _day_text(b, day)
            if before == after:
                continue
            day_a = sum(e - s for s, e in a.weekly_intervals()[day])
            day_b = sum(e - s for s, e in b.weekly_intervals()[day])
            effect = "longer" if day_b > day_a else "shorter" if day_b < day_a else "same length"
            changes.append(
                RuleChange(
                    Area.CALENDARS,
                    Rule.HOURS,
                    (*path, "hours", WEEKDAYS[day]),
                    f"{subject}{SEP}{WEEKDAYS[day]}",
                    before,
                    after,
                    f"{effect}; {used}",
                )
            )
        if week_a != week_b:
            changes.append(
                RuleChange(
                    Area.CALENDARS,
                    Rule.HOURS,
                    (*path, "hours"),
                    f"{subject}{SEP}working time per week",
                    format_duration(week_a) if week_a else "none",
                    format_duration(week_b) if week_b else "none",
                    "more: deadlines come sooner"
                    if week_b > week_a
                    else "less: deadlines come later",
                )
            )
    holidays_a, holidays_b = set(a.holidays), set(b.holidays)
    if holidays_a != holidays_b:
        added = sorted(holidays_b - holidays_a)
        removed = sorted(holidays_a - holidays_b)
        parts = []
        if added:
            parts.append("adds " + ", ".join(d.isoformat() for d in added))
        if removed:
            parts.append("removes " + ", ".join(d.isoformat() for d in removed))
        changes.append(
            RuleChange(
                Area.CALENDARS,
                Rule.HOLIDAYS,
                (*path, "holidays"),
                f"{subject}{SEP}holidays",
                None,
                None,
                "; ".join(parts) + f" ({used})",
            )
        )
    return changes


# -- services ----------------------------------------------------------------------------


def _service(name: str, a: ServiceSpec | None, b: ServiceSpec | None) -> list[RuleChange]:
    path = ("services", name)
    subject = f"service {name}"
    if a is None or b is None:
        effect = "added" if a is None else "removed"
        return [RuleChange(Area.SERVICES, Rule.SERVICE, path, subject, None, None, effect)]
    changes: list[RuleChange] = []
    if a.target != b.target:
        changes.append(
            RuleChange(
                Area.SERVICES,
                Rule.SERVICE_TARGET,
                (*path, "target"),
                f"{subject}{SEP}availability target",
                f"{_plain(a.target)}%",
                f"{_plain(b.target)}%",
                "stricter" if b.target > a.target else "looser",
            )
        )
    if a.calendar != b.calendar:
        changes.append(
            RuleChange(
                Area.SERVICES,
                Rule.SERVICE_CALENDAR,
                (*path, "calendar"),
                f"{subject}{SEP}measured hours",
                a.calendar or "24x7",
                b.calendar or "24x7",
            )
        )
    if a.timezone != b.timezone:
        changes.append(
            RuleChange(
                Area.SERVICES,
                Rule.SERVICE_TIMEZONE,
                (*path, "timezone"),
                f"{subject}{SEP}months in time zone",
                str(a.timezone),
                str(b.timezone),
            )
        )
    weights_a, weights_b = a.weights(), b.weights()
    for status in weights_a:
        before, after = weights_a[status], weights_b.get(status, Decimal(0))
        if before != after:
            changes.append(
                RuleChange(
                    Area.SERVICES,
                    Rule.DOWN_ON,
                    (*path, "down_on", status),
                    f"{subject}{SEP}{status} counts as downtime at",
                    _plain(before),
                    _plain(after),
                    "more" if after > before else "less",
                )
            )
    if a.maintenance_notice != b.maintenance_notice:
        changes.append(
            RuleChange(
                Area.SERVICES,
                Rule.MAINTENANCE_NOTICE,
                (*path, "maintenance_notice"),
                f"{subject}{SEP}maintenance notice",
                format_duration(a.maintenance_notice),
                format_duration(b.maintenance_notice),
                "shorter: more maintenance excused"
                if b.maintenance_notice < a.maintenance_notice
                else "longer: less maintenance excused",
            )
        )
    if tuple(a.warnings) != tuple(b.warnings):
        changes.append(
            _warnings(Rule.SERVICE_WARNINGS, (*path, "warnings"), subject, a.warnings, b.warnings)
        )
    bands_a = {band.below: band.percent for band in a.credits}
    bands_b = {band.below: band.percent for band in b.credits}
    for below in sorted(set(bands_a) | set(bands_b), reverse=True):
        percent_a, percent_b = bands_a.get(below), bands_b.get(below)
        if percent_a == percent_b:
            continue
        if percent_a is None:
            effect = "new band"
        elif percent_b is None:
            effect = "band removed"
        else:
            effect = "more" if percent_b > percent_a else "less"
        changes.append(
            RuleChange(
                Area.CREDITS,
                Rule.CREDIT_BAND,
                (*path, "credits", f"below {_plain(below)}"),
                f"{subject}{SEP}credit below {_plain(below)}% uptime",
                None if percent_a is None else f"{_plain(percent_a)}% of the fee",
                None if percent_b is None else f"{_plain(percent_b)}% of the fee",
                effect,
            )
        )
    return changes
