"""The policy file: calendars, tiers and customer contracts (docs/semantics.md: Policies).

A policy is read once at start and must be either fully valid or refused with every
problem listed (file, path inside it, what is wrong). So:

- every model forbids unknown fields (a typo must not silently drop a setting);
- values that YAML would read inexactly are refused or converted exactly: money must be a
  quoted decimal string, and fractions/percents written as YAML floats become the decimal
  that was written (`0.9` -> `Decimal("0.9")`, never the binary float's expansion);
- `parse_policy` collects pydantic's per-field errors *and* the cross-reference checks
  (unknown tier, unknown calendar) in one pass, run on the raw document so a broken
  calendar and a dangling reference elsewhere are both reported.

Models serialise back to the file's notation in JSON mode (durations as `1h30m`,
intervals as `09:00-17:00`), so `model_dump(mode="json")` is itself a valid policy.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Self
from zoneinfo import ZoneInfo, available_timezones

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    Strict,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from slaclock.schemas.common import GroupMetric, Metric, Priority, Status
from slaclock.schemas.services import ServiceStatus

__all__ = [
    "DURATION_PATTERN",
    "WEEKDAYS",
    "CalendarSpec",
    "Contract",
    "CreditBand",
    "CreditTerms",
    "EarnBack",
    "Policy",
    "PolicyError",
    "PolicyProblem",
    "ServiceSpec",
    "TierSpec",
    "Weekday",
    "WorkingInterval",
    "format_duration",
    "load_policy",
    "parse_contract",
    "parse_duration",
    "parse_policy",
]

_FORBID = ConfigDict(extra="forbid", frozen=True)
_ERROR_TYPE = "policy"
_SKIP_REFERENCES = "skip_reference_checks"
"""Validation-context flag: `parse_policy` runs the reference checks itself, on raw data."""


def _fail(message: str) -> NoReturn:
    """Raise a validation error whose message is exactly `message` (no "Value error, ")."""
    raise PydanticCustomError(_ERROR_TYPE, message)


def _suggest(word: str, choices: Iterable[str]) -> str:
    others = [choice for choice in choices if choice != word]
    matches = difflib.get_close_matches(word, others, n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


# --- durations ------------------------------------------------------------------------

DURATION_PATTERN = r"^(?=\d)(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$"
_DURATION = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> int:
    """`"1h30m"` -> 5400. Units d, h, m, s, each at most once, largest first; `d` = 24 h.

    Raises `ValueError` for anything else, including a zero duration.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: use whole numbers with units d, h, m, s, "
            "largest first, e.g. '15m', '1h30m', '1d', '90s'"
        )
    seconds = sum(
        int(amount) * unit
        for amount, (_, unit) in zip(match.groups(), _UNIT_SECONDS, strict=True)
        if amount is not None
    )
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return seconds


def format_duration(seconds: int) -> str:
    """5400 -> `"1h30m"`, 259200 -> `"3d"`, 144000 -> `"40h"`; `parse_duration` reads it back.

    Days are used only for whole days: on business calendars `40h` reads better than `1d16h`.
    """
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {seconds}")
    units = _UNIT_SECONDS if seconds % 86_400 == 0 else _UNIT_SECONDS[1:]
    parts = []
    for unit, size in units:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _duration_input(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        _fail("expected a duration such as '15m', '1h30m', '1d' or '90s'")
    if isinstance(value, int):
        _fail(f"the duration {value} has no unit: write e.g. '{value}s' or '{value}m'")
    try:
        return parse_duration(value)
    except ValueError as exc:
        _fail(str(exc))


Duration = Annotated[
    int,
    BeforeValidator(_duration_input),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "Counted time: units d, h, m, s, largest first, e.g. 1h30m (d = 24 h).",
        }
    ),
]
"""A target duration, in whole seconds (the file says `15m`, the model holds 900)."""


# --- exact decimals and money -----------------------------------------------------------

_PLAIN_DECIMAL = re.compile(r"\d+(\.\d+)?")
_MAX_PLACES = 6


def _exact_decimal(value: object) -> Decimal:
    """A number as written: YAML floats go through their shortest repr, not binary."""
    if isinstance(value, bool):
        _fail("expected a number, not a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            _fail(f"expected a finite number, got {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value):
        result = Decimal(value)
    else:
        _fail(f"expected a number, got {value!r}")
    if not result.is_finite():
        _fail(f"expected a finite number, got {value!r}")
    exponent = result.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent < -_MAX_PLACES:
        _fail(f"{value!r} has more than {_MAX_PLACES} decimal places")
    if exponent > 0:  # 1E+2 -> 100, so str() never uses exponent notation
        result = result.quantize(Decimal(1))
    return result


def _decimal_schema(description: str, **bounds: int) -> JsonSchemaValue:
    """JSON Schema of an exact decimal: a number within bounds, or a plain decimal string."""
    number: dict[str, Any] = {"type": "number"}
    for bound, keyword in (
        ("gt", "exclusiveMinimum"),
        ("ge", "minimum"),
        ("lt", "exclusiveMaximum"),
        ("le", "maximum"),
    ):
        if bound in bounds:
            number[keyword] = bounds[bound]
    string = {"type": "string", "pattern": r"^\d+(\.\d+)?$"}
    return {"anyOf": [number, string], "description": description}


def _in_range(rule: str, *, upper: Decimal | None, inclusive: bool) -> Any:
    """After-validator: greater than 0 and below (or at most) `upper`; `rule` explains why."""

    def check(value: Decimal) -> Decimal:
        too_big = upper is not None and (value > upper if inclusive else value >= upper)
        if value <= 0 or too_big:
            _fail(f"{rule}, got {value}")
        return value

    return AfterValidator(check)


Fraction01 = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    _in_range(
        "a warning threshold is a fraction of the target, strictly between 0 and 1",
        upper=Decimal(1),
        inclusive=False,
    ),
    WithJsonSchema(_decimal_schema("A fraction of the target, in (0, 1).", gt=0, lt=1)),
]
Percent = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    _in_range("a percent of the monthly fee must be greater than 0", upper=None, inclusive=True),
    WithJsonSchema(_decimal_schema("Percent of the monthly fee, greater than 0.", gt=0)),
]
Compliance = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    _in_range(
        "min_compliance is a fraction: greater than 0 and at most 1 (0.95 means 95 %)",
        upper=Decimal(1),
        inclusive=True,
    ),
    WithJsonSchema(_decimal_schema("Minimum compliance, a fraction in (0, 1].", gt=0, le=1)),
]

MONEY_PATTERN = r"^\d+(\.\d{1,2})?$"
_MONEY = re.compile(MONEY_PATTERN)
_CENT = Decimal("0.01")


def _money_input(value: object) -> Decimal:
    if isinstance(value, Decimal):
        value = str(value)
    if isinstance(value, float) and not isinstance(value, bool):
        places = f"{value:.2f}" if math.isfinite(value) and round(value, 2) == value else value
        _fail(
            f'write money as a quoted decimal string, e.g. "{places}": the YAML number '
            f"{value!r} is a binary float and not exact"
        )
    if not isinstance(value, str):
        _fail(f'write money as a quoted decimal string such as "12000.00", got {value!r}')
    if not _MONEY.fullmatch(value):
        _fail(
            f"invalid amount {value!r}: expected a non-negative decimal with at most 2 "
            'decimal places, e.g. "12000.00"'
        )
    return Decimal(value).quantize(_CENT)


Money = Annotated[
    Decimal,
    BeforeValidator(_money_input),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": MONEY_PATTERN,
            "description": 'A non-negative amount as a decimal string, e.g. "12000.00".',
        }
    ),
]
"""Money: a quoted decimal string in the file, normalised to cents (`"12000"` -> 12000.00)."""


# --- time zones, currencies --------------------------------------------------------------


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _check_timezone(name: str) -> str:
    # "localtime" loads but depends on the host: a policy must mean the same everywhere.
    valid = name != "localtime"
    if valid:
        try:
            ZoneInfo(name)
        except Exception:  # ZoneInfoNotFoundError, ValueError, IsADirectoryError, ...
            valid = False
    if not valid:
        _fail(
            f"unknown time zone {name!r}{_suggest(name, _zone_names())}: "
            "use an IANA name such as 'Europe/Berlin' or 'UTC'"
        )
    return name


TimezoneName = Annotated[
    str,
    AfterValidator(_check_timezone),
    Field(description="IANA time zone name, e.g. Europe/Berlin.", examples=["Europe/Berlin"]),
]

_CURRENCY = re.compile(r"[A-Z]{3}")


def _check_currency(code: str) -> str:
    if not _CURRENCY.fullmatch(code):
        _fail(
            f"invalid currency {code!r}: use an ISO 4217 code of three uppercase letters, e.g. EUR"
        )
    return code


Currency = Annotated[
    str,
    AfterValidator(_check_currency),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Z]{3}$",
            "description": "ISO 4217 code: three uppercase letters, e.g. EUR.",
        }
    ),
]

Name = Annotated[str, StringConstraints(min_length=1)]


# --- calendars ------------------------------------------------------------------------

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday keys in Python's `date.weekday()` order: the index is the weekday number."""

INTERVAL_PATTERN = r"^([01]\d|2[0-4]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$"
_INTERVAL = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_DAY = 86_400


def _clock_seconds(hours: str, minutes: str, text: str, *, is_end: bool) -> int:
    h, m = int(hours), int(minutes)
    if m > 59:
        _fail(f"invalid working interval {text!r}: minutes must be 00-59")
    if h > 24 or (h == 24 and (m != 0 or not is_end)):
        _fail(f"invalid working interval {text!r}: hours must be 00-23 (24:00 only as an end)")
    return h * 3600 + m * 60


class WorkingInterval(BaseModel):
    """Local working time `[start, end)` within one day, written `"HH:MM-HH:MM"`."""

    model_config = _FORBID

    start_seconds: int = Field(ge=0, le=_DAY - 1)
    end_seconds: int = Field(ge=1, le=_DAY)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: object) -> object:
        if isinstance(data, dict | WorkingInterval):
            return data
        if not isinstance(data, str):
            _fail(f"expected a working interval such as '09:00-17:00', got {data!r}")
        match = _INTERVAL.fullmatch(data)
        if match is None:
            _fail(f"invalid working interval {data!r}: expected 'HH:MM-HH:MM', e.g. '09:00-17:00'")
        sh, sm, eh, em = match.groups()
        start = _clock_seconds(sh, sm, data, is_end=False)
        end = _clock_seconds(eh, em, data, is_end=True)
        if end <= start:
            _fail(
                f"invalid working interval {data!r}: it must end after it starts "
                "(split a shift over midnight into an interval on each day)"
            )
        return {"start_seconds": start, "end_seconds": end}

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end_seconds <= self.start_seconds:
            _fail("a working interval must end after it starts")
        return self

    @classmethod
    def parse(cls, text: str) -> WorkingInterval:
        return cls.model_validate(text)

    def __str__(self) -> str:
        def hhmm(seconds: int) -> str:
            return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"

        return f"{hhmm(self.start_seconds)}-{hhmm(self.end_seconds)}"

    @model_serializer(mode="plain", when_used="json")
    def _to_text(self) -> str:
        return str(self)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": INTERVAL_PATTERN,
            "description": "Local time [start, end), e.g. 09:00-17:00; 24:00 only as an end.",
        }


def _check_day(intervals: list[WorkingInterval]) -> list[WorkingInterval]:
    for before, after in itertools.pairwise(intervals):
        if after.start_seconds < before.end_seconds:
            _fail(
                f"working intervals must be in order and must not overlap: "
                f"{before} is followed by {after}"
            )
    return intervals


def _check_week(week: dict[Weekday, list[WorkingInterval]]) -> dict[Weekday, list[WorkingInterval]]:
    # With no working time at all no deadline could ever be reached.
    if not any(week.values()):
        _fail("the calendar has no working hours on any day")
    return week


def _hours_kind(value: object) -> str:
    return "24x7" if isinstance(value, str) else "weekly"


_HOURS_TAGS = frozenset({"24x7", "weekly"})
"""Tags of the `hours` union; pydantic puts them in error locations and we strip them."""

WeeklyHours = Annotated[
    dict[Weekday, Annotated[list[WorkingInterval], AfterValidator(_check_day)]],
    AfterValidator(_check_week),
]


class CalendarSpec(BaseModel):
    """When time counts: local working intervals per weekday, minus holidays."""

    model_config = _FORBID

    timezone: TimezoneName
    hours: Annotated[
        Annotated[Literal["24x7"], Tag("24x7")] | Annotated[WeeklyHours, Tag("weekly")],
        Discriminator(_hours_kind),
        Field(description="'24x7', or working intervals per weekday (a missing day: no work)."),
    ]
    holidays: list[date] = Field(
        default=[], description="Local dates with no working time (also on a 24x7 calendar)."
    )

    @property
    def is_24x7(self) -> bool:
        return self.hours == "24x7"

    def weekly_intervals(self) -> dict[int, list[tuple[int, int]]]:
        """Working intervals per Python weekday (0 = Monday), as local seconds of the day.

        Every weekday 0..6 is present; a day without work has an empty list.
        """
        if isinstance(self.hours, str):
            return {day: [(0, _DAY)] for day in range(7)}
        return {
            number: [(i.start_seconds, i.end_seconds) for i in self.hours.get(name, [])]
            for number, name in enumerate(WEEKDAYS)
        }


# --- tiers ----------------------------------------------------------------------------


class EarnBack(BaseModel):
    model_config = _FORBID

    months: Annotated[int, Strict(), Field(ge=1)]
    min_compliance: Compliance


class CreditTerms(BaseModel):
    model_config = _FORBID

    per_breach: dict[Metric, Percent]
    monthly_cap: Percent | None = None
    earn_back: EarnBack | None = None


def _pausable(status: Status) -> Status:
    if status in (Status.SOLVED, Status.CLOSED):
        _fail(f"{status.value!r} cannot be in pause_on: it ends the metrics instead of pausing")
    return status


def _sorted_unique(values: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
    return tuple(sorted(set(values)))


def _statuses_in_order(statuses: frozenset[Status]) -> list[str]:
    return [s.value for s in Status if s in statuses]


PauseStatuses = Annotated[
    frozenset[Annotated[Status, AfterValidator(_pausable)]],
    PlainSerializer(_statuses_in_order, return_type=list[str], when_used="json"),
]
"""Statuses that pause a metric (tiers and groups alike), written in status order."""

WarningFractions = Annotated[tuple[Fraction01, ...], AfterValidator(_sorted_unique)]
"""Warning thresholds: fractions of a target, ascending and distinct."""


class TierSpec(BaseModel):
    """A service tier: its calendar, targets per metric and priority, warnings and credits."""

    model_config = _FORBID

    calendar: Name
    targets: dict[Metric, dict[Priority, Duration]]
    pause_on: PauseStatuses = frozenset()
    warnings: WarningFractions = ()
    credits: CreditTerms | None = None


class GroupSpec(BaseModel):
    """An internal group (OLA): its calendar, targets per group metric and priority,
    the statuses that pause `group_resolution`, and warnings (docs/semantics.md: Groups)."""

    model_config = _FORBID

    calendar: Name
    targets: dict[GroupMetric, dict[Priority, Duration]]
    pause_on: PauseStatuses = frozenset()
    warnings: WarningFractions = ()


# --- services (availability) ---------------------------------------------------------

DEFAULT_DOWN_ON: dict[ServiceStatus, Decimal] = {
    ServiceStatus.MAJOR_OUTAGE: Decimal(1),
    ServiceStatus.PARTIAL_OUTAGE: Decimal(1),
    ServiceStatus.UNDER_MAINTENANCE: Decimal(1),
}
"""Weights of a status's time as downtime; `down_on` is merged over these."""

DEFAULT_MAINTENANCE_NOTICE = 2 * 86_400
_PERCENT_PLACES = 4


def _uptime_percent(what: str) -> Any:
    """After-validator: 0 < value < 100, at most 4 decimal places.

    Four places because reports give the uptime rounded down to 4 places: with targets
    and bands on that grid, the reported uptime always lands in the band it was credited.
    """

    def check(value: Decimal) -> Decimal:
        if not 0 < value < 100:
            _fail(f"{what} is a percent strictly between 0 and 100, got {value}")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -_PERCENT_PLACES:
            _fail(f"{what} {value} has more than {_PERCENT_PLACES} decimal places")
        return value

    return AfterValidator(check)


def _weight(value: Decimal) -> Decimal:
    if not 0 <= value <= 1:
        _fail(f"a down_on weight is a fraction of the time counted as down, in [0, 1], got {value}")
    return value


Weight = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    AfterValidator(_weight),
    WithJsonSchema(
        _decimal_schema("Share of the time counted as downtime, in [0, 1].", ge=0, le=1)
    ),
]
TargetPercent = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    _uptime_percent("target"),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(_decimal_schema("Percent of the measured time, in (0, 100).", gt=0, lt=100)),
]
BelowPercent = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    _uptime_percent("a band's below"),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(_decimal_schema("Uptime percent the band applies below.", gt=0, lt=100)),
]
BudgetFraction = Annotated[
    Decimal,
    BeforeValidator(_exact_decimal),
    _in_range(
        "a warning threshold is a fraction of the downtime budget, strictly between 0 and 1",
        upper=Decimal(1),
        inclusive=False,
    ),
    WithJsonSchema(_decimal_schema("A fraction of the downtime budget, in (0, 1).", gt=0, lt=1)),
]


def _band_problems(target: object, belows: Sequence[object]) -> list[tuple[int, str]]:
    """Bands above the target and repeated `below` values, by band index (raw or parsed)."""

    def value(raw: object) -> Decimal | None:
        try:
            return raw if isinstance(raw, Decimal) else _exact_decimal(raw)
        except PydanticCustomError:
            return None  # field validation reports it

    problems: list[tuple[int, str]] = []
    limit = value(target)
    seen: set[Decimal] = set()
    for index, raw in enumerate(belows):
        below = value(raw)
        if below is None:
            continue
        if limit is not None and below > limit:
            problems.append(
                (
                    index,
                    f"the band below {below} is above the target {limit}: a met period "
                    "would earn a credit",
                )
            )
        if below in seen:
            problems.append((index, f"another band already has below {below}; each must differ"))
        seen.add(below)
    return problems


class CreditBand(BaseModel):
    """Credit for a period whose uptime is strictly below `below`."""

    model_config = _FORBID

    below: BelowPercent
    percent: Percent


class ServiceSpec(BaseModel):
    """A service with an availability commitment: its target, weights, notice and credits."""

    model_config = _FORBID

    timezone: TimezoneName = Field(description="Periods are calendar months here.")
    calendar: Name | None = Field(
        default=None, description="Measured time is this calendar's working time (default 24x7)."
    )
    target: TargetPercent
    down_on: dict[ServiceStatus, Weight] = Field(
        default={},
        description="Status -> weight of its time as downtime, merged over major_outage: 1, "
        "partial_outage: 1, under_maintenance: 1 (other statuses weigh 0).",
    )
    maintenance_notice: Duration = Field(
        default=DEFAULT_MAINTENANCE_NOTICE,
        description="Maintenance announced at least this long before it starts is excused.",
    )
    warnings: Annotated[tuple[BudgetFraction, ...], AfterValidator(_sorted_unique)] = ()
    credits: list[CreditBand] = Field(
        default=[], description="Percent of the monthly fee by the period's uptime."
    )

    @model_validator(mode="after")
    def _bands(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, Mapping) and info.context.get(_SKIP_REFERENCES):
            return self  # `parse_policy` checks the bands on the raw document
        problems = _band_problems(self.target, [band.below for band in self.credits])
        if problems:
            _fail("; ".join(f"credits.{index}.below: {message}" for index, message in problems))
        return self

    def weights(self) -> dict[str, Decimal]:
        """Every status's weight, the defaults merged with `down_on`."""
        merged = {status.value: Decimal(0) for status in ServiceStatus}
        merged.update({status.value: weight for status, weight in DEFAULT_DOWN_ON.items()})
        merged.update({status.value: weight for status, weight in self.down_on.items()})
        return merged


# --- contracts --------------------------------------------------------------------------


class Contract(BaseModel):
    """A customer's contract (also a record on `sla.contracts`, keyed by customer id)."""

    model_config = _FORBID

    tier: Name
    monthly_fee: Money
    currency: Currency
    services: list[Name] = Field(
        default=[], description="Services of the policy whose availability the contract promises."
    )
    timezone: TimezoneName = Field(
        default="UTC", description="Billing periods are calendar months here."
    )
    start: date | None = Field(
        default=None,
        description="First day of the term (local date in `timezone`); no credit before it.",
    )
    end: date | None = Field(
        default=None,
        description="Last day of the term, inclusive (local date in `timezone`).",
    )
    effective_at: AwareDatetime | None = Field(
        default=None,
        description=(
            "When this version of the contract takes effect. On `sla.contracts` it is never "
            "earlier than the record's own timestamp: a change is never retroactive."
        ),
    )

    @model_validator(mode="after")
    def _term_in_order(self) -> Self:
        if self.start is not None and self.end is not None and self.end < self.start:
            _fail(f"end {self.end} is before start {self.start}")
        return self


def parse_contract(raw: bytes | str) -> Contract:
    """A `sla.contracts` record value. Raises `pydantic.ValidationError`."""
    return Contract.model_validate_json(raw)


# --- the policy -------------------------------------------------------------------------

Location = tuple[str | int, ...]


def _unknown(kind: str, name: str, defined: Iterable[str]) -> str:
    names = sorted(defined)
    listed = ", ".join(names) if names else "none"
    return f"unknown {kind} {name!r}{_suggest(name, names)}; defined {kind}s: {listed}"


def _reference_problems(
    default_tier: object, calendars: object, tiers: object, customers: object
) -> list[tuple[Location, str]]:
    """Dangling names, checked on whatever parts are usable (raw or validated data).

    Values of the wrong type are skipped: field validation reports those.
    """
    problems: list[tuple[Location, str]] = []
    tier_names = {k for k in tiers if isinstance(k, str)} if isinstance(tiers, Mapping) else None
    if tier_names is not None and isinstance(default_tier, str) and default_tier not in tier_names:
        problems.append((("default_tier",), _unknown("tier", default_tier, tier_names)))
    if isinstance(tiers, Mapping) and isinstance(calendars, Mapping):
        calendar_names = {k for k in calendars if isinstance(k, str)}
        for name, tier in tiers.items():
            ref = tier.calendar if isinstance(tier, TierSpec) else _get(tier, "calendar")
            if isinstance(ref, str) and ref not in calendar_names:
                problems.append(
                    (("tiers", name, "calendar"), _unknown("calendar", ref, calendar_names))
                )
    if tier_names is not None and isinstance(customers, Mapping):
        for customer, contract in customers.items():
            ref = contract.tier if isinstance(contract, Contract) else _get(contract, "tier")
            if isinstance(ref, str) and ref not in tier_names:
                problems.append(
                    (("customers", customer, "tier"), _unknown("tier", ref, tier_names))
                )
    return problems


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, Mapping) else None


def _service_problems(
    calendars: object, services: object, customers: object
) -> list[tuple[Location, str]]:
    """Dangling service calendars and contract services (raw or validated data)."""
    problems: list[tuple[Location, str]] = []
    if isinstance(services, Mapping) and isinstance(calendars, Mapping):
        calendar_names = {k for k in calendars if isinstance(k, str)}
        for name, service in services.items():
            ref = (
                service.calendar if isinstance(service, ServiceSpec) else _get(service, "calendar")
            )
            if isinstance(ref, str) and ref not in calendar_names:
                problems.append(
                    (("services", name, "calendar"), _unknown("calendar", ref, calendar_names))
                )
    if isinstance(services, Mapping):
        for name, service in services.items():
            target: object
            bands: list[object]
            if isinstance(service, ServiceSpec):
                target, bands = service.target, [band.below for band in service.credits]
            else:
                raw_bands = _get(service, "credits")
                target = _get(service, "target")
                bands = [_get(b, "below") for b in raw_bands] if isinstance(raw_bands, list) else []
            for index, message in _band_problems(target, bands):
                problems.append((("services", name, "credits", index, "below"), message))
    service_names = (
        {k for k in services if isinstance(k, str)} if isinstance(services, Mapping) else set()
    )
    if isinstance(customers, Mapping):
        for customer, contract in customers.items():
            refs = (
                contract.services if isinstance(contract, Contract) else _get(contract, "services")
            )
            if not isinstance(refs, list):
                continue
            seen: set[str] = set()
            for index, ref in enumerate(refs):
                where = ("customers", customer, "services", index)
                if isinstance(ref, str) and ref not in service_names:
                    problems.append((where, _unknown("service", ref, service_names)))
                elif isinstance(ref, str) and ref in seen:
                    problems.append((where, f"service {ref!r} is listed twice"))
                if isinstance(ref, str):
                    seen.add(ref)
    return problems


def _group_problems(calendars: object, groups: object) -> list[tuple[Location, str]]:
    """Empty group names and dangling group calendars (raw or validated data)."""
    problems: list[tuple[Location, str]] = []
    if isinstance(groups, Mapping) and any(name == "" for name in groups):
        problems.append(
            (("groups",), "a group name cannot be empty: an empty group holds no ticket")
        )
    if isinstance(groups, Mapping) and isinstance(calendars, Mapping):
        calendar_names = {k for k in calendars if isinstance(k, str)}
        for name, group in groups.items():
            ref = group.calendar if isinstance(group, GroupSpec) else _get(group, "calendar")
            if isinstance(ref, str) and ref not in calendar_names:
                problems.append(
                    (("groups", name, "calendar"), _unknown("calendar", ref, calendar_names))
                )
    return problems


class Policy(BaseModel):
    """The whole policy file. Build it with `load_policy`/`parse_policy` for full reports."""

    model_config = _FORBID

    version: Name = Field(
        default="1",
        description=(
            "The id of this policy version (docs/semantics.md: Policy changes). The file a "
            "worker or replay starts with is the first version; later versions are published "
            "with `slaclock policy publish` (or `policy.changed` lines in replay)."
        ),
    )
    default_tier: Name
    calendars: dict[str, CalendarSpec]
    tiers: dict[str, TierSpec]
    groups: dict[str, GroupSpec] = Field(
        default={},
        description="Internal groups with operational-level targets (OLAs), by group name.",
    )
    services: dict[str, ServiceSpec] = Field(
        default={}, description="Services with an availability commitment, by service id."
    )
    customers: dict[str, Contract] = Field(
        default={}, description="Contracts by customer id; on Kafka also from sla.contracts."
    )

    @model_validator(mode="after")
    def _references_exist(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, Mapping) and info.context.get(_SKIP_REFERENCES):
            return self
        problems = _reference_problems(
            self.default_tier, self.calendars, self.tiers, self.customers
        )
        problems += _service_problems(self.calendars, self.services, self.customers)
        problems += _group_problems(self.calendars, self.groups)
        if problems:
            _fail("; ".join(f"{_dotted(loc)}: {message}" for loc, message in problems))
        return self


# --- reporting --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong with a policy file."""

    file: str
    location: str  # dotted path inside the document, e.g. tiers.gold.targets.resolution.high
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.message}"


class PolicyError(Exception):
    """A policy file was refused; `problems` lists everything wrong with it."""

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        super().__init__(list(problems))
        self.problems: list[PolicyProblem] = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


_TOP = "(top level)"


def _dotted(loc: Location) -> str:
    return ".".join(str(part) for part in loc) or _TOP


def _model_at(loc: Location) -> type[BaseModel] | None:
    """The model whose fields live at `loc`, for "unknown field" suggestions."""
    match loc:
        case ():
            return Policy
        case ("calendars", _):
            return CalendarSpec
        case ("tiers", _):
            return TierSpec
        case ("tiers", _, "credits"):
            return CreditTerms
        case ("tiers", _, "credits", "earn_back"):
            return EarnBack
        case ("customers", _):
            return Contract
        case ("groups", _):
            return GroupSpec
        case ("services", _):
            return ServiceSpec
        case ("services", _, "credits", int()):
            return CreditBand
    return None


def _clean_location(loc: Sequence[str | int]) -> Location:
    parts = list(loc)
    # calendars.<name>.hours.<union tag>... : the tag is an implementation detail.
    if (
        len(parts) > 3
        and parts[0] == "calendars"
        and parts[2] == "hours"
        and parts[3] in _HOURS_TAGS
    ):
        del parts[3]
    return tuple(parts)


def _describe(error: Mapping[str, Any], loc: Location) -> tuple[Location, str]:
    kind = error["type"]
    message: str = error["msg"]
    value = error.get("input")
    if kind == _ERROR_TYPE:
        return loc, message
    if kind == "missing":
        return loc, "required field is missing"
    if kind == "extra_forbidden" and loc:
        model = _model_at(loc[:-1])
        field = str(loc[-1])
        if model is None:
            return loc, "unknown field"
        allowed = list(model.model_fields)
        return loc, (
            f"unknown field {field!r}{_suggest(field, allowed)}; allowed: {', '.join(allowed)}"
        )
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        if kind == "string_type" and isinstance(value, int | float | bool | date):
            return loc, f"invalid key {value!r}: names are text; quote it ('{value}')"
        return loc, f"invalid key {value!r}: {_lower_first(message)}"
    message = _INSTANCE_OF.sub("", message)  # "... dictionary or instance of Contract"
    if isinstance(value, str | int | float | bool | date) or value is None:
        message = f"{message}, got {value!r}"
    return loc, _lower_first(message)


_INSTANCE_OF = re.compile(r" or instance of \w+")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _document_order(data: object, loc: Location) -> tuple[int, ...]:
    """Position of `loc` in the raw document, so problems are listed top to bottom."""
    key: list[int] = []
    node = data
    for part in loc:
        if isinstance(node, Mapping):
            keys = list(node)
            index = keys.index(part) if part in keys else len(keys)
            node = node.get(part) if part in keys else None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            index, node = part, node[part]
        else:
            index, node = 1 << 30, None
        key.append(index)
    return tuple(key)


# --- YAML -------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML that records duplicate keys (plain YAML keeps the last one silently)."""

    duplicates: list[tuple[str, str]]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Hashable, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            continue
        line = key_node.start_mark.line + 1
        if key in seen:
            loader.duplicates.append(
                (
                    f"line {line}, column {key_node.start_mark.column + 1}",
                    f"duplicate key {key!r} (first on line {seen[key]}); "
                    "each key may appear only once",
                )
            )
        else:
            seen[key] = line
    return loader.construct_mapping(node, deep=deep)


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    # An impossible date such as 2026-02-30 would raise a bare ValueError without a
    # location; as a string it reaches validation and is reported where it is.
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _load_yaml(text: str, source: str) -> tuple[object, list[PolicyProblem]]:
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else _TOP
        what = ": ".join(part for part in (exc.context, exc.problem) if part)
        return None, [PolicyProblem(source, where, f"invalid YAML: {what}")]
    except yaml.YAMLError as exc:
        return None, [PolicyProblem(source, _TOP, f"invalid YAML: {exc}")]
    except Exception as exc:  # constructor failures; the contract is "always PolicyError"
        return None, [PolicyProblem(source, _TOP, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return data, [PolicyProblem(source, where, what) for where, what in loader.duplicates]


# --- entry points -----------------------------------------------------------------------


def parse_policy(text: str, source: str) -> Policy:
    """Validate a policy document; `source` names it in problems (usually the file path).

    Raises `PolicyError` listing every problem found, in document order.
    """
    data, problems = _load_yaml(text, source)
    if problems and data is None:
        raise PolicyError(problems)
    if data is None:
        raise PolicyError([PolicyProblem(source, _TOP, "the policy is empty")])
    if not isinstance(data, dict):
        raise PolicyError(
            [
                PolicyProblem(
                    source,
                    _TOP,
                    "expected a mapping with default_tier, calendars, tiers and customers, "
                    f"got {type(data).__name__}",
                )
            ]
        )
    return validate_policy_data(data, source, problems)


def validate_policy_data(
    data: dict[Any, Any], source: str, problems: Sequence[PolicyProblem] = ()
) -> Policy:
    """Validate a policy document already decoded (YAML or a JSON object).

    Raises `PolicyError` listing every problem found (after `problems`), in document order.
    """
    problems = list(problems)
    if isinstance(data.get("version"), int | float) and not isinstance(data.get("version"), bool):
        data = {**data, "version": str(data["version"])}  # `version: 2` means "2"
    found = _reference_problems(
        data.get("default_tier"), data.get("calendars"), data.get("tiers"), data.get("customers")
    )
    found += _service_problems(data.get("calendars"), data.get("services"), data.get("customers"))
    found += _group_problems(data.get("calendars"), data.get("groups"))
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(data, context={_SKIP_REFERENCES: True})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            found.append(_describe(error, _clean_location(error["loc"])))
    found.sort(key=lambda item: _document_order(data, item[0]))
    problems += [PolicyProblem(source, _dotted(loc), message) for loc, message in found]
    if problems or policy is None:
        raise PolicyError(problems)
    return policy


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file. Raises `PolicyError` (also if it cannot be read)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyError([PolicyProblem(source, "(file)", f"cannot read: {reason}")]) from exc
    return parse_policy(text, source)
