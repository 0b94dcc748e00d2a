"""The tick rule (docs/semantics.md: Time) in the pure stage: `TicketStage.on_tick(now, end_offset, position)`.

Caught up (every record before the tick's end offset processed): C := now - grace. Otherwise
C := stream_time - grace (the newest `occurred_at` accepted), never backwards, and nothing
before the first event.
"""

from __future__ import annotations

import orjson
import pytest

from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import TicketEngine, TicketState
from slaclock.schemas.rejection import Rejected, decode_event
from tests.core.builders import created, customer_reply, make_policy

GRACE_US = 2 * US_PER_SECOND
CREATED = "2026-03-02T09:00:00Z"  # enterprise high: first_response warnings 09:30, 09:45
WARN_50 = "2026-03-02T09:30:00Z"
WARN_75 = "2026-03-02T09:45:00Z"
SECOND_EVENT = "2026-03-02T09:40:00Z"
WALL_1000 = "2026-03-02T10:00:00Z"


def us(text: str) -> int:
    return parse_instant(text)


def stage() -> TicketStage:
    store: dict[str, TicketState] = {}
    return TicketStage(TicketEngine(make_policy()), store, GRACE_US)


def feed(s: TicketStage, event: dict[str, object]) -> list[dict[str, object]]:
    return s.on_event(decode_event(orjson.dumps(event)), us(str(event["occurred_at"])))


def test_caught_up_tick_advances_the_clock_to_now_minus_grace() -> None:
    s = stage()
    feed(s, created(CREATED))
    outputs = s.on_tick(us(WALL_1000), end_offset=1, position=1)
    assert s.clock == us(WALL_1000) - GRACE_US
    assert [o["at"] for o in outputs] == [WARN_50, WARN_75]


def test_tick_with_position_past_the_end_offset_counts_as_caught_up() -> None:
    s = stage()
    feed(s, created(CREATED))
    s.on_tick(us(WALL_1000), end_offset=1, position=3)  # transaction markers skipped
    assert s.clock == us(WALL_1000) - GRACE_US


def test_lagging_tick_advances_only_to_stream_time_minus_grace() -> None:
    s = stage()
    feed(s, created(CREATED))
    fired = feed(s, created(SECOND_EVENT, ticket="T2"))
    assert [o["at"] for o in fired] == [WARN_50]
    assert s.on_tick(us(WALL_1000), end_offset=5, position=2) == []  # 09:45 not yet
    assert s.clock == us(SECOND_EVENT) - GRACE_US
    caught_up = s.on_tick(us(WALL_1000), end_offset=5, position=5)
    assert [o["at"] for o in caught_up if o["ticket_id"] == "T1"] == [WARN_75]


def test_lagging_tick_before_any_event_does_nothing() -> None:
    s = stage()
    assert s.on_tick(us(WALL_1000), end_offset=5, position=0) == []
    assert s.clock is None


def test_caught_up_tick_before_any_event_starts_the_clock() -> None:
    s = stage()
    assert s.on_tick(us(WALL_1000), end_offset=0, position=0) == []
    assert s.clock == us(WALL_1000) - GRACE_US


def test_tick_never_moves_the_clock_back() -> None:
    s = stage()
    feed(s, created(WALL_1000))
    s.on_tick(us(CREATED), end_offset=1, position=1)
    assert s.clock == us(WALL_1000) - GRACE_US


def test_rejected_record_does_not_move_stream_time() -> None:
    s = stage()
    feed(s, created(CREATED))
    with pytest.raises(Rejected):
        feed(s, customer_reply("2026-06-01T00:00:00Z", ticket="ghost"))
    s.on_tick(us(WALL_1000), end_offset=5, position=2)
    assert s.stream_time == us(CREATED)
    assert s.clock == us(CREATED) - GRACE_US


def test_repeated_event_id_does_not_move_stream_time() -> None:
    s = stage()
    feed(s, created(CREATED, event_id="c1"))
    feed(s, created("2026-06-01T00:00:00Z", event_id="c1"))
    s.on_tick(us(WALL_1000), end_offset=5, position=2)
    assert s.clock == us(CREATED) - GRACE_US
