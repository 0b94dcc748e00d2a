"""The stage's clock state survives a restart through the changelog's meta record.

A restored task must tick as the one that stopped: its clock, and the stream time the tick
rule falls back on while the partition is lagging.
"""

from __future__ import annotations

import orjson

from slaclock.processors.engine.instants import US_PER_SECOND, parse_instant
from slaclock.processors.engine.stage import TicketStage
from slaclock.processors.engine.ticket import TicketEngine
from slaclock.processors.live.tickets import TicketProcessor, TicketTask, TrackingStore
from slaclock.schemas.rejection import decode_event
from tests.core.builders import created, make_policy

GRACE_US = 2 * US_PER_SECOND
T1_CREATED = "2026-03-02T09:00:00Z"  # enterprise high: first warning at 09:30
WARN_50 = "2026-03-02T09:30:00Z"
T2_CREATED = "2026-03-02T09:30:02Z"  # moves the clock to 09:30:00 (grace 2 s)
WALL = "2026-03-02T12:00:00Z"


def task(store: TrackingStore) -> TicketTask:
    return TicketTask(0, TicketStage(TicketEngine(make_policy()), store, GRACE_US), store)


def test_restored_task_ticks_from_the_stream_time_it_had() -> None:
    store = TrackingStore()  # the ticket states come back from the changelog
    before = task(store)
    for event in (created(T1_CREATED), created(T2_CREATED, ticket="T2")):
        at = parse_instant(str(event["occurred_at"]))
        assert before.stage.on_event(decode_event(orjson.dumps(event)), at) == []
    before.processed_offset = 2
    processor = TicketProcessor.__new__(TicketProcessor)  # `_meta` reads only the task
    meta = orjson.loads(orjson.dumps(processor._meta(before)))

    after = task(store)
    TicketProcessor._apply_meta(after, meta)
    after.stage.rebuild_timers()
    assert after.stage.stream_time == parse_instant(T2_CREATED)
    assert after.stage.clock == parse_instant(WARN_50) and after.processed_offset == 2
    # lagging: the clock goes to stream_time - grace inclusive, firing the 09:30 warning
    fired = after.stage.on_tick(parse_instant(WALL), end_offset=9, position=2)
    assert [(o["ticket_id"], o["at"]) for o in fired] == [("T1", WARN_50)]
