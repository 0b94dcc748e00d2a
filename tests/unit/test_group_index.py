"""Stage 1's index of tickets with an open group cycle (what `GET /groups/{group}` reads
for the tickets at risk), kept batch by batch on both stores: a hold adds a ticket, a
hand-off moves it, unassigning or solving removes it."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import orjson
import pytest

from slaclock.processors.engine.instants import to_us
from slaclock.processors.intake import decode_event
from slaclock.processors.live.tickets import TicketProcessor
from slaclock.processors.settings import load_settings
from tests.core.builders import created, status
from tests.core.group_builders import assigned, group_policy

OPENED = "2026-03-02T09:00:00Z"  # a Monday
HELD = "2026-03-02T09:05:00Z"
HANDED_OFF = "2026-03-02T09:20:00Z"  # 10:20 in Berlin: engineering's office is open
LET_GO = "2026-03-02T09:30:00Z"
SOLVED = "2026-03-02T09:40:00Z"


@pytest.fixture(params=["memory", "rocksdb"])
def tickets(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    config = load_settings(
        bootstrap_servers="127.0.0.1:1",  # never contacted: no loop runs
        app_id="app",
        instance_id="w1",
        http_port=0,
        store=request.param,
        state_dir=tmp_path / "state",
    )
    processor = TicketProcessor(config, group_policy(), ledger_partitions=1)
    processor.restore_task(0, [])
    yield processor
    processor.close()
    # Its Kafka clients and store sit in reference cycles: free them here, not in whatever
    # process a later test forks from this one.
    del processor
    gc.collect()


def batch(tickets: TicketProcessor, *events: dict[str, Any]) -> None:
    """The events through the task's stage, then the end of the batch (the flush)."""
    stage = tickets.tasks[0].stage
    for fields in events:
        event = decode_event(orjson.dumps(fields))
        stage.on_event(event, to_us(event.occurred_at))
    list(tickets.flush_state())


def held_by(tickets: TicketProcessor, group: str) -> list[str]:
    return sorted(
        str(orjson.loads(record)[0])
        for _, records, _ in tickets.open_group_tickets(group)
        for record in records
    )


def test_the_index_follows_holds_hand_offs_unassigning_and_solving(
    tickets: TicketProcessor,
) -> None:
    batch(
        tickets,
        created(OPENED, ticket="T1"),
        created(OPENED, ticket="T2"),
        assigned(HELD, "tier1", ticket="T1"),
        assigned(HELD, "tier1", ticket="T2"),
    )
    assert held_by(tickets, "tier1") == ["T1", "T2"]
    assert held_by(tickets, "engineering") == []

    batch(tickets, assigned(HANDED_OFF, "engineering", ticket="T1"))
    assert held_by(tickets, "tier1") == ["T2"]
    assert held_by(tickets, "engineering") == ["T1"]

    batch(tickets, assigned(LET_GO, None, ticket="T2"))
    assert held_by(tickets, "tier1") == []

    batch(tickets, status(SOLVED, "solved", ticket="T1"))
    assert held_by(tickets, "engineering") == []
