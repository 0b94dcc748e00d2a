"""`GET /customers/{id}` on live workers: the account as of the ledger's watermark, and a
307 to the worker that owns the customer's ledger partition."""

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
from tests.kafka.test_http import get, start_http_worker, wait_for

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "statements-events.jsonl"
MID_DECEMBER = parse_instant("2026-12-15T00:00:00Z")
GRACE_US = GRACE_S * 1_000_000


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    live = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, manual_clock=True)
    # the example's December may still be ahead of the wall clock: do not refuse it
    live.extra_env["SLACLOCK_MAX_FUTURE_SKEW"] = str(10 * 365 * 86_400)
    yield live
    live.close()


def example_records() -> list[tuple[bytes, bytes]]:
    """The README's statements example up to mid-December (its last ticket is in it)."""
    records = []
    for line in EXAMPLE.read_bytes().splitlines():
        event = orjson.loads(line)
        records.append((event["ticket_id"].encode(), line))
    return records


def test_customer_account_shows_the_open_month_and_octobers_pending_earn_back(
    pipeline: LivePipeline,
) -> None:
    pipeline.publish(example_records())
    with pipeline.ticking(MID_DECEMBER):
        first, first_url = start_http_worker(pipeline, "w1")

        def december(url: str) -> dict[str, Any] | None:
            response = get(f"{url}/customers/acme")
            if response is None or response[0] != 200:
                return None
            view: dict[str, Any] = json.loads(response[2])
            as_of = view["as_of"]
            caught_up = as_of is not None and parse_instant(as_of) >= MID_DECEMBER - GRACE_US
            return view if caught_up else None

        view = wait_for("acme's December", lambda: december(first_url), first, 90)
        assert get(f"{first_url}/customers/acme", token=None)[0] == 401  # a data endpoint
        unknown = get(f"{first_url}/customers/nobody")
        assert unknown is not None and unknown[0] == 404

        # a second worker takes half of the ledger partitions: asked there, it redirects
        second, second_url = start_http_worker(pipeline, "w2")
        workers = {first_url: first, second_url: second}

        def ledger_partitions(url: str) -> list[int] | None:
            response = get(f"{url}/ready")
            if response is None or response[0] != 200:
                return None
            owned: list[int] = json.loads(response[2])["stages"]["ledger"]["partitions"]
            return owned if len(owned) == 2 else None

        owned = {
            url: wait_for(f"{url} ready", lambda url=url: ledger_partitions(url), w, 120)
            for url, w in workers.items()
        }
        home = ledger_partition("acme", pipeline.partitions)
        owner = next(url for url, parts in owned.items() if home in parts)
        other = next(url for url in workers if url != owner)
        redirected = get(f"{other}/customers/acme")
        assert redirected is not None and redirected[0] == 307, redirected
        assert redirected[1]["Location"] == f"{owner}/customers/acme"
    assert first.stop() == 0 and second.stop() == 0

    assert parse_instant(view["as_of"]) <= MID_DECEMBER
    assert view["open_period"]["period"] == "2026-12"
    assert view["open_period"]["overall"] == {"met": 2, "breached": 0, "compliance": "1.0000"}, view
    assert view["open_period"]["remaining_cap"] == "2400.00"
    closed = {p["period"]: p for p in view["closed_periods"]}
    assert closed["2026-10"]["credits_total"] == "120.00"
    assert closed["2026-10"]["earn_back"]["status"] == "pending"
    assert closed["2026-10"]["earn_back"]["text"] == (
        "October 2026's 120.00 EUR will be earned back at the end of December 2026 if "
        "December stays at or above 0.95"
    )
    assert closed["2026-11"]["compliant"] is True
