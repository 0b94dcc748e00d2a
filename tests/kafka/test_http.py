"""The worker's HTTP endpoints against a real broker: readiness after recovery, metrics
that move with the input, a ticket's status before and after its breach, and routing of
`/tickets/{id}` to the worker that owns the ticket's partition.
"""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant
from slaclock.processors.live.http import partition_for
from tests.conftest import CreateTopics
from tests.kafka.pipeline import ROOT, LivePipeline, WorkerProcess

pytestmark = [pytest.mark.kafka]

# first_response 4 s with a warning at half of it: the breach comes a few seconds in.
SHORT_POLICY = (
    "default_tier: fast\n"
    "calendars: {always: {timezone: UTC, hours: 24x7}}\n"
    "tiers:\n"
    "  fast:\n"
    "    calendar: always\n"
    "    targets: {first_response: {urgent: 4s}, resolution: {urgent: 1h}}\n"
    "    pause_on: [pending]\n"
    "    warnings: [0.5]\n"
)

Response = tuple[int, dict[str, str], bytes]
TOKEN = "kafka-http-test-token-0123456789"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def get(url: str, token: str | None = TOKEN) -> Response | None:
    """GET (with the workers' bearer token) without following redirects; None while nothing
    listens."""
    opener = urllib.request.build_opener(_NoRedirect)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except (urllib.error.URLError, ConnectionError):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, probe: Callable[[], Any], worker: WorkerProcess, timeout: float = 45.0
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if worker.process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log_tail()}")


def start_http_worker(pipeline: LivePipeline, instance: str) -> tuple[WorkerProcess, str]:
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
    return pipeline.start_worker(instance), url


def health_check(pipeline: LivePipeline) -> subprocess.CompletedProcess[str]:
    """`slaclock worker --health` with the settings of worker w1, but no HTTP port."""
    env = {**pipeline.env("w1"), "SLACLOCK_HTTP_PORT": "0"}
    command = [sys.executable, "-c", "from slaclock.cli import main; main()", "worker", "--health"]
    return subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def metric(base: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
    response = get(f"{base}/metrics")
    assert response is not None and response[0] == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(response[2].decode())
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def created_event(ticket_id: str, at_us: int) -> tuple[bytes, bytes]:
    event = {
        "event_id": f"{ticket_id}-created",
        "type": "ticket.created",
        "ticket_id": ticket_id,
        "occurred_at": format_us(at_us),
        "customer_id": "c1",
        "priority": "urgent",
    }
    return ticket_id.encode(), orjson.dumps(event)


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[LivePipeline]:
    policy = tmp_path / "short.yaml"
    policy.write_text(SHORT_POLICY)
    live = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, policy_path=policy)
    yield live
    live.close()


def test_ready_metrics_and_ticket_status_follow_the_worker_through_a_breach(
    pipeline: LivePipeline,
) -> None:
    worker, url = start_http_worker(pipeline, "w1")
    # 503 until every task is restored is checked without timing in the unit tier
    # (test_http_server.py); here a warm broker can assign and restore before the first GET
    first = wait_for("the HTTP server", lambda: get(f"{url}/ready"), worker)
    assert first[0] in (503, 200)
    assert wait_for("liveness", lambda: get(f"{url}/health"), worker)[0] == 200
    wait_for("readiness", lambda: get(f"{url}/ready")[0] == 200, worker)  # type: ignore[index]
    ready = json.loads(get(f"{url}/ready")[2])  # type: ignore[index]
    assert ready["stages"]["tickets"]["partitions"] == [0, 1, 2, 3]
    assert metric(url, "slaclock_events_total") == 0

    created_at = int(time.time() * US_PER_SECOND)
    pipeline.publish([created_event("T-http", created_at)])
    wait_for(
        "the event in /metrics",
        lambda: metric(url, "slaclock_events_total", type="ticket.created") == 1,
        worker,
    )
    assert metric(url, "slaclock_open_tickets") == 1
    assert metric(url, "slaclock_consumer_lag_records") == 0

    before = get(f"{url}/tickets/T-http")
    assert before is not None and before[0] == 200, before
    view = json.loads(before[2])
    first_response = view["metrics"]["first_response"]
    assert (view["status"], view["priority"], view["tier"]) == ("new", "urgent", "fast")
    assert first_response["state"] == "running"
    assert first_response["target_seconds"] == 4
    assert first_response["deadline"] == format_us(created_at + 4 * US_PER_SECOND)
    assert 0 <= first_response["counted_seconds"] < 4
    assert parse_instant(view["as_of"]) <= created_at + 4 * US_PER_SECOND

    def breached() -> dict[str, Any] | None:
        response = get(f"{url}/tickets/T-http")
        assert response is not None and response[0] == 200
        found: dict[str, Any] = json.loads(response[2])
        return found if found["metrics"]["first_response"]["state"] == "breached" else None

    after = wait_for("the breach", breached, worker, timeout=30)["metrics"]["first_response"]
    assert after["deadline"] == first_response["deadline"]
    assert after["counted_seconds"] >= 4 and after["next_warning"] is None
    assert metric(url, "slaclock_outputs_total", type="sla.breach") == 1
    assert metric(url, "slaclock_outputs_total", type="sla.warning") == 1
    assert metric(url, "slaclock_breach_emission_delay_seconds_count") == 1

    unknown = get(f"{url}/tickets/T-never-created")
    assert unknown is not None and unknown[0] == 404
    anonymous = get(f"{url}/tickets/T-http", token=None)
    assert anonymous is not None and anonymous[0] == 401  # data needs the token
    assert get(f"{url}/metrics", token=None)[0] == 200  # type: ignore[index]
    # the container healthcheck: the worker's health file, no HTTP involved
    wait_for("a healthy check", lambda: health_check(pipeline).returncode == 0, worker)
    assert worker.stop() == 0, worker.log_tail()
    stopped = health_check(pipeline)
    assert stopped.returncode == 1 and stopped.stderr.startswith("unhealthy: no health file")


def test_ticket_asked_of_the_other_worker_is_redirected_to_its_owner(
    pipeline: LivePipeline,
) -> None:
    pipeline.publish([created_event("T-routed", int(time.time() * US_PER_SECOND))])
    first, first_url = start_http_worker(pipeline, "w1")
    second, second_url = start_http_worker(pipeline, "w2")
    urls = {first_url: first, second_url: second}

    def partitions(url: str) -> list[int] | None:
        response = get(f"{url}/ready")
        if response is None or response[0] != 200:
            return None
        owned: list[int] = json.loads(response[2])["stages"]["tickets"]["partitions"]
        return owned if len(owned) == 2 else None  # both members in the group

    owned = {
        url: wait_for(f"{url} ready", functools.partial(partitions, url), w)
        for url, w in urls.items()
    }
    home = partition_for("T-routed", pipeline.partitions)
    owner = next(url for url, parts in owned.items() if home in parts)
    other = next(url for url in urls if url != owner)

    redirected = get(f"{other}/tickets/T-routed")
    assert redirected is not None and redirected[0] == 307, redirected
    assert redirected[1]["Location"] == f"{owner}/tickets/T-routed"

    def owner_answer() -> Response | None:
        # the owner may hold the partition a moment before it has read the pending event
        response = get(redirected[1]["Location"])
        return response if response is not None and response[0] == 200 else None

    answered = wait_for("the owner's answer", owner_answer, urls[owner])
    assert json.loads(answered[2])["partition"] == home
    assert first.stop() == 0 and second.stop() == 0


def test_partitioner_agrees_with_confluent_kafka_murmur2_random(
    kafka_bootstrap: str, topic_prefix: str, create_topics: CreateTopics
) -> None:
    (topic,) = create_topics(f"{topic_prefix}murmur", partitions=7)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    landed: dict[str, int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None
        landed[message.key().decode()] = message.partition()

    keys = [f"T-{i}" for i in range(300)] + ["21", "kafka", "Ünïcödé-tïcket", "x" * 41]
    for key in keys:
        producer.produce(topic, b"{}", key=key.encode(), on_delivery=delivered)
    assert producer.flush(30) == 0
    assert landed == {key: partition_for(key, 7) for key in keys}


def test_explain_from_a_live_worker_is_the_cli_explanation_at_the_same_instant(
    pipeline: LivePipeline, tmp_path: Path
) -> None:
    """docs/semantics.md: Explanations: the same JSON from HTTP and from `slaclock explain`.

    The events are stamped a few seconds ahead, so each is applied at its own instant (none
    is late); the worker's answer is as of its partition clock, which the CLI replays to.
    """
    from typer.testing import CliRunner

    from slaclock.cli import app

    worker, url = start_http_worker(pipeline, "w1")
    wait_for("readiness", lambda: (get(f"{url}/ready") or (0,))[0] == 200, worker)
    start = int(time.time() * US_PER_SECOND) + 5 * US_PER_SECOND
    events = [
        {**orjson.loads(created_event("T-why", start)[1]), "event_id": "w1"},
        {"event_id": "w2", "type": "ticket.status_changed", "ticket_id": "T-why",
         "occurred_at": format_us(start + 1_500_000), "status": "pending"},
        {"event_id": "w3", "type": "ticket.status_changed", "ticket_id": "T-why",
         "occurred_at": format_us(start + 2_250_000), "status": "open"},
    ]  # fmt: skip
    pipeline.publish([(b"T-why", orjson.dumps(e)) for e in events])

    def explained() -> bytes | None:
        response = get(f"{url}/tickets/T-why?explain=true")
        if response is None or response[0] != 200:
            return None
        body = json.loads(response[2])
        return response[2] if parse_instant(body["at"]) > start + 3 * US_PER_SECOND else None

    answer = wait_for("an explanation past the events", explained, worker, timeout=60)
    policy = tmp_path / "short.yaml"
    policy.write_text(SHORT_POLICY)
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    at = json.loads(answer)["at"]
    args = ["--policy", str(policy), "--events", str(lines), "--ticket", "T-why", "--at", at]
    result = CliRunner().invoke(app, ["explain", *args, "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.encode().rstrip(b"\n") == answer
    resolution = next(c for c in json.loads(answer)["cycles"] if c["metric"] == "resolution")
    assert [s["kind"] for s in resolution["segments"]] == ["counted", "paused", "counted"]
    assert worker.stop() == 0, worker.log_tail()
