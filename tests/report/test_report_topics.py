"""`slaclock report --from-topics` reads the output topics of a real broker, committed only."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from slaclock.processors.report.figures import ReportRequest, build_report
from slaclock.processors.report.outputs import outputs_from_records
from slaclock.processors.report.render import report_json
from tests.report.workload import known_events, replay_outputs

pytestmark = pytest.mark.kafka

TOPIC_OF = {
    "sla.warning": "warnings",
    "sla.breach": "breaches",
    "sla.completed": "completions",
    "sla.credit": "credits",
    "sla.credit_earned_back": "credits",
    "sla.statement": "statements",
}


def test_report_from_topics_equals_the_report_from_the_file_and_skips_aborted_records(
    kafka_bootstrap: str,
    topic_prefix: str,
    create_topics: Callable[..., list[str]],
    tmp_path: Path,
) -> None:
    names = {kind: f"{topic_prefix}sla.{kind}" for kind in set(TOPIC_OF.values())}
    create_topics(list(names.values()), partitions=2)
    outputs = replay_outputs(known_events())
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic_prefix}report-test"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for output in outputs:
        key = output.get("ticket_id") or output["customer_id"]
        producer.produce(names[TOPIC_OF[output["type"]]], orjson.dumps(output), key.encode())
    producer.commit_transaction(30)
    aborted: dict[str, Any] = {**next(o for o in outputs if o["type"] == "sla.breach")}
    aborted |= {"ticket_id": "ABORTED", "event_id": "aborted"}
    producer.begin_transaction()
    producer.produce(names["breaches"], orjson.dumps(aborted), b"ABORTED")
    producer.flush(30)
    producer.abort_transaction(30)

    env = {
        **os.environ,
        "SLACLOCK_BOOTSTRAP_SERVERS": kafka_bootstrap,
        **{f"SLACLOCK_TOPIC_{kind.upper()}": name for kind, name in names.items()},
        # a deployment without the availability topic: it is skipped, not an error
        "SLACLOCK_TOPIC_AVAILABILITY": f"{topic_prefix}sla.availability",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from slaclock.cli import main; main()",
            "report",
            "--from-topics",
            "--period",
            "2026-10",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    from_topics = orjson.loads((tmp_path / "r.json").read_bytes())
    expected = orjson.loads(
        report_json(
            build_report(
                outputs_from_records(outputs), ReportRequest(period="2026-10"), _no_policy(), "x"
            )
        )
    )
    assert from_topics["sections"] == expected["sections"]
    assert "ABORTED" not in (tmp_path / "r-breaches.csv").read_text()


def _no_policy() -> Any:
    from slaclock.processors.report.figures import PolicyInfo

    return PolicyInfo()
