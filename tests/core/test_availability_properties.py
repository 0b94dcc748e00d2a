"""Invariants of the availability clock over random status and maintenance histories."""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.availability import (
    SCALE,
    ServiceState,
    period_of,
    report_credit_percent,
)
from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant
from slaclock.processors.engine.services_stage import ServiceStage
from tests.core.service_builders import (
    APR_1,
    ServiceHarness,
    cancelled,
    make_services,
    scheduled,
    status_changed,
)

START = parse_instant(APR_1)
SPAN = 61 * 86_400 * US_PER_SECOND  # April and May
END = START + SPAN
STATUSES = [
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
]
SERVICES = make_services()

instants = st.integers(0, SPAN - 1)
# offsets biased towards whole hours so events often coincide with each other
offsets = st.one_of(instants, instants.map(lambda us: us - us % (3600 * US_PER_SECOND)))


@st.composite
def histories(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    service = draw(st.sampled_from(["portal", "office-app"]))
    raw = draw(
        st.lists(
            st.tuples(
                offsets,
                st.sampled_from(["status", "status", "status", "schedule", "cancel"]),
                st.sampled_from(STATUSES),
                st.sampled_from(["m1", "m2", "m3"]),
                offsets,
                st.integers(1, 6 * 3600 * US_PER_SECOND),
            ),
            max_size=25,
        )
    )
    events = []
    for at, kind, status, mid, start, length in sorted(raw, key=lambda item: item[0]):
        when = format_us(START + at)
        if kind == "status":
            events.append(status_changed(when, status, service))
        elif kind == "schedule":
            begins = START + start
            events.append(
                scheduled(when, mid, format_us(begins), format_us(begins + length), service)
            )
        else:
            events.append(cancelled(when, mid, service))
    return service, events


def reference_downtime(service: str, events: list[dict[str, Any]]) -> dict[str, Fraction]:
    """Downtime per period by brute force: cut time at every instant where anything changes,
    and weigh each piece by the status and windows known at its start."""
    policy = SERVICES[service]
    if not events:
        return {}
    first = parse_instant(events[0]["occurred_at"])
    start = period_of(policy.zone, first)[0]
    cuts = {start, END}
    for event in events:
        cuts.add(parse_instant(event["occurred_at"]))
        if event["type"] == "maintenance.scheduled":
            cuts.add(parse_instant(event["starts_at"]))
            cuts.add(parse_instant(event["ends_at"]))
    instant = start
    while instant < END:
        instant = period_of(policy.zone, instant)[1]
        cuts.add(instant)
    points = sorted(c for c in cuts if start <= c <= END)
    status = "operational"
    windows: dict[str, tuple[int, int, int]] = {}
    result: dict[str, Fraction] = {}
    pending = list(events)
    for a, b in itertools.pairwise(points):
        while pending and parse_instant(pending[0]["occurred_at"]) <= a:
            event = pending.pop(0)
            at = parse_instant(event["occurred_at"])
            if event["type"] == "service.status_changed":
                status = event["status"]
            elif event["type"] == "maintenance.scheduled":
                begins = parse_instant(event["starts_at"])
                old = windows.get(event["maintenance_id"])
                announced = old[2] if old is not None and old[0] == begins else at
                windows[event["maintenance_id"]] = (
                    begins,
                    parse_instant(event["ends_at"]),
                    announced,
                )
            else:
                windows.pop(event["maintenance_id"], None)
        excused = any(
            s <= a < e and s - announced >= policy.notice_us for s, e, announced in windows.values()
        )
        label = period_of(policy.zone, a)[2]
        weight = Fraction(0) if excused else policy.weights[status]
        result[label] = result.get(label, Fraction(0)) + weight * policy.calendar.counted_between(
            a, b
        )
    return result


def run(service: str, events: list[dict[str, Any]]) -> ServiceHarness:
    return ServiceHarness().feed(*events).until(format_us(END))


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(histories())
def test_downtime_never_exceeds_measured_time_and_matches_a_brute_force_count(
    history: tuple[str, list[dict[str, Any]]],
) -> None:
    service, events = history
    h = run(service, events)
    expected = reference_downtime(service, events)
    for report in h.of("report", service):
        assert report["downtime_seconds"] + report["excused_seconds"] <= report["measured_seconds"]
        exact = expected[report["period"]]
        assert report["downtime_seconds"] == _seconds(-((-exact * 1).__floor__()))
    for state in h.stage.store.values():
        assert state.downtime <= state.measured * SCALE


@FAST
@given(histories())
def test_a_breach_exists_exactly_when_the_report_says_not_met(
    history: tuple[str, list[dict[str, Any]]],
) -> None:
    h = run(*history)
    breached = {(b["service_id"], b["period"]) for b in h.of("breach")}
    for report in h.of("report"):
        assert ((report["service_id"], report["period"]) in breached) == (not report["met"])
    assert len(breached) == len(h.of("breach"))


@FAST
@given(histories())
def test_the_uptime_in_the_report_reproduces_the_band_chosen(
    history: tuple[str, list[dict[str, Any]]],
) -> None:
    h = run(*history)
    for report in h.of("report"):
        band = report_credit_percent(SERVICES[report["service_id"]], report)
        chosen = report["credit_percent"]
        assert band == (None if chosen is None else Decimal(chosen))


@FAST
@given(histories(), st.integers(0, 25))
def test_snapshot_and_restore_at_any_event_give_the_same_outputs(
    history: tuple[str, list[dict[str, Any]]], cut: int
) -> None:
    service, events = history
    whole = run(service, events)
    first = ServiceHarness().feed(*events[:cut])
    store = {
        sid: ServiceState.from_record(orjson.loads(orjson.dumps(state.to_record())))
        for sid, state in first.stage.store.items()
    }
    resumed = ServiceHarness()
    resumed.stage = ServiceStage(SERVICES, store)
    resumed.stage.restore_meta(first.stage.meta())
    resumed.stage.rebuild_timers()
    resumed.outputs = list(first.outputs)
    resumed.feed(*events[cut:]).until(format_us(END))
    assert resumed.outputs == whole.outputs


def _seconds(us: int) -> int | float:
    whole, rest = divmod(us, US_PER_SECOND)
    return whole if rest == 0 else us / US_PER_SECOND
