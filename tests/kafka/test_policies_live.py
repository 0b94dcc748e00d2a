"""Policy versions through the log, live against replay (docs/semantics.md: Policy changes).

A version published on `sla.policies` while tickets are open changes the rules at its P
the same way live and in replay (where it is a `policy.changed` line at the record's
timestamp, ordered with the events by its instant). `slaclock policy publish` refuses a
bad document listing every problem and publishes nothing; a worker started with a file the
log does not hold exits 1 in one line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.live.policies import policy_document, read_policy_log
from tests.kafka.pipeline import ROOT, LivePipeline, compare, replay_cli
from tests.kafka.test_live_pipeline import FINAL_CLOCK, keyed, workload

pytestmark = [pytest.mark.kafka]

PUBLISHED_AT = "2026-01-07T08:00:00Z"  # inside the workload's busy January
EFFECTIVE_AT = "2026-01-07T12:00:00Z"  # P


def version_two() -> dict[str, Any]:
    """examples/policy.yaml with shorter resolution targets, a holiday added while tickets
    are open, and other warnings."""
    doc: dict[str, Any] = policy_document(ROOT / "examples" / "policy.yaml")
    doc["tiers"]["enterprise"]["targets"]["resolution"] = {
        "urgent": "2h", "high": "6h", "normal": "1d", "low": "2d"
    }  # fmt: skip
    doc["tiers"]["enterprise"]["warnings"] = [0.25, 0.9]
    doc["tiers"]["premium"]["targets"]["resolution"]["high"] = "1d"
    doc["calendars"]["berlin-office"]["holidays"].append("2026-01-08")
    doc["calendars"]["new-york-office"]["holidays"].append("2026-01-09")
    doc.pop("customers")
    return doc


@pytest.fixture
def pipeline(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Any:
    live = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, manual_clock=True)
    yield live
    live.close()


def produce(pipeline: LivePipeline, key: str, value: dict[str, Any], at: str | None) -> None:
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    extra = {} if at is None else {"timestamp": parse_instant(at) // 1000}
    producer.produce(
        pipeline.settings.topic_policies, orjson.dumps(value), key=key.encode(), **extra
    )
    assert producer.flush(30) == 0


def record_first_version(pipeline: LivePipeline) -> None:
    """What the first worker to start does: record its file as the first version."""
    produce(
        pipeline,
        "1",
        {"version": "1", "policy": policy_document(pipeline.policy_path), "first": True},
        "2026-01-01T00:00:00Z",
    )


def publish_with_version(pipeline: LivePipeline) -> list[tuple[bytes | None, bytes]]:
    """The first version, events before the publication, version 2, events after it.

    Returns the replay input: the events with version 2 as a `policy.changed` line.
    """
    events = [orjson.loads(line) for line in workload(240, seed=37)]
    cut = parse_instant(PUBLISHED_AT)
    before = [orjson.dumps(e) for e in events if parse_instant(e["occurred_at"]) < cut]
    after = [orjson.dumps(e) for e in events if parse_instant(e["occurred_at"]) >= cut]
    assert before and after
    record_first_version(pipeline)
    pipeline.publish(keyed(before))
    publication = {"version": "2", "effective_at": EFFECTIVE_AT, "policy": version_two()}
    produce(pipeline, "2", publication, PUBLISHED_AT)
    pipeline.publish(keyed(after))
    line = orjson.dumps({"type": "policy.changed", "event_id": "v2", "occurred_at": PUBLISHED_AT,
                         **publication})  # fmt: skip
    return [*keyed(before), (None, line), *keyed(after)]


def assert_equals_replay(pipeline: LivePipeline, replay_input: list[Any]) -> list[dict[str, Any]]:
    expected = replay_cli(pipeline.policy_path, replay_input, FINAL_CLOCK, pipeline.workdir)
    live = pipeline.committed_outputs()
    outputs = compare(live, expected.outputs)
    assert outputs.equal, outputs.describe("outputs")
    return live


def test_a_version_published_while_tickets_are_open_gives_replays_outputs_live(
    pipeline: LivePipeline,
) -> None:
    replay_input = publish_with_version(pipeline)
    with pipeline.ticking(FINAL_CLOCK):
        worker = pipeline.start_worker()
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()
    live = assert_equals_replay(pipeline, replay_input)
    # the change mattered: breaches decided at P under version 2, both versions in outputs
    at_p = [o for o in live if o["type"] == "sla.breach" and o["decided_at"] == EFFECTIVE_AT]
    assert at_p and {o["policy_version"] for o in at_p} == {"2"}
    assert {o["policy_version"] for o in live} == {"1", "2"}


@pytest.mark.slow
def test_workers_killed_around_a_version_recover_the_same_versions(
    pipeline: LivePipeline,
) -> None:
    """Kills inside and after the transactions of the backlog, whose batches cross P: a
    restarted worker reads the same versions and its partitions' restored meta records say
    which they took, so no version is applied twice or skipped."""
    replay_input = publish_with_version(pipeline)
    # batches of 50: 326 records come before P, so the second worker dies with the batch
    # that crosses P open, the third well after it
    plan = [
        "after_commits:1:tickets",
        "between_produce_and_commit:7:tickets",
        "after_commits:9:tickets",
    ]
    with pipeline.ticking(FINAL_CLOCK):
        worker, report = pipeline.run_crash_plan(plan, crash_env={"SLACLOCK_MAX_BATCH": "50"})
        pipeline.settle(FINAL_CLOCK)
    assert worker.stop() == 0, worker.log_tail()
    assert len(report.kills) == len(plan)
    live = assert_equals_replay(pipeline, replay_input)
    assert any(o["type"] == "sla.breach" and o["decided_at"] == EFFECTIVE_AT for o in live)


def slaclock(pipeline: LivePipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from slaclock.cli import main; main()", *args],
        env=pipeline.env("cli"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_policy_publish_refuses_an_invalid_version_listing_every_problem(
    pipeline: LivePipeline, tmp_path: Path
) -> None:
    record_first_version(pipeline)
    doc = version_two()
    doc["tiers"]["enterprise"]["calendar"] = "nowhere"
    doc["tiers"]["premium"]["warnings"] = [1.5]
    del doc["tiers"]["standard"]  # muster-gmbh's contract names it
    doc["default_tier"] = "enterprise"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    done = slaclock(pipeline, "policy", "publish", str(bad), "--version", "2")
    assert done.returncode == 1, done.stderr
    assert "nowhere" in done.stderr and "1.5" in done.stderr
    assert "nothing published" in done.stderr
    assert [r.publication.version for r in read_policy_log(pipeline.settings)] == ["1"]

    incompatible = version_two()
    del incompatible["tiers"]["standard"]
    incompatible["default_tier"] = "enterprise"
    bad.write_text(yaml.safe_dump(incompatible))
    done = slaclock(pipeline, "policy", "publish", str(bad), "--version", "2")
    assert done.returncode == 1, done.stderr
    assert "'muster-gmbh'" in done.stderr and "standard" in done.stderr
    assert [r.publication.version for r in read_policy_log(pipeline.settings)] == ["1"]

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(version_two()))
    done = slaclock(pipeline, "policy", "publish", str(good), "--version", "2",
                    "--effective-at", "2030-01-01T00:00:00Z")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [r.publication.version for r in read_policy_log(pipeline.settings)] == ["1", "2"]
    shown = slaclock(pipeline, "policy", "show")  # version 2 is not in force before 2030
    assert shown.returncode == 0 and yaml.safe_load(shown.stdout)["version"] == "1"


def test_a_worker_started_with_a_file_the_log_does_not_hold_exits_in_one_line(
    pipeline: LivePipeline, tmp_path: Path
) -> None:
    first = pipeline.start_worker()  # records examples/policy.yaml as the first version
    deadline_log = first
    assert first.stop() == 0, deadline_log.log_tail()
    assert [r.publication.first for r in read_policy_log(pipeline.settings)] == [True]

    edited = tmp_path / "edited.yaml"
    doc = policy_document(pipeline.policy_path)
    doc["tiers"]["enterprise"]["targets"]["resolution"]["high"] = "6h"
    edited.write_text(yaml.safe_dump(doc))  # still says version "1", but is not version 1
    worker = pipeline.start_worker("w2", {"SLACLOCK_POLICY_PATH": str(edited)})
    assert worker.process.wait(120) == 1
    lines = [line for line in worker.log_path.read_text().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "slaclock policy publish" in lines[0], worker.log_tail()
