"""Property tests of the calendar arithmetic, with a brute-force zoneinfo oracle.

Random calendars (zones with 1 h, 30 min and no DST, DST at midnight, random weekly
intervals, random holidays) and random instants over several years, biased towards the
days around each zone's DST transitions and towards round (quarter-hour) instants.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.calendar import BusinessCalendar

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
DAY_S = 86_400

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",  # no DST, +05:30
    "America/Santiago",  # DST changes at local midnight
    "UTC",
]
FIRST_DAY = date(2024, 1, 1)
LAST_DAY = date(2028, 1, 1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * DAY_S + delta.seconds) * US + delta.microseconds


RANGE_LO = to_us(datetime(2024, 1, 8, tzinfo=UTC))
RANGE_HI = to_us(datetime(2027, 12, 1, tzinfo=UTC))

PROFILE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

Weekly = dict[int, list[tuple[int, int]]]


# -- the oracle: iterate local dates with zoneinfo, nothing cached, nothing clever ----------


def oracle_instant(zone: ZoneInfo, day: date, second_of_day: int) -> int:
    """The earliest instant whose local wall clock reads at or after `day` + `second_of_day`."""
    if second_of_day == DAY_S:
        day, second_of_day = day + timedelta(days=1), 0
    wall = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(seconds=second_of_day)
    naive_wall = wall.replace(tzinfo=None)
    first = int(wall.replace(fold=0).timestamp())
    if datetime.fromtimestamp(first, zone).replace(tzinfo=None) == naive_wall:
        return first * US  # exists (for an ambiguous time: its first occurrence)
    # In a gap: walk forward, by minutes and then by seconds, to the first instant whose
    # wall clock has reached `wall` (the end of the gap).
    probe = first - 3 * 3600
    while datetime.fromtimestamp(probe, zone).replace(tzinfo=None) < naive_wall:
        probe += 60
    probe -= 60
    while datetime.fromtimestamp(probe, zone).replace(tzinfo=None) < naive_wall:
        probe += 1
    return probe * US


def oracle_counted(
    zone_name: str, weekly: Weekly | None, holidays: set[date], a: int, b: int
) -> int:
    zone = ZoneInfo(zone_name)
    day = (EPOCH + timedelta(microseconds=a)).astimezone(zone).date() - timedelta(days=2)
    last = (EPOCH + timedelta(microseconds=b)).astimezone(zone).date() + timedelta(days=2)
    total = 0
    while day <= last:
        if day not in holidays:
            spans = [(0, DAY_S)] if weekly is None else weekly.get(day.weekday(), [])
            for start_s, end_s in spans:
                start = oracle_instant(zone, day, start_s)
                end = oracle_instant(zone, day, end_s)
                total += max(0, min(end, b) - max(start, a))
        day += timedelta(days=1)
    return total


# -- strategies -----------------------------------------------------------------------------


@cache
def transitions(zone_name: str) -> list[int]:
    """Instants (to the hour) at which the zone's UTC offset changes in the test range."""
    zone = ZoneInfo(zone_name)
    found = []
    moment = datetime(FIRST_DAY.year, 1, 1, tzinfo=UTC)
    previous = moment.astimezone(zone).utcoffset()
    while moment.date() < LAST_DAY:
        moment += timedelta(days=1)
        if moment.astimezone(zone).utcoffset() == previous:
            continue
        hour = moment - timedelta(days=1)
        while hour <= moment:
            offset = hour.astimezone(zone).utcoffset()
            if offset != previous:
                found.append(to_us(hour))
                previous = offset
            hour += timedelta(hours=1)
    return found


# Local seconds of day at and inside each zone's spring-forward gaps and fall-back folds
# (Santiago changes at local midnight), so that interval ends often fall into them.
CRITICAL = {
    "Europe/Berlin": [7200, 7201, 9000, 10799, 10800],  # 02:00-03:00 gap and fold
    "America/New_York": [3600, 5400, 7200, 9000, 10799, 10800],  # fold 01-02, gap 02-03
    "Australia/Lord_Howe": [5400, 6300, 7200, 8100, 9000],  # fold 01:30-02, gap 02-02:30
    "America/Santiago": [0, 1, 1800, 3600, 82800, 84600, DAY_S],  # gap 00-01, fold 23-24
    "Asia/Kolkata": [0, 19800, DAY_S],
    "UTC": [0, DAY_S],
}

# Strategies are built once per zone (building them per draw dominates the run time).


@cache
def boundaries(zone_name: str) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from(CRITICAL[zone_name]),
        st.integers(0, 48).map(lambda half_hours: half_hours * 1800),
        st.integers(0, DAY_S),
    )


def pairs(points: list[int]) -> list[tuple[int, int]]:
    points = sorted(points)
    return [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]


@cache
def day_intervals(zone_name: str) -> st.SearchStrategy[list[tuple[int, int]]]:
    return st.lists(boundaries(zone_name), max_size=6, unique=True).map(pairs)


@cache
def holiday_dates(zone_name: str) -> st.SearchStrategy[date]:
    near = [
        (EPOCH + timedelta(microseconds=t)).date() + timedelta(days=k)
        for t in transitions(zone_name)
        for k in (-1, 0, 1)
    ]
    any_day = st.dates(FIRST_DAY, LAST_DAY)
    return st.one_of(st.sampled_from(near), any_day, any_day) if near else any_day


@st.composite
def calendars(draw: st.DrawFn) -> tuple[str, Weekly | None, set[date]]:
    zone_name = draw(st.sampled_from(ZONES))
    weekly: Weekly | None
    if draw(st.integers(0, 9)) == 0:
        weekly = None
    else:
        weekly = {day: draw(day_intervals(zone_name)) for day in range(7)}
        shape = draw(st.integers(0, 2))
        if shape == 1:  # a typical office: the same hours on several weekdays
            hours = draw(day_intervals(zone_name))
            for day in draw(st.sets(st.integers(0, 6), min_size=1)):
                weekly[day] = hours
        elif shape == 2:  # the same hours every day, so DST days always have some
            hours = draw(day_intervals(zone_name))
            weekly = dict.fromkeys(range(7), hours)
    holidays = draw(st.sets(holiday_dates(zone_name), max_size=8))
    return zone_name, weekly, holidays


@st.composite
def _instants(draw: st.DrawFn, zone_name: str) -> int:
    near = transitions(zone_name)
    if near and draw(st.integers(0, 3)) > 0:
        centre = draw(st.sampled_from(near))
        offset = draw(st.integers(0, 48)) * HOUR + draw(st.integers(0, HOUR))
        t = centre - offset if draw(st.booleans()) else centre + offset
    else:
        t = draw(st.integers(RANGE_LO, RANGE_HI))
    if draw(st.booleans()):
        t -= t % (15 * MINUTE)  # on interval boundaries more often
    return t


@cache
def instants(zone_name: str) -> st.SearchStrategy[int]:
    return _instants(zone_name)


@cache
def spans(max_days: int) -> st.SearchStrategy[int]:
    """A duration up to `max_days` days (whole days drawn separately: hypothesis favours
    small integers, which would make almost every span shorter than a second)."""
    return st.builds(
        lambda days, rest: days * DAY + rest, st.integers(0, max_days - 1), st.integers(0, DAY)
    )


def weekly_total(weekly: Weekly | None) -> int:
    if weekly is None:
        return WEEK
    return sum(end - start for spans in weekly.values() for start, end in spans) * US


def build(cal: tuple[str, Weekly | None, set[date]]) -> BusinessCalendar:
    zone_name, weekly, holidays = cal
    return BusinessCalendar(zone_name, weekly, holidays)


@st.composite
def amounts(draw: st.DrawFn, weekly: Weekly | None) -> int:
    nominal = weekly_total(weekly)
    if nominal == 0:
        return draw(st.integers(0, 10 * HOUR))
    weeks = draw(st.integers(0, 2))
    return weeks * nominal + draw(st.integers(0, nominal) | st.sampled_from([0, 1, MINUTE, HOUR]))


# -- properties -----------------------------------------------------------------------------


@PROFILE
@given(st.data())
def test_instant_after_is_the_earliest_inverse_of_counted_between(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    calendar = build(cal)
    start = data.draw(instants(cal[0]))
    counted = data.draw(amounts(cal[1]))
    if weekly_total(cal[1]) == 0 and counted > 0:
        try:
            calendar.instant_after(start, counted)
        except ValueError:
            return
        raise AssertionError("a calendar without working time reached a target")
    end = calendar.instant_after(start, counted)
    assert end >= start
    assert calendar.counted_between(start, end) == counted
    if counted > 0:  # earliest: the microsecond just before it is working time
        assert calendar.counted_between(start, end - 1) == counted - 1


@PROFILE
@given(st.data())
def test_instant_after_counted_between_is_at_or_before(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    calendar = build(cal)
    start = data.draw(instants(cal[0]))
    later = start + data.draw(spans(21))
    counted = calendar.counted_between(start, later)
    back = calendar.instant_after(start, counted)
    assert start <= back <= later
    assert calendar.counted_between(back, later) == 0


@PROFILE
@given(st.data())
def test_monotone_in_both_arguments(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    assume(weekly_total(cal[1]) > 0)
    calendar = build(cal)
    s1 = data.draw(instants(cal[0]))
    s2 = s1 + data.draw(spans(21) | spans(2) | spans(1))
    c1, c2 = sorted([data.draw(amounts(cal[1])), data.draw(amounts(cal[1]))])
    assert calendar.instant_after(s1, c1) <= calendar.instant_after(s1, c2)
    assert calendar.instant_after(s1, c1) <= calendar.instant_after(s2, c1)
    t = s2 + data.draw(spans(14))
    assert calendar.counted_between(s1, t) >= calendar.counted_between(s2, t)
    assert calendar.counted_between(s1, s2) <= calendar.counted_between(s1, t)


@PROFILE
@given(st.data())
def test_counted_between_is_additive(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    calendar = build(cal)
    a = data.draw(instants(cal[0]))
    b = a + data.draw(spans(21) | spans(2))
    c = b + data.draw(spans(21) | spans(2) | spans(730))  # up to two years: whole weeks
    total = calendar.counted_between(a, c)
    assert calendar.counted_between(a, b) + calendar.counted_between(b, c) == total
    assert 0 <= total <= c - a


@PROFILE
@given(st.data())
def test_counted_between_matches_the_zoneinfo_oracle(data: st.DataObject) -> None:
    cal = data.draw(calendars())
    zone_name, weekly, holidays = cal
    calendar = build(cal)
    near = transitions(zone_name)
    if data.draw(st.booleans()) and near:  # a span across a DST change
        centre = data.draw(st.sampled_from(near))
        a = centre - data.draw(spans(3))
        b = centre + data.draw(spans(3))
    else:
        a = data.draw(instants(zone_name))
        b = a + data.draw(spans(21) | spans(4))
    assert calendar.counted_between(a, b) == oracle_counted(zone_name, weekly, holidays, a, b)


@PROFILE
@given(st.sampled_from(ZONES), st.integers(RANGE_LO, RANGE_HI), st.integers(0, 400 * DAY))
def test_24x7_without_holidays_is_real_time(zone_name: str, start: int, counted: int) -> None:
    calendar = BusinessCalendar(zone_name, None)
    assert calendar.is_always
    assert calendar.instant_after(start, counted) == start + counted
    assert calendar.counted_between(start, start + counted) == counted
    full_days = BusinessCalendar(zone_name, {d: [(0, DAY_S)] for d in range(7)}, [FIRST_DAY])
    assert full_days.counted_between(start, start + counted) == counted  # holiday is earlier


DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]


@PROFILE
@given(st.data())
def test_dst_days_match_the_zoneinfo_oracle(data: st.DataObject) -> None:
    """Every day has intervals with ends in or at the zone's gaps and folds; the span
    covers a transition."""
    zone_name = data.draw(st.sampled_from(DST_ZONES))
    points = data.draw(
        st.lists(
            st.sampled_from(CRITICAL[zone_name]) | boundaries(zone_name),
            min_size=2,
            max_size=6,
            unique=True,
        )
    )
    points.sort()
    hours = [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    weekly: Weekly = dict.fromkeys(range(7), hours)
    calendar = BusinessCalendar(zone_name, weekly)
    centre = data.draw(st.sampled_from(transitions(zone_name)))
    a = centre - data.draw(st.integers(0, 30)) * HOUR - data.draw(st.integers(0, HOUR))
    b = centre + data.draw(st.integers(0, 30)) * HOUR + data.draw(st.integers(0, HOUR))
    counted = calendar.counted_between(a, b)
    assert counted == oracle_counted(zone_name, weekly, set(), a, b)
    end = calendar.instant_after(a, counted)
    assert end <= b
    assert calendar.counted_between(a, end) == counted
    if counted:
        assert calendar.counted_between(a, end - 1) == counted - 1
