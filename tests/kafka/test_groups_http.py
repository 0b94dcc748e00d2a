"""`GET /groups/{group}` on live workers: the group's open month as of its ledger task's
watermark, its tickets at risk gathered from every worker's stage-1 tasks, the bearer token,
404 for a group the policy does not define, and a 307 to the worker whose ledger task owns
the group (docs/operations.md: HTTP); and the hold's clocks in `GET /tickets/{id}`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.live.records import ledger_partition
from tests.kafka.pipeline import GRACE_S, LivePipeline
from tests.kafka.test_groups_live import GROUPS
from tests.kafka.test_http import get, start_http_worker, wait_for

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
HELD = "2026-03-02T09:00:00Z"  # eight high tickets assigned to engineering (24x7, 1h / 8h)
REPLIED = "2026-03-02T09:10:00Z"  # the even ones get engineering's first note
NOW = parse_instant("2026-03-02T09:50:00Z")  # 50m of 1h: the silent ones are at risk
TICKETS = [f"T-g{i}" for i in range(8)]
SILENT = TICKETS[1::2]


def event(ticket: str, kind: str, at: str, **fields: Any) -> tuple[bytes, bytes]:
    body = {"event_id": f"{ticket}-{kind}", "type": kind, "ticket_id": ticket, "occurred_at": at}
    return ticket.encode(), orjson.dumps({**body, **fields})


def records() -> list[tuple[bytes, bytes]]:
    """In time order (a partition applies an event older than its clock at the clock)."""
    found = []
    for ticket in TICKETS:
        found.append(event(ticket, "ticket.created", HELD, customer_id="acme", priority="high"))
        found.append(event(ticket, "ticket.assigned", HELD, assignee="e", group="engineering"))
    for ticket in TICKETS[::2]:
        found.append(event(ticket, "ticket.agent_replied", REPLIED, public=False))
    return found


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    policy = tmp_path / "groups.yaml"
    policy.write_text((ROOT / "examples" / "policy.yaml").read_text() + GROUPS)
    live = LivePipeline(
        kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy, manual_clock=True
    )
    live.extra_env["SLACLOCK_MAX_FUTURE_SKEW"] = str(10 * 365 * 86_400)
    yield live
    live.close()


def caught_up(url: str, complete: bool) -> dict[str, Any] | None:
    """The group's view once its ledger is at NOW (less the grace) and, with `complete`,
    every partition's tickets at risk were heard from."""
    response = get(f"{url}/groups/engineering")
    if response is None or response[0] != 200:
        return None
    view: dict[str, Any] = json.loads(response[2])
    as_of = view["as_of"]
    if as_of is None or parse_instant(as_of) < NOW - GRACE_S * 1_000_000:
        return None
    if len(view["at_risk"]) != len(SILENT) or (complete and view["at_risk_missing_partitions"]):
        return None
    return view


def test_a_groups_month_and_tickets_at_risk_from_two_workers_and_the_307(
    pipeline: LivePipeline,
) -> None:
    pipeline.publish(records())
    with pipeline.ticking(NOW):
        first, first_url = start_http_worker(pipeline, "w1")
        view = wait_for("engineering's month", lambda: caught_up(first_url, True), first, 90)
        assert get(f"{first_url}/groups/engineering", token=None)[0] == 401  # type: ignore[index]
        unknown = get(f"{first_url}/groups/billing")  # assigned to in no test, defined nowhere
        assert unknown is not None and unknown[0] == 404
        assert json.loads(unknown[2]) == {"error": "unknown group", "group": "billing"}
        for ticket, expected in ((TICKETS[0], "met"), (SILENT[0], "running")):
            answer = get(f"{first_url}/tickets/{ticket}")
            assert answer is not None and answer[0] == 200, answer
            shown = json.loads(answer[2])
            clocks = shown["group_metrics"]
            assert (shown["group"], sorted(clocks)) == (
                "engineering",
                ["group_resolution", "group_response"],
            )
            assert (
                clocks["group_response"]["state"],
                clocks["group_response"]["target_seconds"],
            ) == (
                expected,
                3600,
            )

        second, second_url = start_http_worker(pipeline, "w2")
        workers = {first_url: first, second_url: second}

        def split(url: str) -> dict[str, list[int]] | None:
            response = get(f"{url}/ready")
            if response is None or response[0] != 200:
                return None
            stages = json.loads(response[2])["stages"]
            owned = {name: stages[name]["partitions"] for name in ("tickets", "ledger")}
            return owned if all(len(p) == 2 for p in owned.values()) else None

        owned = {
            url: wait_for(f"{url} ready", lambda u=url: split(u), w, 120)
            for url, w in workers.items()
        }
        home = ledger_partition("engineering", pipeline.partitions)
        owner = next(url for url, parts in owned.items() if home in parts["ledger"])
        other = next(url for url in workers if url != owner)
        redirected = get(f"{other}/groups/engineering")
        assert redirected is not None and redirected[0] == 307, redirected
        assert redirected[1]["Location"] == f"{owner}/groups/engineering"
        # the owner holds half of the tickets' partitions now: it asks the other worker
        shared = wait_for("both workers' risk", lambda: caught_up(owner, True), workers[owner], 90)
    assert first.stop() == 0 and second.stop() == 0

    for answer in (view, shared):
        assert answer["open_period"]["period"] == "2026-03"
        assert answer["open_period"]["holds"] == len(TICKETS)
        assert answer["open_period"]["metrics"]["group_response"]["met"] == len(TICKETS) // 2
        assert answer["at_risk_missing_partitions"] == []
        risky = sorted((e["ticket_id"], e["metric"], e["deadline"]) for e in answer["at_risk"])
        assert risky == [(t, "group_response", "2026-03-02T10:00:00Z") for t in SILENT]
        assert all(e["target_seconds"] == 3600 for e in answer["at_risk"])
