"""Service availability rules, one behaviour per test, driven through `ServiceStage`."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import orjson
import pytest

from slaclock.processors.engine.availability import (
    ServiceState,
    credit_percent,
    format_percent,
    report_credit_percent,
)
from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.services_stage import ServiceStage
from tests.core.service_builders import (
    APR_1,
    APR_BUDGET_S,
    APR_MEASURED_S,
    HOUR,
    JUN_1,
    MAY_1,
    ServiceHarness,
    T,
    cancelled,
    make_services,
    plus,
    scheduled,
    status_changed,
)

BUDGET_US = APR_BUDGET_S * US_PER_SECOND
DAY_US = 24 * HOUR
NOTICE_US = 2 * DAY_US


def outage(start: str, length_us: int, kind: str = "major_outage") -> list[dict[str, object]]:
    return [status_changed(start, kind), status_changed(plus(start, length_us), "operational")]


# -- budget, breach, met ------------------------------------------------------------------


def test_recovery_exactly_at_the_budget_instant_is_met() -> None:
    h = ServiceHarness().feed(*outage(T, BUDGET_US)).until(MAY_1)
    assert h.of("breach") == []
    report = h.one("report")
    assert report["met"] is True
    assert report["downtime_seconds"] == APR_BUDGET_S
    assert report["uptime_percent"] == "99.5000"
    assert report["credit_percent"] is None


def test_recovery_a_microsecond_after_the_budget_instant_breaches_at_that_instant() -> None:
    h = ServiceHarness().feed(*outage(T, BUDGET_US + 1)).until(MAY_1)
    breach = h.one("breach")
    assert breach["at"] == plus(T, BUDGET_US)
    assert h.one("report")["met"] is False
    assert h.one("report")["uptime_percent"] == "99.4999"


def test_breach_at_the_budget_instant_while_the_outage_goes_on() -> None:
    h = ServiceHarness().feed(status_changed(T, "major_outage")).until(plus(T, BUDGET_US))
    assert h.one("breach")["at"] == plus(T, BUDGET_US)


def test_an_outage_that_resumes_after_reaching_the_budget_exactly_breaches_when_it_resumes() -> (
    None
):
    later = "2026-04-20T12:00:00Z"
    h = ServiceHarness().feed(*outage(T, BUDGET_US), status_changed(later, "partial_outage"))
    h.until(MAY_1)
    assert h.one("breach")["at"] == later


def test_warnings_at_each_fraction_of_the_budget() -> None:
    h = ServiceHarness().feed(status_changed(T, "major_outage")).until(plus(T, BUDGET_US))
    warnings = h.of("warning")
    assert [(w["threshold"], w["at"]) for w in warnings] == [
        (0.5, plus(T, BUDGET_US // 2)),
        (0.9, plus(T, BUDGET_US * 9 // 10)),
    ]
    assert warnings[0]["downtime_seconds"] == APR_BUDGET_S // 2
    assert warnings[0]["budget_seconds"] == APR_BUDGET_S


def test_a_warning_at_a_weight_0_3_crossing_lands_on_the_exact_microsecond() -> None:
    # 1 µs of major outage, then partial outage (weight 0.3): the 0.5 threshold (6480 s)
    # needs ceil((6,480,000,000 - 1) / 0.3) = 21,599,999,997 µs of partial outage.
    h = ServiceHarness().feed(
        status_changed(T, "major_outage"), status_changed(plus(T, 1), "partial_outage")
    )
    h.until(MAY_1)
    warning = h.of("warning")[0]
    assert warning["at"] == plus(T, 1 + 21_599_999_997)
    assert warning["downtime_seconds"] == 6480.000001  # 6,480,000,000.1 µs, rounded up


def test_the_breach_is_at_most_once_per_period_and_each_warning_once() -> None:
    h = (
        ServiceHarness()
        .feed(*outage(T, BUDGET_US + HOUR), *outage("2026-04-20T00:00:00Z", HOUR))
        .until(MAY_1)
    )
    assert len(h.of("breach")) == 1
    assert len(h.of("warning")) == 2


# -- statuses and weights ------------------------------------------------------------------


def test_partial_outage_counts_at_its_weight() -> None:
    h = ServiceHarness().feed(*outage(T, 10 * HOUR, "partial_outage")).until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 3 * 3600  # 10 h x 0.3


def test_degraded_performance_is_not_downtime_by_default() -> None:
    h = ServiceHarness().feed(*outage(T, 10 * HOUR, "degraded_performance")).until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 0


def test_unannounced_maintenance_counts_as_downtime() -> None:
    h = ServiceHarness().feed(*outage(T, 2 * HOUR, "under_maintenance")).until(MAY_1)
    report = h.one("report")
    assert report["downtime_seconds"] == 7200
    assert report["excused_seconds"] == 0


def test_a_service_is_operational_before_its_first_event_and_its_first_period_is_whole() -> None:
    h = ServiceHarness().feed(status_changed("2026-04-29T00:00:00Z", "operational")).until(MAY_1)
    report = h.one("report")
    assert report["measured_seconds"] == APR_MEASURED_S
    assert report["period_start"] == APR_1
    assert report["downtime_seconds"] == 0
    assert report["uptime_percent"] == "100.0000"


# -- maintenance windows ---------------------------------------------------------------------

WINDOW_START = "2026-04-15T02:00:00Z"
WINDOW_END = "2026-04-15T04:00:00Z"


def maintenance_under(
    announced: str, starts: str = WINDOW_START, ends: str = WINDOW_END
) -> list[dict[str, object]]:
    return [
        scheduled(announced, "m1", starts, ends),
        status_changed(starts, "under_maintenance"),
        status_changed(ends, "operational"),
    ]


def test_maintenance_announced_exactly_the_notice_ahead_is_excused() -> None:
    announced = plus(WINDOW_START, -NOTICE_US)
    h = ServiceHarness().feed(*maintenance_under(announced)).until(MAY_1)
    report = h.one("report")
    assert report["downtime_seconds"] == 0
    assert report["excused_seconds"] == 7200
    assert report["measured_seconds"] == APR_MEASURED_S  # excused time stays measured


def test_maintenance_announced_a_microsecond_less_than_the_notice_ahead_is_not_excused() -> None:
    announced = plus(WINDOW_START, -NOTICE_US + 1)
    h = ServiceHarness().feed(*maintenance_under(announced)).until(MAY_1)
    report = h.one("report")
    assert report["downtime_seconds"] == 7200
    assert report["excused_seconds"] == 0


def test_an_excused_window_excuses_any_status_inside_it() -> None:
    h = ServiceHarness().feed(
        scheduled("2026-04-01T00:00:00Z", "m1", WINDOW_START, WINDOW_END),
        *outage("2026-04-15T01:00:00Z", 4 * HOUR),  # 01:00-05:00, the window is 02:00-04:00
    )
    h.until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 2 * 3600
    assert h.one("report")["excused_seconds"] == 2 * 3600


def test_rescheduling_only_ends_at_keeps_a_window_excused() -> None:
    h = ServiceHarness().feed(
        scheduled("2026-04-01T00:00:00Z", "m1", WINDOW_START, WINDOW_END),
        # a day before: too late to announce a new window, but only the end moves
        scheduled("2026-04-14T02:00:00Z", "m1", WINDOW_START, "2026-04-15T05:00:00Z"),
        *outage(WINDOW_START, 3 * HOUR, "under_maintenance"),
    )
    h.until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 0
    assert h.one("report")["excused_seconds"] == 3 * 3600


def test_rescheduling_only_ends_at_keeps_a_late_window_not_excused() -> None:
    h = ServiceHarness().feed(
        scheduled("2026-04-14T02:00:00Z", "m1", WINDOW_START, WINDOW_END),
        scheduled("2026-04-14T03:00:00Z", "m1", WINDOW_START, "2026-04-15T05:00:00Z"),
        *outage(WINDOW_START, 3 * HOUR, "under_maintenance"),
    )
    h.until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 3 * 3600


def test_moving_starts_at_counts_the_notice_from_the_new_announcement() -> None:
    h = ServiceHarness().feed(
        scheduled("2026-04-01T00:00:00Z", "m1", WINDOW_START, WINDOW_END),
        scheduled("2026-04-14T02:00:00Z", "m1", "2026-04-15T03:00:00Z", WINDOW_END),
        *outage("2026-04-15T03:00:00Z", HOUR, "under_maintenance"),
    )
    h.until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 3600


def test_overlapping_excused_windows_count_once() -> None:
    h = ServiceHarness().feed(
        scheduled("2026-04-01T00:00:00Z", "m1", "2026-04-15T02:00:00Z", "2026-04-15T04:00:00Z"),
        scheduled("2026-04-01T00:00:00Z", "m2", "2026-04-15T03:00:00Z", "2026-04-15T06:00:00Z"),
        *outage("2026-04-15T01:00:00Z", 6 * HOUR),  # 01:00-07:00
    )
    h.until(MAY_1)
    report = h.one("report")
    assert report["excused_seconds"] == 4 * 3600  # 02:00-06:00
    assert report["downtime_seconds"] == 2 * 3600  # 01:00-02:00 and 06:00-07:00


def test_a_cancelled_window_is_not_excused() -> None:
    h = ServiceHarness().feed(
        scheduled("2026-04-01T00:00:00Z", "m1", WINDOW_START, WINDOW_END),
        cancelled("2026-04-10T00:00:00Z", "m1"),
        *maintenance_under("2026-04-10T00:00:01Z")[1:],
    )
    h.until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 7200


def test_a_cancel_of_an_unknown_window_is_ignored_and_counted() -> None:
    h = ServiceHarness().feed(cancelled(T, "nope")).until(MAY_1)
    assert h.stage.counters.ignored_cancels == 1
    assert h.rejected == []


# -- periods ----------------------------------------------------------------------------------


def test_an_outage_across_a_month_end_splits_between_the_periods() -> None:
    h = ServiceHarness().feed(*outage("2026-04-30T22:00:00Z", 5 * HOUR)).until(JUN_1)
    april = h.one("report", period="2026-04")
    may = h.one("report", period="2026-05")
    assert april["downtime_seconds"] == 2 * 3600
    assert may["downtime_seconds"] == 3 * 3600
    assert april["at"] == MAY_1
    assert may["measured_seconds"] == 31 * 86_400


def test_an_event_at_the_period_end_belongs_to_the_next_period() -> None:
    h = ServiceHarness().feed(status_changed(T, "operational"), *outage(MAY_1, HOUR))
    h.until(JUN_1)
    assert h.one("report", period="2026-04")["downtime_seconds"] == 0
    assert h.one("report", period="2026-05")["downtime_seconds"] == 3600


def test_periods_are_months_in_the_service_time_zone() -> None:
    h = ServiceHarness().feed(status_changed("2026-04-10T10:00:00Z", "operational", "office-app"))
    h.until(JUN_1)
    report = h.one("report", "office-app", period="2026-04")
    assert report["period_start"] == "2026-03-31T22:00:00Z"  # Berlin midnight, summer time
    assert report["at"] == "2026-04-30T22:00:00Z"


def test_a_period_with_no_working_time_has_uptime_100_is_met_and_has_no_warnings() -> None:
    h = (
        ServiceHarness()
        .feed(status_changed("2026-02-03T00:00:00Z", "major_outage", "seasonal"))
        .until("2026-03-01T00:00:01Z")
    )
    february = h.one("report", "seasonal", period="2026-02")
    assert february["measured_seconds"] == 0
    assert february["downtime_seconds"] == 0
    assert february["uptime_percent"] == "100.0000"
    assert february["met"] is True
    assert february["budget_seconds"] == 0
    assert h.of("warning") == h.of("breach") == []


def test_downtime_counts_only_in_the_calendar_working_time() -> None:
    # Friday 2026-04-10 16:00 Berlin (14:00Z) to Monday 10:00 Berlin: 1 h + 1 h of work.
    h = ServiceHarness().feed(
        status_changed("2026-04-10T14:00:00Z", "major_outage", "office-app"),
        status_changed("2026-04-13T08:00:00Z", "operational", "office-app"),
    )
    h.until("2026-05-01T00:00:00Z")
    report = h.one("report", "office-app")
    assert report["downtime_seconds"] == 7200
    assert report["measured_seconds"] == 22 * 8 * 3600  # 22 weekdays in April 2026


def test_a_budget_reached_exactly_at_the_end_of_working_hours_breaches_when_work_resumes() -> None:
    # April 2026: 176 working hours, 1 % budget = 6336 s = 1h45m36s. An outage from
    # 15:14:24 Berlin reaches it at 17:00 exactly (the day's end) and goes on overnight.
    h = ServiceHarness().feed(status_changed("2026-04-14T13:14:24Z", "major_outage", "office-app"))
    h.until("2026-04-15T12:00:00Z")
    assert h.one("breach", "office-app")["at"] == "2026-04-15T07:00:00Z"  # 09:00 Berlin


# -- input handling ----------------------------------------------------------------------------


def test_an_unknown_service_is_rejected() -> None:
    h = ServiceHarness().feed(status_changed(T, "major_outage", "ghost"))
    assert [r.error_class for r in h.rejected] == ["UnknownService"]
    assert "ghost" in h.rejected[0].message
    assert h.stage.clock is None


@pytest.mark.parametrize(
    ("raw", "error_class"),
    [
        (b"{not json", "InvalidJson"),
        (
            b'{"event_id":"x","type":"service.status_changed","service_id":"portal",'
            b'"occurred_at":"2026-04-10T08:00:00","status":"major_outage"}',
            "NaiveTimestamp",
        ),
        (
            b'{"event_id":"x","type":"service.status_changed","service_id":"portal",'
            b'"occurred_at":"2026-04-10T08:00:00Z","status":"down"}',
            "SchemaViolation",
        ),
    ],
)
def test_invalid_records_are_rejected_with_their_class(raw: bytes, error_class: str) -> None:
    h = ServiceHarness().feed(raw)
    assert [r.error_class for r in h.rejected] == [error_class]


def test_a_window_that_ends_before_it_starts_is_rejected() -> None:
    h = ServiceHarness().feed(scheduled(T, "m1", WINDOW_END, WINDOW_START))
    assert [r.error_class for r in h.rejected] == ["SchemaViolation"]
    assert "ends_at" in h.rejected[0].message


def test_a_repeated_event_id_is_dropped() -> None:
    first = status_changed(T, "major_outage", event_id="same")
    again = status_changed(plus(T, HOUR), "operational", event_id="same")
    h = ServiceHarness().feed(first, again).until(MAY_1)
    assert h.stage.counters.duplicates == 1
    assert h.one("report")["downtime_seconds"] == (parse_instant(MAY_1) - parse_instant(T)) // (
        US_PER_SECOND
    )


def test_a_repeated_event_id_is_recognised_for_a_day_of_the_service_time() -> None:
    first = status_changed(T, "major_outage", event_id="same")
    within = status_changed(plus(T, 24 * HOUR), "operational", event_id="same")
    later = status_changed(plus(T, 24 * HOUR + 1), "operational", event_id="same")
    h = ServiceHarness().feed(first, within)
    assert h.stage.counters.duplicates == 1
    h.feed(later).until(MAY_1)  # forgotten by now: applied
    assert h.stage.counters.duplicates == 1
    assert h.one("report")["downtime_seconds"] == 24 * 3600 + 0.000001  # until the later one


def test_a_late_event_is_applied_as_of_the_clock() -> None:
    h = ServiceHarness(grace_us=0).feed(status_changed(T, "major_outage"))
    h.until(plus(T, HOUR))
    h.feed(status_changed(plus(T, HOUR // 2), "operational"))  # older than the clock
    h.until(MAY_1)
    assert h.stage.counters.late == 1
    assert h.one("report")["downtime_seconds"] == 3600


def test_advance_before_fires_only_timers_strictly_before_the_instant() -> None:
    h = ServiceHarness().feed(status_changed(T, "major_outage"))
    at_budget = parse_instant(plus(T, BUDGET_US))
    fired = h.stage.advance_before(at_budget)
    assert [o["type"] for o in fired] == ["sla.availability_warning"] * 2
    h.feed(status_changed(plus(T, BUDGET_US), "operational"))  # at the instant: not late
    assert h.stage.counters.late == 0
    h.until(MAY_1)
    assert h.of("breach") == []


def test_same_instant_events_apply_in_log_order() -> None:
    h = ServiceHarness().feed(
        status_changed(T, "major_outage"),
        status_changed(T, "operational"),
    )
    h.until(MAY_1)
    assert h.one("report")["downtime_seconds"] == 0


def test_grace_holds_back_other_services_timers_not_the_events_own_service() -> None:
    h = ServiceHarness(grace_us=2 * US_PER_SECOND).feed(status_changed(T, "major_outage"))
    at_budget = plus(T, BUDGET_US)
    h.feed(status_changed(plus(at_budget, 1), "operational"))  # its own breach fires first
    assert h.one("breach")["at"] == at_budget


# -- reports and credits --------------------------------------------------------------------------


def test_the_report_carries_the_band_credit_and_the_uptime_rounded_down() -> None:
    h = ServiceHarness().feed(*outage(T, 20 * HOUR)).until(MAY_1)
    report = h.one("report")
    # 72000 / 2592000 = 2.777...% down -> 97.2222...% up: below 99.0, not below 95.0
    assert report["uptime_percent"] == "97.2222"
    assert report["credit_percent"] == "25"
    assert report["met"] is False
    assert report["target_percent"] == "99.5"


def test_the_band_is_the_smallest_below_the_uptime_is_strictly_below() -> None:
    portal = make_services()["portal"]
    measured = APR_MEASURED_S * US_PER_SECOND
    at_99 = measured // 100  # exactly 99.0 % uptime: not below 99.0
    assert credit_percent(portal, at_99, measured) == Decimal("10")
    assert credit_percent(portal, at_99 + 1, measured) == Decimal("25")
    assert credit_percent(portal, measured // 2, measured) == Decimal("100")
    assert credit_percent(portal, 0, measured) is None
    assert credit_percent(portal, 0, 0) is None


def test_report_uptime_reproduces_the_band_at_a_band_edge() -> None:
    portal = make_services()["portal"]
    measured = APR_MEASURED_S * US_PER_SECOND
    for downtime in (measured // 100 - 1, measured // 100, measured // 100 + 1):
        report = {"uptime_percent": format_percent(100 * (1 - Fraction(downtime, measured)))}
        assert report_credit_percent(portal, report) == credit_percent(portal, downtime, measured)


def test_outputs_have_deterministic_ids_and_serialise_to_json() -> None:
    first = ServiceHarness().feed(*outage(T, BUDGET_US + HOUR)).until(MAY_1).outputs
    second = ServiceHarness().feed(*outage(T, BUDGET_US + HOUR)).until(MAY_1).outputs
    assert orjson.dumps(first) == orjson.dumps(second)
    assert len({o["event_id"] for o in first}) == len(first)


def test_snapshot_and_restore_give_the_same_future_outputs() -> None:
    events = [
        scheduled("2026-04-01T00:00:00Z", "m1", WINDOW_START, WINDOW_END),
        status_changed(T, "partial_outage"),
    ]
    later = [status_changed("2026-04-16T00:00:00Z", "major_outage")]
    whole = ServiceHarness().feed(*events, *later).until(JUN_1)

    cut = ServiceHarness().feed(*events)
    records = {sid: state.to_record() for sid, state in cut.stage.store.items()}
    meta = cut.stage.meta()
    restored_store = {
        sid: ServiceState.from_record(orjson.loads(orjson.dumps(record)))
        for sid, record in records.items()
    }
    resumed = ServiceHarness()
    resumed.stage = ServiceStage(make_services(), restored_store)
    resumed.stage.restore_meta(meta)
    resumed.stage.rebuild_timers()
    resumed.outputs = list(cut.outputs)
    resumed.feed(*later).until(JUN_1)
    assert resumed.outputs == whole.outputs


def test_the_status_view_projects_when_the_budget_runs_out() -> None:
    h = ServiceHarness().feed(status_changed(T, "major_outage")).until(plus(T, HOUR))
    view = h.stage.status("portal")
    assert view is not None
    assert view["status"] == "major_outage"
    assert view["downtime_seconds"] == 3600
    assert view["budget_left_seconds"] == APR_BUDGET_S - 3600
    assert view["budget_exhausted_at"] == plus(T, BUDGET_US)
    h.feed(status_changed(plus(T, HOUR), "operational"))
    recovered = h.stage.status("portal")
    assert recovered is not None
    assert recovered["budget_exhausted_at"] is None
