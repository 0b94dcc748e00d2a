"""The time rules (docs/semantics.md: Time) of `TicketStage` (shared by replay and the Kafka worker)."""

from __future__ import annotations

import orjson
import pytest

from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import TicketEngine, TicketState
from slaclock.schemas.rejection import Rejected, decode_event
from tests.core.builders import agent_reply, created, customer_reply, make_policy

T0 = "2026-03-02T09:00:00Z"
DEADLINE = "2026-03-02T10:00:00Z"  # enterprise, high: first_response 1h
GRACE_US = 2 * US_PER_SECOND


def stage(grace_us: int = GRACE_US) -> TicketStage:
    store: dict[str, TicketState] = {}
    return TicketStage(TicketEngine(make_policy()), store, grace_us)


def feed(s: TicketStage, event: dict[str, object]) -> list[dict[str, object]]:
    parsed = decode_event(orjson.dumps(event))
    return s.on_event(parsed, parse_instant(str(event["occurred_at"])))


def test_reply_within_grace_after_deadline_is_still_breached() -> None:
    s = stage()
    feed(s, created(T0))
    outputs = feed(s, agent_reply("2026-03-02T10:00:01Z"))  # 1 s late, inside the grace
    assert [(o["type"], o["at"]) for o in outputs] == [
        ("sla.warning", "2026-03-02T09:30:00Z"),
        ("sla.warning", "2026-03-02T09:45:00Z"),
        ("sla.breach", DEADLINE),
        ("sla.completed", "2026-03-02T10:00:01Z"),
    ]
    assert outputs[-1]["outcome"] == "breached"


def test_grace_holds_back_other_tickets_timers() -> None:
    s = stage()
    feed(s, created(T0, ticket="A"))
    outputs = feed(s, created("2026-03-02T10:00:01Z", ticket="B"))
    assert all(o["ticket_id"] != "A" or o["type"] != "sla.breach" for o in outputs)
    assert [o["type"] for o in s.advance_to(parse_instant(DEADLINE))][-1] == "sla.breach"


def test_rejected_record_does_not_move_the_clock() -> None:
    s = stage(0)
    feed(s, created(T0))
    with pytest.raises(Rejected):
        feed(s, customer_reply("2026-06-01T00:00:00Z", ticket="ghost"))
    assert s.clock == parse_instant(T0)
    outputs = feed(s, agent_reply("2026-03-02T09:10:00Z"))
    assert s.counters.late == 0
    assert outputs[0]["outcome"] == "met"


def test_repeated_event_id_does_not_move_the_clock() -> None:
    s = stage(0)
    feed(s, created(T0, event_id="c1"))
    feed(s, created(T0, event_id="c1") | {"occurred_at": "2026-06-01T00:00:00Z"})
    assert s.clock == parse_instant(T0)
    assert s.counters.duplicates == 1


def test_second_created_is_rejected_before_any_timer_of_the_ticket_fires() -> None:
    s = stage(0)
    feed(s, created(T0))
    with pytest.raises(Rejected) as rejected:
        feed(s, created("2026-03-02T11:00:00Z"))
    assert rejected.value.error_class == "DuplicateTicket"
    assert s.advance_to(parse_instant("2026-03-02T11:00:00Z"))[-1]["type"] == "sla.breach"


def test_closed_ticket_state_is_dropped_after_retention() -> None:
    s = TicketStage(TicketEngine(make_policy()), {}, 0, closed_retention_us=3600 * US_PER_SECOND)
    feed(s, created(T0))
    feed(s, {**agent_reply(T0), "type": "ticket.status_changed", "status": "closed"})
    s.advance_to(parse_instant("2026-03-02T09:59:59Z"))
    assert "T1" in s.store
    s.advance_to(parse_instant(DEADLINE))
    assert "T1" not in s.store and s.counters.purged == 1


def test_earliest_timer_is_the_next_threshold_instant() -> None:
    s = stage()
    assert s.earliest_timer() is None
    feed(s, created(T0))  # first_response 1h, warnings at 50%: 09:30
    assert s.earliest_timer() == parse_instant("2026-03-02T09:30:00Z")
    s.advance_to(parse_instant("2026-03-02T09:30:00Z"))
    assert s.earliest_timer() == parse_instant("2026-03-02T09:45:00Z")
