"""One behaviour test per rule of docs/semantics.md: Metrics; Warnings, breaches and time order (metrics, pauses, reopen, recompute).

Enterprise tier (24x7, UTC): first_response high 1h, next_response high 2h,
periodic_update high 4h, resolution high 8h; warnings at 0.5 and 0.75.
"""

from __future__ import annotations

from tests.core.builders import (
    Harness,
    agent_reply,
    created,
    customer_reply,
    priority,
    status,
)

T0 = "2026-03-02T09:00:00Z"  # Monday
T0_0930 = "2026-03-02T09:30:00Z"
T0_0945 = "2026-03-02T09:45:00Z"
T0_1000 = "2026-03-02T10:00:00Z"  # first_response (high, 1h) deadline
T0_1001 = "2026-03-02T10:01:00Z"
T0_1100 = "2026-03-02T11:00:00Z"
T0_1700 = "2026-03-02T17:00:00Z"  # resolution (high, 8h) deadline
NEXT_DAY = "2026-03-03T09:00:00Z"


def test_reply_exactly_at_deadline_is_met() -> None:
    h = Harness().feed(created(T0), agent_reply(T0_1000)).until(T0_1001)
    done = h.one("completed", "first_response")
    assert done["outcome"] == "met"
    assert done["elapsed_seconds"] == 3600
    assert done["at"] == T0_1000
    assert h.of("breach", "first_response") == []


def test_reply_after_deadline_completes_as_breached() -> None:
    h = Harness().feed(created(T0), agent_reply(T0_1001))
    breach = h.one("breach", "first_response")
    assert breach["at"] == T0_1000 and breach["deadline"] == T0_1000
    assert breach["decided_at"] == T0_1000
    assert h.one("completed", "first_response")["outcome"] == "breached"


def test_warnings_fire_at_each_threshold_instant() -> None:
    h = Harness().feed(created(T0)).until(T0_1000)
    warnings = h.of("warning", "first_response")
    assert [(w["threshold"], w["at"]) for w in warnings] == [(0.5, T0_0930), (0.75, T0_0945)]
    assert all(w["deadline"] == T0_1000 and w["target_seconds"] == 3600 for w in warnings)


def test_timer_at_instant_fires_only_when_clock_reaches_it() -> None:
    h = Harness().feed(created(T0)).until("2026-03-02T09:29:59Z")
    assert h.of("warning") == []


def test_non_public_reply_does_nothing() -> None:
    h = Harness().feed(created(T0), agent_reply("2026-03-02T09:10:00Z", public=False))
    h.until(T0_1001)
    assert h.of("completed") == []
    assert h.one("breach", "first_response")["at"] == T0_1000


def test_pending_pauses_resolution_but_not_first_response() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            status("2026-03-02T10:30:00Z", "pending"),  # resolution paused after 1h30m
            status("2026-03-02T12:30:00Z", "open"),  # 2h later it resumes
        )
        .until("2026-03-03T00:00:00Z")
    )
    assert h.one("breach", "first_response")["at"] == T0_1000
    assert h.one("breach", "resolution")["at"] == "2026-03-02T19:00:00Z"  # 17:00 + 2h


def test_on_hold_pauses_resolution_when_listed_in_pause_on() -> None:
    h = Harness().feed(created(T0), agent_reply(T0_0930), status(T0_1000, "on_hold"))
    h.feed(status(NEXT_DAY, "open")).until("2026-03-03T15:59:59Z")
    assert h.of("breach", "resolution") == []  # 1h counted before the hold, 7h after resume
    h.until("2026-03-03T16:00:00Z")
    assert h.one("breach", "resolution")["at"] == "2026-03-03T16:00:00Z"


def test_pause_does_not_pause_first_response_on_business_tier() -> None:
    h = (
        Harness()
        .feed(
            created("2026-03-02T08:00:00Z", customer="globex"),  # Mon 09:00 Berlin
            status("2026-03-02T08:30:00Z", "pending"),
        )
        .until("2026-03-02T10:00:00Z")
    )
    assert h.one("breach", "first_response")["at"] == "2026-03-02T10:00:00Z"


def test_next_response_starts_on_customer_reply_after_first_public_reply() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            customer_reply("2026-03-02T09:05:00Z"),  # before any agent reply: no next_response
            agent_reply("2026-03-02T09:10:00Z"),
            customer_reply("2026-03-02T09:20:00Z"),
        )
        .until("2026-03-02T11:20:00Z")
    )
    breach = h.one("breach", "next_response")
    assert breach["at"] == "2026-03-02T11:20:00Z" and breach["cycle"] == 1


def test_customer_reply_while_next_response_runs_does_not_restart_it() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            agent_reply("2026-03-02T09:10:00Z"),
            customer_reply("2026-03-02T09:20:00Z"),
            customer_reply("2026-03-02T10:20:00Z"),
        )
        .until(NEXT_DAY)
    )
    assert [b["at"] for b in h.of("breach", "next_response")] == ["2026-03-02T11:20:00Z"]


def test_agent_reply_completes_next_response_cycle_and_cycles_count_up() -> None:
    h = Harness().feed(
        created(T0),
        agent_reply("2026-03-02T09:10:00Z"),
        customer_reply("2026-03-02T09:20:00Z"),
        agent_reply("2026-03-02T09:50:00Z"),
        customer_reply("2026-03-02T10:00:00Z"),
        agent_reply("2026-03-02T10:30:00Z"),
    )
    done = h.of("completed", "next_response")
    assert [(d["cycle"], d["elapsed_seconds"], d["outcome"]) for d in done] == [
        (1, 1800, "met"),
        (2, 1800, "met"),
    ]


def test_each_public_agent_reply_starts_next_periodic_update_cycle() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            agent_reply("2026-03-02T09:10:00Z"),  # starts cycle 1
            agent_reply("2026-03-02T11:10:00Z"),  # completes 1, starts 2
        )
        .until("2026-03-02T15:10:00Z")
    )
    assert [(d["cycle"], d["outcome"]) for d in h.of("completed", "periodic_update")] == [
        (1, "met")
    ]
    breach = h.one("breach", "periodic_update")
    assert (breach["cycle"], breach["at"]) == (2, "2026-03-02T15:10:00Z")


def test_periodic_update_pauses_while_pending() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            agent_reply("2026-03-02T09:10:00Z"),
            status("2026-03-02T10:10:00Z", "pending"),
            status("2026-03-02T12:10:00Z", "open"),
        )
        .until("2026-03-02T17:10:00Z")
    )
    assert h.one("breach", "periodic_update")["at"] == "2026-03-02T15:10:00Z"


def test_solved_completes_resolution_and_cancels_cycles() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            agent_reply("2026-03-02T09:10:00Z"),
            customer_reply("2026-03-02T09:20:00Z"),
            status("2026-03-02T09:40:00Z", "solved"),
        )
        .until(NEXT_DAY)
    )
    res = h.one("completed", "resolution")
    assert (res["outcome"], res["elapsed_seconds"]) == ("met", 2400)
    assert h.of("breach") == []
    assert h.of("completed", "next_response") == []
    assert h.of("completed", "periodic_update") == []


def test_closed_before_first_reply_cancels_first_response() -> None:
    h = Harness().feed(created(T0), status("2026-03-02T09:20:00Z", "closed")).until(NEXT_DAY)
    assert h.of("completed", "first_response") == []
    assert h.of("breach") == []
    assert h.one("completed", "resolution")["elapsed_seconds"] == 1200


def test_solved_stops_first_response_and_reopen_resumes_it() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            status("2026-03-02T09:20:00Z", "solved"),  # 20 min counted, stopped
            status("2026-03-02T12:00:00Z", "open"),  # resumes with 40 min left
        )
        .until("2026-03-02T12:40:00Z")
    )
    assert h.one("breach", "first_response")["at"] == "2026-03-02T12:40:00Z"


def test_public_reply_while_solved_completes_first_response_with_counted_time() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            status("2026-03-02T09:20:00Z", "solved"),
            agent_reply("2026-03-02T15:00:00Z"),
        )
        .until(NEXT_DAY)
    )
    done = h.one("completed", "first_response")
    assert (done["outcome"], done["elapsed_seconds"], done["at"]) == (
        "met",
        1200,
        "2026-03-02T15:00:00Z",
    )
    assert h.of("breach") == []  # no periodic_update starts on a solved ticket


def test_reopen_resumes_resolution_with_counted_time() -> None:
    h = Harness().feed(
        created(T0),
        agent_reply("2026-03-02T09:10:00Z"),
        status("2026-03-02T15:00:00Z", "solved"),  # 6h counted
        status(NEXT_DAY, "open"),  # reopen: 2h left
        status("2026-03-03T10:00:00Z", "solved"),
    )
    first, second = h.of("completed", "resolution")
    assert (first["elapsed_seconds"], second["elapsed_seconds"]) == (6 * 3600, 7 * 3600)
    assert first["cycle"] == second["cycle"] == 1
    assert first["event_id"] != second["event_id"]


def test_reopen_starts_a_new_periodic_update_cycle() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            agent_reply("2026-03-02T09:10:00Z"),
            status("2026-03-02T10:00:00Z", "solved"),
            status(NEXT_DAY, "open"),
        )
        .until("2026-03-03T13:00:00Z")
    )
    breach = h.one("breach", "periodic_update")
    assert (breach["cycle"], breach["at"]) == (2, "2026-03-03T13:00:00Z")


def test_customer_reply_on_solved_ticket_reopens_it() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            agent_reply("2026-03-02T09:10:00Z"),
            status("2026-03-02T15:00:00Z", "solved"),
            customer_reply(NEXT_DAY),
        )
        .until("2026-03-03T12:00:00Z")
    )
    assert h.one("breach", "resolution")["at"] == "2026-03-03T11:00:00Z"
    assert h.one("breach", "next_response")["at"] == "2026-03-03T11:00:00Z"


def test_customer_reply_on_pending_ticket_sets_it_open() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            status("2026-03-02T10:00:00Z", "pending"),
            customer_reply("2026-03-02T12:00:00Z"),
        )
        .until(NEXT_DAY)
    )
    assert h.one("breach", "resolution")["at"] == "2026-03-02T19:00:00Z"


def test_closed_is_terminal_and_later_events_are_ignored() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            agent_reply("2026-03-02T09:10:00Z"),
            status("2026-03-02T09:20:00Z", "closed"),
            status("2026-03-02T09:30:00Z", "open"),
            customer_reply("2026-03-02T09:40:00Z"),
        )
        .until(NEXT_DAY)
    )
    assert h.of("breach") == []
    assert h.replayer.stage.counters.ignored_closed == 2
    assert h.rejections == []


def test_status_change_to_current_status_is_noop() -> None:
    h = (
        Harness()
        .feed(
            created(T0),
            status("2026-03-02T10:00:00Z", "pending"),
            status("2026-03-02T11:00:00Z", "pending"),
            status("2026-03-02T12:00:00Z", "open"),
        )
        .until(NEXT_DAY)
    )
    assert h.one("breach", "resolution")["at"] == "2026-03-02T19:00:00Z"


def test_priority_raise_past_deadline_breaches_at_recomputed_deadline() -> None:
    h = Harness().feed(
        created(T0, priority="normal"),  # first_response 4h
        priority("2026-03-02T10:30:00Z", "high"),  # 1h target: deadline 10:00 already passed
    )
    breach = h.one("breach", "first_response")
    assert breach["at"] == breach["deadline"] == T0_1000
    assert breach["decided_at"] == "2026-03-02T10:30:00Z"
    assert breach["priority"] == "high" and breach["target_seconds"] == 3600
    assert h.of("warning", "first_response") == []  # thresholds before the change are skipped


def test_priority_change_skips_only_thresholds_strictly_before_it() -> None:
    h = (
        Harness()
        .feed(
            created(T0, priority="normal"),  # 4h
            priority("2026-03-02T09:40:00Z", "high"),  # 1h: 0.5 at 09:30 skipped, 0.75 at 09:45 due
        )
        .until(T0_1000)
    )
    assert [w["threshold"] for w in h.of("warning", "first_response")] == [0.75]
    assert h.one("breach", "first_response")["at"] == T0_1000


def test_priority_change_with_deadline_exactly_at_change_is_an_ordinary_timer() -> None:
    h = Harness().feed(created(T0, priority="normal"), priority(T0_1000, "high"))
    assert h.of("breach", "first_response") == []  # not at once
    h.feed(agent_reply(T0_1000))  # an event at the same instant still comes first
    assert h.one("completed", "first_response")["outcome"] == "met"


def test_priority_change_to_priority_without_target_cancels_metric() -> None:
    h = Harness().feed(created(T0, priority="high"), priority("2026-03-02T09:10:00Z", "low"))
    h.until("2026-03-09T00:00:00Z")
    assert h.of("breach", "first_response") == []  # enterprise has no low first_response
    assert h.of("breach", "resolution") != []  # resolution has a low target: retargeted to 5d


def test_priority_change_does_not_start_an_untracked_metric() -> None:
    h = Harness().feed(created(T0, priority="low"), priority("2026-03-02T09:10:00Z", "urgent"))
    h.until(NEXT_DAY)
    assert h.of("breach", "first_response") == []


def test_breach_once_emitted_stays_and_warns_no_more() -> None:
    h = (
        Harness()
        .feed(
            created(T0, priority="high"),
        )
        .until(T0_1001)
    )
    h.feed(priority("2026-03-02T10:02:00Z", "normal")).until(NEXT_DAY)
    assert len(h.of("breach", "first_response")) == 1
    assert [w["threshold"] for w in h.of("warning", "first_response")] == [0.5, 0.75]


def test_each_threshold_warns_at_most_once_after_priority_lowered() -> None:
    h = Harness().feed(created(T0, priority="high")).until("2026-03-02T09:31:00Z")
    h.feed(priority("2026-03-02T09:32:00Z", "normal")).until("2026-03-02T13:00:00Z")
    assert [(w["threshold"], w["at"]) for w in h.of("warning", "first_response")] == [
        (0.5, T0_0930),
        (0.75, "2026-03-02T12:00:00Z"),
    ]


def test_priority_change_to_same_priority_is_noop() -> None:
    h = Harness().feed(created(T0), priority("2026-03-02T09:40:00Z", "high")).until(T0_1000)
    assert len(h.of("warning", "first_response")) == 2


def test_metric_without_target_for_priority_is_not_tracked() -> None:
    h = Harness().feed(created(T0, priority="low")).until("2026-03-09T00:00:00Z")
    assert h.of("breach", "first_response") == []
    assert h.one("breach", "resolution")["at"] == "2026-03-07T09:00:00Z"


def test_tier_comes_from_event_then_contract_then_default() -> None:
    h = (
        Harness()
        .feed(
            created(T0, ticket="A", customer="acme"),
            created(T0, ticket="B", customer="acme", tier="business"),
            created(T0, ticket="C", customer="nobody"),
        )
        .until(T0)
    )
    tiers = {b["ticket_id"]: b["tier"] for b in h.outputs}
    assert h.outputs == [] or tiers  # nothing due yet; check through the states
    states = h.replayer.store
    assert (states["A"].tier, states["B"].tier, states["C"].tier) == (
        "enterprise",
        "business",
        "business",
    )


def test_business_hours_deadline_skips_the_night() -> None:
    # Monday 16:00 Berlin (15:00Z); 2h business time -> 1h Monday + 1h Tuesday from 09:00.
    h = Harness().feed(created("2026-03-02T15:00:00Z", customer="globex")).until(NEXT_DAY)
    assert h.one("breach", "first_response")["at"] == "2026-03-03T09:00:00Z"
    assert h.one("warning", "first_response")["at"] == "2026-03-03T08:30:00Z"


def test_repeated_event_id_is_dropped() -> None:
    reply = agent_reply("2026-03-02T09:10:00Z", event_id="dup-1")
    again = agent_reply("2026-03-02T11:10:00Z", event_id="dup-1")
    h = Harness().feed(created(T0), reply, again).until("2026-03-02T13:11:00Z")
    assert h.replayer.stage.counters.duplicates == 1
    assert h.of("completed", "periodic_update") == []
    assert h.one("breach", "periodic_update")["at"] == "2026-03-02T13:10:00Z"


def test_event_for_unknown_ticket_is_rejected() -> None:
    h = Harness().feed(agent_reply(T0, ticket="ghost"))
    assert [r.error_class for r in h.rejections] == ["UnknownTicket"]


def test_second_ticket_created_is_rejected() -> None:
    h = Harness().feed(created(T0), created(T0_0930))
    assert [r.error_class for r in h.rejections] == ["DuplicateTicket"]


def test_late_event_is_applied_as_of_the_clock() -> None:
    h = Harness().feed(created(T0), created(T0_1100, ticket="other"))
    h.feed(agent_reply("2026-03-02T09:10:00Z"))  # older than the clock (11:00)
    done = h.one("completed", "first_response")
    assert (done["at"], done["outcome"]) == (T0_1100, "breached")
    assert h.replayer.stage.counters.late == 1


def test_output_event_ids_are_deterministic() -> None:
    def run() -> list[str]:
        h = Harness().feed(created(T0, event_id="c1"), agent_reply(T0_1001, event_id="r1"))
        return [o["event_id"] for o in h.outputs]

    assert run() == run()
    assert len(set(run())) == len(run())
