"""Business-hours calendar arithmetic: named instants, behaviour by name (docs/semantics.md: Policies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from slaclock.processors.engine.calendar import BusinessCalendar, calendar_from_spec

US = 1_000_000
MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
H = 3600  # seconds, for local second-of-day intervals


def local(text: str, tz: str = "Europe/Berlin", fold: int = 0) -> int:
    """A local wall time (must exist) -> microseconds since the epoch."""
    moment = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold)
    return utc_dt(moment)


def utc(text: str) -> int:
    return utc_dt(datetime.fromisoformat(text))


def utc_dt(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * H + int(minutes) * 60


def hours(*spans: str) -> list[tuple[int, int]]:
    out = []
    for span in spans:
        start, end = span.split("-")
        out.append((hm(start), hm(end)))
    return out


# The example calendar of docs/semantics.md: Policies.
BERLIN_OFFICE_WEEK = {
    0: hours("09:00-17:00"),
    1: hours("09:00-17:00"),
    2: hours("09:00-12:00", "13:00-17:00"),
    3: hours("09:00-17:00"),
    4: hours("09:00-15:00"),
}
BERLIN_HOLIDAYS = [date(2026, 12, 24), date(2026, 12, 25)]


@pytest.fixture
def office() -> BusinessCalendar:
    return BusinessCalendar("Europe/Berlin", BERLIN_OFFICE_WEEK, BERLIN_HOLIDAYS)


# Named instants (Berlin local unless the name says otherwise).
FRI_14 = local("2026-03-13 14:00")
FRI_15 = local("2026-03-13 15:00")
SAT_NOON = local("2026-03-14 12:00")
MON_09 = local("2026-03-16 09:00")
MON_10 = local("2026-03-16 10:00")
MON_16 = local("2026-03-16 16:00")
MON_17 = local("2026-03-16 17:00")
TUE_09 = local("2026-03-17 09:00")
WED_11 = local("2026-03-18 11:00")
WED_1130 = local("2026-03-18 11:30")
WED_12 = local("2026-03-18 12:00")
WED_1230 = local("2026-03-18 12:30")
WED_13 = local("2026-03-18 13:00")
WED_1330 = local("2026-03-18 13:30")
WED_14 = local("2026-03-18 14:00")
XMAS_EVE_EVE_16 = local("2026-12-23 16:00")  # Wednesday before the holidays
XMAS_EVE_EVE_17 = local("2026-12-23 17:00")
MON_AFTER_XMAS_09 = local("2026-12-28 09:00")
MON_AFTER_XMAS_10 = local("2026-12-28 10:00")

# DST days. Berlin: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST ->
# 02:00 CET (01:00Z). New York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z); 2026-11-01
# 02:00 EDT -> 01:00 EST (06:00Z).
BERLIN_SPRING_DAY = local("2026-03-29 00:00")  # a Sunday
BERLIN_SPRING_GAP_END = utc("2026-03-29T01:00:00+00:00")  # 03:00 CEST
BERLIN_FALL_DAY = local("2026-10-25 00:00")  # a Sunday
BERLIN_FALL_0230_FIRST = utc("2026-10-25T00:30:00+00:00")  # 02:30 CEST
BERLIN_FALL_0230_SECOND = utc("2026-10-25T01:30:00+00:00")  # 02:30 CET
NY = "America/New_York"
NY_SPRING_DAY = local("2026-03-08 00:00", NY)
NY_SPRING_GAP_END = utc("2026-03-08T07:00:00+00:00")  # 03:00 EDT
NY_FALL_DAY = local("2026-11-01 00:00", NY)
NY_FALL_0130_FIRST = utc("2026-11-01T05:30:00+00:00")  # 01:30 EDT
NY_FALL_0130_SECOND = utc("2026-11-01T06:30:00+00:00")  # 01:30 EST

SUNDAY = 6


def sunday_only(tz: str, *spans: str) -> BusinessCalendar:
    return BusinessCalendar(tz, {SUNDAY: hours(*spans)})


# -- ordinary business hours -------------------------------------------------------------


def test_friday_afternoon_target_runs_over_the_weekend_to_monday(
    office: BusinessCalendar,
) -> None:
    assert office.instant_after(FRI_14, 2 * HOUR) == MON_10
    assert office.counted_between(FRI_14, MON_10) == 2 * HOUR
    assert office.counted_between(FRI_15, MON_09) == 0
    assert office.counted_between(SAT_NOON, MON_10) == HOUR


def test_friday_target_reached_exactly_at_closing_stays_on_friday(
    office: BusinessCalendar,
) -> None:
    assert office.instant_after(FRI_14, HOUR) == FRI_15


def test_lunch_break_is_not_counted(office: BusinessCalendar) -> None:
    assert office.instant_after(WED_11, 2 * HOUR) == WED_14
    assert office.counted_between(WED_1130, WED_1330) == HOUR
    assert office.counted_between(WED_12, WED_13) == 0
    assert office.instant_after(WED_1230, 30 * MINUTE) == WED_1330


def test_holiday_run_skips_christmas_and_the_weekend(office: BusinessCalendar) -> None:
    assert office.counted_between(XMAS_EVE_EVE_17, MON_AFTER_XMAS_09) == 0
    assert office.instant_after(XMAS_EVE_EVE_16, 2 * HOUR) == MON_AFTER_XMAS_10
    assert office.counted_between(XMAS_EVE_EVE_16, MON_AFTER_XMAS_10) == 2 * HOUR


def test_long_span_adds_whole_weeks(office: BusinessCalendar) -> None:
    week = 8 + 8 + 7 + 8 + 6  # hours per ordinary week
    four_weeks_later = local("2026-04-13 09:00")  # across the spring-forward Sunday
    assert office.counted_between(MON_09, four_weeks_later) == 4 * week * HOUR
    assert office.counted_between(MON_09, MON_09 + 4 * 7 * DAY) == (4 * week + 1) * HOUR
    assert office.instant_after(MON_09, 4 * week * HOUR) == local("2026-04-10 15:00")


# -- boundaries ---------------------------------------------------------------------------


def test_instant_at_interval_end_and_start(office: BusinessCalendar) -> None:
    assert office.instant_after(MON_16, HOUR) == MON_17  # earliest, not next morning
    assert office.counted_between(MON_17, TUE_09) == 0
    assert office.instant_after(MON_17, 1) == TUE_09 + 1
    assert office.instant_after(TUE_09, 1) == TUE_09 + 1
    assert office.counted_between(MON_16, MON_17) == HOUR
    assert office.counted_between(MON_17 - 1, MON_17 + 1) == 1
    assert office.counted_between(TUE_09 - 1, TUE_09 + 1) == 1


def test_counted_zero_gives_start_even_outside_working_time(office: BusinessCalendar) -> None:
    assert office.instant_after(SAT_NOON, 0) == SAT_NOON
    assert office.instant_after(MON_10, 0) == MON_10


def test_empty_or_reversed_span_counts_nothing(office: BusinessCalendar) -> None:
    assert office.counted_between(MON_10, MON_10) == 0
    assert office.counted_between(MON_17, MON_10) == 0


def test_negative_counted_is_refused(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="negative"):
        office.instant_after(MON_10, -1)


def test_interval_ending_at_24_00_joins_the_next_morning() -> None:
    night = BusinessCalendar(
        "Europe/Berlin", {0: hours("22:00-24:00"), 1: hours("00:00-02:00", "22:00-23:00")}
    )
    mon_23 = local("2026-03-16 23:00")
    assert night.instant_after(mon_23, 2 * HOUR) == local("2026-03-17 01:00")
    assert night.counted_between(local("2026-03-16 21:00"), local("2026-03-17 12:00")) == (4 * HOUR)
    # Touching intervals ending exactly at midnight: the target at 24:00 is that midnight.
    assert night.instant_after(mon_23, HOUR) == local("2026-03-17 00:00")


def test_24_00_on_a_fall_back_day_is_the_next_midnight() -> None:
    cal = sunday_only("Europe/Berlin", "20:00-24:00")
    assert cal.counted_between(BERLIN_FALL_DAY, BERLIN_FALL_DAY + 2 * DAY) == 4 * HOUR
    assert cal.instant_after(BERLIN_FALL_DAY, 4 * HOUR) == local("2026-10-26 00:00")


# -- DST: Europe/Berlin ---------------------------------------------------------------------


def test_berlin_spring_forward_day_is_23_hours() -> None:
    cal = sunday_only("Europe/Berlin", "00:00-24:00")
    assert cal.counted_between(BERLIN_SPRING_DAY, BERLIN_SPRING_DAY + 2 * DAY) == 23 * HOUR
    assert cal.instant_after(BERLIN_SPRING_DAY, 23 * HOUR) == local("2026-03-30 00:00")


def test_berlin_fall_back_day_is_25_hours() -> None:
    cal = sunday_only("Europe/Berlin", "00:00-24:00")
    assert cal.counted_between(BERLIN_FALL_DAY, BERLIN_FALL_DAY + 2 * DAY) == 25 * HOUR
    assert cal.instant_after(BERLIN_FALL_DAY, 25 * HOUR) == local("2026-10-26 00:00")


def test_berlin_interval_containing_the_change_is_shorter_or_longer() -> None:
    cal = sunday_only("Europe/Berlin", "01:00-04:00", "09:00-17:00")
    spring = cal.counted_between(BERLIN_SPRING_DAY, BERLIN_SPRING_DAY + DAY)
    fall = cal.counted_between(BERLIN_FALL_DAY, BERLIN_FALL_DAY + 2 * DAY)
    assert spring == 2 * HOUR + 8 * HOUR  # 09:00-17:00 is unaffected: 8 h
    assert fall == 4 * HOUR + 8 * HOUR


def test_berlin_start_inside_the_spring_gap_maps_to_the_gap_end() -> None:
    cal = sunday_only("Europe/Berlin", "02:30-05:00")
    assert cal.instant_after(BERLIN_SPRING_DAY, 1) == BERLIN_SPRING_GAP_END + 1
    assert cal.counted_between(BERLIN_SPRING_DAY, BERLIN_SPRING_DAY + DAY) == 2 * HOUR
    assert cal.counted_between(BERLIN_SPRING_DAY, BERLIN_SPRING_GAP_END) == 0


def test_berlin_interval_entirely_inside_the_gap_is_empty() -> None:
    cal = sunday_only("Europe/Berlin", "02:10-02:50")
    assert cal.counted_between(BERLIN_SPRING_DAY, BERLIN_SPRING_DAY + DAY) == 0
    assert cal.counted_between(BERLIN_FALL_DAY, BERLIN_FALL_DAY + DAY) == 40 * MINUTE
    # The next counted time after the empty Sunday is the following Sunday's interval.
    assert cal.instant_after(BERLIN_SPRING_DAY, 1) == local("2026-04-05 02:10") + 1


def test_berlin_ambiguous_start_maps_to_first_occurrence() -> None:
    cal = sunday_only("Europe/Berlin", "02:30-05:00")
    assert cal.instant_after(BERLIN_FALL_DAY, 1) == BERLIN_FALL_0230_FIRST + 1
    assert cal.counted_between(BERLIN_FALL_DAY, BERLIN_FALL_DAY + DAY) == 3 * HOUR + 30 * MINUTE
    # An ambiguous end also means its first occurrence: 00:00-02:30 ends at 02:30 CEST.
    early = sunday_only("Europe/Berlin", "00:00-02:30")
    assert early.instant_after(BERLIN_FALL_DAY, 2 * HOUR + 30 * MINUTE) == BERLIN_FALL_0230_FIRST
    assert early.counted_between(BERLIN_FALL_0230_FIRST, BERLIN_FALL_0230_SECOND) == 0


# -- DST: America/New_York ------------------------------------------------------------------


def test_new_york_whole_days_on_dst_sundays() -> None:
    cal = sunday_only(NY, "00:00-24:00")
    assert cal.counted_between(NY_SPRING_DAY, NY_SPRING_DAY + DAY) == 23 * HOUR
    assert cal.counted_between(NY_FALL_DAY, NY_FALL_DAY + 2 * DAY) == 25 * HOUR


def test_new_york_interval_containing_the_change() -> None:
    cal = sunday_only(NY, "01:00-03:30")
    assert cal.counted_between(NY_SPRING_DAY, NY_SPRING_DAY + DAY) == 90 * MINUTE
    assert cal.counted_between(NY_FALL_DAY, NY_FALL_DAY + DAY) == 3 * HOUR + 30 * MINUTE


def test_new_york_spring_gap_start_maps_to_gap_end() -> None:
    cal = sunday_only(NY, "02:30-04:00")
    assert cal.instant_after(NY_SPRING_DAY, 1) == NY_SPRING_GAP_END + 1
    assert cal.counted_between(NY_SPRING_DAY, NY_SPRING_DAY + DAY) == HOUR


def test_new_york_ambiguous_start_maps_to_first_occurrence() -> None:
    cal = sunday_only(NY, "01:30-03:00")
    assert cal.instant_after(NY_FALL_DAY, 1) == NY_FALL_0130_FIRST + 1
    assert cal.instant_after(NY_FALL_DAY, 2 * HOUR + 30 * MINUTE) == local("2026-11-01 03:00", NY)
    assert cal.counted_between(NY_FALL_0130_FIRST, NY_FALL_0130_SECOND) == HOUR


# -- other zones ------------------------------------------------------------------------------


def test_lord_howe_half_hour_dst_days() -> None:
    tz = "Australia/Lord_Howe"  # 02:00 -> 02:30 in October, 02:00 -> 01:30 in April
    cal = sunday_only(tz, "00:00-24:00")
    spring = local("2026-10-04 00:00", tz)
    fall = local("2026-04-05 00:00", tz)
    assert cal.counted_between(spring, spring + DAY) == 23 * HOUR + 30 * MINUTE
    assert cal.counted_between(fall, fall + 2 * DAY) == 24 * HOUR + 30 * MINUTE
    gap = sunday_only(tz, "02:15-03:00")
    assert gap.instant_after(spring, 1) == local("2026-10-04 02:30", tz) + 1


def test_kolkata_has_no_dst() -> None:
    tz = "Asia/Kolkata"
    cal = BusinessCalendar(tz, {d: hours("10:00-18:00") for d in range(5)})
    mon = local("2026-03-16 10:00", tz)
    assert cal.counted_between(mon, mon + 7 * DAY) == 40 * HOUR
    assert cal.instant_after(mon, 9 * HOUR) == local("2026-03-17 11:00", tz)


# -- 24x7 ---------------------------------------------------------------------------------


def test_24x7_in_a_dst_zone_counts_real_time() -> None:
    always = BusinessCalendar("Europe/Berlin", None)
    assert always.is_always
    sat_noon = local("2026-03-28 12:00")
    assert always.instant_after(sat_noon, DAY) == local("2026-03-29 13:00")  # 24 real hours
    assert always.counted_between(sat_noon, local("2026-03-29 12:00")) == 23 * HOUR
    assert always.counted_between(BERLIN_FALL_DAY, BERLIN_FALL_DAY + DAY) == DAY


def test_full_week_of_whole_days_is_recognised_as_24x7() -> None:
    cal = BusinessCalendar(
        "Europe/Berlin", {d: hours("00:00-12:00", "12:00-24:00") for d in range(7)}
    )
    assert cal.is_always
    assert not BusinessCalendar("Europe/Berlin", BERLIN_OFFICE_WEEK).is_always


def test_24x7_holidays_apply_as_whole_local_days() -> None:
    cal = BusinessCalendar("Europe/Berlin", None, [date(2026, 3, 29)])
    assert not cal.is_always
    sat_noon = local("2026-03-28 12:00")
    mon_noon = local("2026-03-30 12:00")
    assert cal.counted_between(sat_noon, mon_noon) == 24 * HOUR  # 12 h Sat + 12 h Mon
    assert cal.instant_after(sat_noon, 12 * HOUR) == local("2026-03-29 00:00")
    assert cal.instant_after(sat_noon, 12 * HOUR + 1) == local("2026-03-30 00:00") + 1


# -- week edges and odd zones -----------------------------------------------------------


def test_spans_across_the_local_week_boundary() -> None:
    # Whole days with a (far away) holiday: not 24x7, so the week tables are used.
    cal = BusinessCalendar("Europe/Berlin", None, [date(2030, 1, 1)])
    sun_23 = local("2026-03-15 23:00")
    mon_00 = local("2026-03-16 00:00")  # a week starts here
    assert cal.counted_between(sun_23, mon_00 - 1) == HOUR - 1
    assert cal.counted_between(sun_23, mon_00) == HOUR
    assert cal.counted_between(mon_00 - 1, mon_00 + 1) == 2
    assert cal.counted_between(sun_23, mon_00 + HOUR) == 2 * HOUR
    assert cal.instant_after(sun_23, HOUR) == mon_00
    assert cal.instant_after(sun_23, HOUR + 1) == mon_00 + 1
    assert cal.instant_after(mon_00 - 1, 1) == mon_00


def test_a_whole_skipped_day_has_no_working_time() -> None:
    # Samoa skipped Friday 2011-12-30 (UTC-10 -> UTC+14): a 24-hour gap.
    tz = "Pacific/Apia"
    cal = BusinessCalendar(tz, {3: hours("09:00-24:00"), 4: hours("09:00-17:00")})
    thu_09 = local("2011-12-29 09:00", tz)
    sat_00 = local("2011-12-31 00:00", tz)
    assert sat_00 - thu_09 == 15 * HOUR
    assert cal.counted_between(thu_09, sat_00 + 7 * DAY) == 15 * HOUR + 15 * HOUR + 8 * HOUR
    assert cal.instant_after(thu_09, 15 * HOUR) == sat_00  # Thursday's 24:00 is in the gap
    assert cal.instant_after(thu_09, 15 * HOUR + 1) == local("2012-01-05 09:00", tz) + 1


# -- no working time ----------------------------------------------------------------------


@pytest.mark.parametrize("weekly", [{}, {d: [] for d in range(7)}])
def test_calendar_without_working_time_raises(weekly: dict[int, list[tuple[int, int]]]) -> None:
    cal = BusinessCalendar("Europe/Berlin", weekly)
    assert cal.counted_between(MON_09, MON_09 + 100 * DAY) == 0
    assert cal.instant_after(MON_09, 0) == MON_09
    with pytest.raises(ValueError, match="no working time"):
        cal.instant_after(MON_09, 1)


def test_long_run_of_holidays_delays_but_does_not_fail() -> None:
    start = date(2026, 1, 1)
    holidays = [date.fromordinal(start.toordinal() + i) for i in range(3 * 366)]
    cal = BusinessCalendar("Europe/Berlin", {0: hours("09:00-10:00")}, holidays)
    first_monday_after = local("2029-01-08 09:00")
    assert cal.instant_after(local("2026-01-01 00:00"), HOUR) == first_monday_after + HOUR


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weekly",
    [
        {0: [(9 * H, 17 * H), (16 * H, 18 * H)]},  # overlap
        {0: [(17 * H, 9 * H)]},  # reversed
        {0: [(9 * H, 9 * H)]},  # empty
        {0: [(0, 86_401)]},  # beyond 24:00
        {7: [(0, H)]},  # no such weekday
    ],
)
def test_invalid_weekly_hours_are_refused(weekly: dict[int, list[tuple[int, int]]]) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar("Europe/Berlin", weekly)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        BusinessCalendar("Europe/Atlantis", None)


@dataclass
class FakeSpec:
    timezone: str
    is_24x7: bool
    hours: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    holidays: list[date] = field(default_factory=list)

    def weekly_intervals(self) -> dict[int, list[tuple[int, int]]]:
        return self.hours


def test_calendar_from_spec_builds_business_and_24x7_calendars() -> None:
    office = calendar_from_spec(
        FakeSpec("Europe/Berlin", False, BERLIN_OFFICE_WEEK, BERLIN_HOLIDAYS)
    )
    assert not office.is_always
    assert office.instant_after(XMAS_EVE_EVE_16, 2 * HOUR) == MON_AFTER_XMAS_10
    always = calendar_from_spec(FakeSpec("UTC", True, BERLIN_OFFICE_WEEK))
    assert always.is_always
    assert always.instant_after(MON_10, 3 * DAY) == MON_10 + 3 * DAY
