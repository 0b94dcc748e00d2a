"""Stopped is not running: a `first_response` stopped by `solved` (and, in contrast, a
metric paused by `pause_on`, which is still running).

Policy (tests/core/builders.py): enterprise, 24x7; first_response high 1h, urgent 15m,
no target for low; warnings at 50 % and 75 %; resolution high 8h; pause_on pending.
"""

from __future__ import annotations

from tests.core.builders import Harness, agent_reply, created, priority, status

CREATED = "2026-03-02T09:00:00Z"
WARN_50 = "2026-03-02T09:30:00Z"  # high: 30 min counted
WARN_75 = "2026-03-02T09:45:00Z"
DEADLINE = "2026-03-02T10:00:00Z"  # high: 1 h counted
URGENT_DEADLINE = "2026-03-02T09:15:00Z"  # urgent: 15 min counted
REOPEN = "2026-03-02T11:00:00Z"
LATER = "2026-03-02T12:00:00Z"


def _first_response(h: Harness) -> list[tuple[str, str]]:
    """Warnings, breaches and completions of first_response (credits left out)."""
    return [
        (o["type"], o["at"])
        for o in h.outputs
        if o["metric"] == "first_response" and o["type"] != "sla.credit"
    ]


def test_first_response_solved_exactly_at_a_threshold_is_not_warned_while_stopped() -> None:
    h = Harness().feed(created(CREATED), status(WARN_50, "solved")).until(LATER)
    assert _first_response(h) == []


def test_first_response_solved_exactly_at_its_deadline_is_not_breached_while_stopped() -> None:
    h = Harness().feed(created(CREATED), status(DEADLINE, "solved")).until(LATER)
    assert _first_response(h) == [("sla.warning", WARN_50), ("sla.warning", WARN_75)]


def test_reopen_of_first_response_stopped_at_its_deadline_breaches_at_once() -> None:
    h = Harness().feed(created(CREATED), status(DEADLINE, "solved"), status(REOPEN, "open"))
    h.until(REOPEN)
    breach = h.one("breach", "first_response")
    assert (breach["at"], breach["deadline"], breach["decided_at"]) == (DEADLINE, DEADLINE, REOPEN)


def test_reply_while_solved_completes_first_response_stopped_at_its_deadline_as_met() -> None:
    h = Harness().feed(created(CREATED), status(DEADLINE, "solved"), agent_reply(REOPEN))
    h.until(LATER)
    done = h.one("completed", "first_response")
    assert (done["at"], done["outcome"], done["elapsed_seconds"]) == (REOPEN, "met", 3600)
    assert h.of("breach", "first_response") == []


def test_priority_change_while_stopped_does_not_recompute_first_response() -> None:
    # stopped at 40 min counted; urgent's 15 min deadline lies before the change
    h = Harness().feed(
        created(CREATED),
        status("2026-03-02T09:40:00Z", "solved"),
        priority("2026-03-02T10:00:00Z", "urgent"),
    )
    h.until("2026-03-02T10:30:00Z")
    assert _first_response(h) == [("sla.warning", WARN_50)]


def test_reopen_recomputes_stopped_first_response_with_the_priority_at_that_moment() -> None:
    h = Harness().feed(
        created(CREATED),
        status("2026-03-02T09:40:00Z", "solved"),
        priority("2026-03-02T10:00:00Z", "urgent"),
        status(REOPEN, "open"),
    )
    h.until(REOPEN)
    assert _first_response(h) == [("sla.warning", WARN_50), ("sla.breach", URGENT_DEADLINE)]
    breach = h.one("breach", "first_response")
    assert (breach["priority"], breach["decided_at"], breach["target_seconds"]) == (
        "urgent",
        REOPEN,
        900,
    )


def test_priority_without_target_set_while_stopped_cancels_first_response_only_on_reopen() -> None:
    h = Harness().feed(
        created(CREATED),
        status("2026-03-02T09:20:00Z", "solved"),
        priority("2026-03-02T09:30:00Z", "low"),
    )
    still_stopped = h.replayer.store["T1"].metrics["first_response"]
    assert still_stopped.target == 3600 * 1_000_000  # left alone by the change (µs)
    h.feed(status(REOPEN, "open"), agent_reply("2026-03-02T11:05:00Z")).until(LATER)
    # cancelled by the reopen: no completion, an sla.cancelled
    assert _first_response(h) == [("sla.cancelled", REOPEN)]
    cancelled = h.one("cancelled", "first_response")
    assert (cancelled["reason"], cancelled["breached"], cancelled["target_seconds"]) == (
        "no_target",
        False,
        3600,
    )


def test_reply_while_solved_after_a_priority_change_keeps_the_target_it_had() -> None:
    h = Harness().feed(
        created(CREATED),
        status("2026-03-02T09:20:00Z", "solved"),
        priority("2026-03-02T09:30:00Z", "urgent"),
        agent_reply("2026-03-02T09:50:00Z"),
    )
    h.until(LATER)
    done = h.one("completed", "first_response")
    assert (done["outcome"], done["elapsed_seconds"], done["target_seconds"]) == (
        "met",
        1200,
        3600,
    )


def test_solved_and_reopened_at_a_threshold_instant_warns_at_that_instant() -> None:
    # the reopen recomputes at 09:30; a threshold exactly at the reopen is an ordinary timer
    h = Harness().feed(created(CREATED), status(WARN_50, "solved"), status(WARN_50, "open"))
    h.until("2026-03-02T09:31:00Z")
    assert _first_response(h) == [("sla.warning", WARN_50)]


def test_resolution_paused_exactly_at_a_threshold_is_still_warned() -> None:
    # resolution high 8h: the 50 % threshold is 13:00; pending pauses, it does not stop
    h = Harness().feed(
        created(CREATED),
        agent_reply("2026-03-02T09:05:00Z"),
        status("2026-03-02T13:00:00Z", "pending"),
    )
    h.until("2026-03-02T18:00:00Z")
    assert [(o["type"], o["at"]) for o in h.of("warning", "resolution")] == [
        ("sla.warning", "2026-03-02T13:00:00Z")
    ]


def test_resolution_paused_exactly_at_its_deadline_is_still_breached() -> None:
    h = Harness().feed(
        created(CREATED),
        agent_reply("2026-03-02T09:05:00Z"),
        status("2026-03-02T17:00:00Z", "pending"),
    )
    h.until("2026-03-02T18:00:00Z")
    assert h.one("breach", "resolution")["at"] == "2026-03-02T17:00:00Z"
