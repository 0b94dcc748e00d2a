"""The seeded workload generator: same seed and start, same events, whatever the date."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from slaclock.workload import DEFAULT_START, WorkloadShape, ticket_events

MONDAY = datetime(2026, 6, 1, 8, tzinfo=UTC)


def test_same_seed_and_start_give_the_same_events() -> None:
    shape = WorkloadShape(tickets=50, seed=3)
    assert ticket_events(shape, start=MONDAY) == ticket_events(shape, start=MONDAY)


def test_an_injected_start_equals_the_shapes_own_start() -> None:
    shape = WorkloadShape(tickets=50, seed=3)
    assert ticket_events(shape, start=MONDAY) == ticket_events(replace(shape, start=MONDAY))
    assert ticket_events(shape) == ticket_events(shape, start=DEFAULT_START)


def test_a_later_start_shifts_every_instant_and_nothing_else() -> None:
    shape = WorkloadShape(tickets=50, seed=3)
    week_later = datetime(2026, 6, 8, 8, tzinfo=UTC)
    first, second = ticket_events(shape, start=MONDAY), ticket_events(shape, start=week_later)
    shift = {
        datetime.fromisoformat(b["occurred_at"]) - datetime.fromisoformat(a["occurred_at"])
        for a, b in zip(first, second, strict=True)
    }
    assert shift == {week_later - MONDAY}
    strip = [{k: v for k, v in e.items() if k != "occurred_at"} for e in first]
    assert strip == [{k: v for k, v in e.items() if k != "occurred_at"} for e in second]


def test_an_id_prefix_goes_in_front_of_every_ticket_and_event_id() -> None:
    shape = WorkloadShape(tickets=20, seed=5)
    plain, prefixed = ticket_events(shape), ticket_events(shape, id_prefix="R")
    assert [("R" + e["ticket_id"], "R" + e["event_id"]) for e in plain] == [
        (e["ticket_id"], e["event_id"]) for e in prefixed
    ]


def test_a_start_without_an_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        ticket_events(WorkloadShape(tickets=1), start=datetime(2026, 6, 1, 8))  # noqa: DTZ001


def test_assignments_name_the_agents_team_so_some_are_hand_offs() -> None:
    events = ticket_events(WorkloadShape(tickets=300, seed=3))
    assigned = [e for e in events if e["type"] == "ticket.assigned"]
    assert {e["group"] for e in assigned} == {"support", "tier2", "engineering"}
    for e in assigned:
        agent = int(e["assignee"].removeprefix("agent"))
        expected = "support" if agent <= 28 else "tier2" if agent <= 36 else "engineering"
        assert e["group"] == expected
    last: dict[str, str] = {}
    handoffs = 0
    for e in assigned:
        handoffs += last.get(e["ticket_id"], e["group"]) != e["group"]
        last[e["ticket_id"]] = e["group"]
    assert handoffs > 0


def _last_status(events: list[dict[str, object]]) -> dict[object, object]:
    last: dict[object, object] = {}
    for e in events:
        if e["type"] == "ticket.status_changed":
            last[e["ticket_id"]] = e["status"]
        else:
            last.setdefault(e["ticket_id"], "new")
    return last


def test_by_default_some_tickets_are_never_closed() -> None:
    last = _last_status(ticket_events(WorkloadShape(tickets=200, seed=3)))
    assert len(last) == 200
    assert 20 < sum(status != "closed" for status in last.values()) < 120


def test_closing_every_ticket_leaves_none_open() -> None:
    events = ticket_events(WorkloadShape(tickets=200, seed=3, close_every_ticket=True))
    assert set(_last_status(events).values()) == {"closed"}
