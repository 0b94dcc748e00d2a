"""A worker with a services policy: its services stage, ticker and HTTP route, end to end.

The worker runs as a process with its own wall-clock ticker. The events are two months of
history that ended about two months before today (moved by whole days, so the test does
not depend on the day it runs): the services clock passes every month end between them and
now, so every output up to the start of this month is final and must equal the replay of
the same events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from slaclock.processors.engine.instants import format_us, parse_instant, to_us
from tests.kafka.pipeline import LivePipeline
from tests.kafka.test_http import TOKEN, free_port, get, wait_for
from tests.kafka.test_services_live import LIVE_YAML, QUIET, history, replay_until

pytestmark = pytest.mark.kafka

DAY_US = 86_400 * 1_000_000


def recent_history() -> tuple[list[bytes], int, str]:
    """The history moved to begin 100 days ago (at midnight UTC); the start of this month
    (UTC) and the label of the month before it."""
    now = datetime.now(UTC)
    begin = to_us(datetime(now.year, now.month, now.day, tzinfo=UTC)) - 100 * DAY_US
    shift = begin - parse_instant("2026-04-01T00:00:00Z")
    lines = []
    for event in history():
        for name in ("occurred_at", "starts_at", "ends_at"):
            if name in event:
                event[name] = format_us(parse_instant(event[name]) + shift)
        lines.append(orjson.dumps(event))
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    previous = (month_start - timedelta(days=1)).strftime("%Y-%m")
    return lines, to_us(month_start), previous


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    policy = tmp_path / "services.yaml"
    policy.write_text(LIVE_YAML)
    live = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy, partitions=2)
    yield live
    live.close()


def availability(pipeline: LivePipeline) -> list[dict[str, Any]]:
    topic = pipeline.settings.topic_availability
    return [orjson.loads(m.value()) for m in pipeline.topic_records([topic])]


def test_a_worker_runs_the_services_stage_and_answers_for_a_service(
    pipeline: LivePipeline,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pipeline.extra_env.update(
        {
            "SLACLOCK_HTTP_HOST": "127.0.0.1",
            "SLACLOCK_HTTP_PORT": str(port),
            "SLACLOCK_HTTP_ADVERTISED_URL": url,
            "SLACLOCK_HTTP_TOKEN": TOKEN,
        }
    )
    worker = pipeline.start_worker("w1")
    raw, cutoff, previous_month = recent_history()
    producer = Producer({"bootstrap.servers": pipeline.bootstrap, "partitioner": "murmur2_random"})
    for line in raw:
        producer.produce(
            pipeline.settings.topic_services, line, key=orjson.loads(line)["service_id"].encode()
        )
    producer.flush(10)

    expected = replay_until(raw, cutoff)
    services = {o["service_id"] for o in expected}

    def last_month_reported() -> bool:
        """Every service's report of last month is out (each partition reports its own
        services, the quiet one's once the earliest input is settled: not all at once)."""
        return services <= {
            o["service_id"]
            for o in availability(pipeline)
            if o["type"] == "sla.availability_report" and o["period"] == previous_month
        }

    wait_for("last month's reports", last_month_reported, worker, timeout=90)
    live = [o for o in availability(pipeline) if parse_instant(o["at"]) <= cutoff]
    assert len(expected) >= 6  # reports of several months, warnings, breaches
    assert Counter(orjson.dumps(o) for o in live) == Counter(orjson.dumps(o) for o in expected)

    answer = wait_for("GET /services/portal", lambda: get(f"{url}/services/portal"), worker)
    status, _, body = answer
    assert status == 200
    view = orjson.loads(body)
    assert view["status"] == "operational"
    assert view["period"] > previous_month
    assert view["budget_exhausted_at"] is None
    for service in QUIET:  # reported every month, and answered for, without any event
        assert {o["period"] for o in live if o["service_id"] == service} >= {previous_month}
        quiet = wait_for(
            f"GET /services/{service}", lambda s=service: get(f"{url}/services/{s}"), worker
        )
        status, _, body = quiet
        assert status == 200, body
        view = orjson.loads(body)
        assert (view["status"], view["downtime_seconds"], view["breached"]) == (
            "operational",
            0,
            False,
        )
        assert view["period"] > previous_month
    missing = get(f"{url}/services/ghost")
    assert missing is not None and missing[0] == 404
    assert worker.process.poll() is None, worker.log_tail()
