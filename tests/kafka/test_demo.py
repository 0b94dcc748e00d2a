"""`slaclock demo`: its workload under its policy (replay), and a whole run on the broker."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from slaclock.demo import DEMO_POLICY, LiveWorkload
from slaclock.processors.engine.instants import US_PER_SECOND, format_us, parse_instant
from slaclock.processors.engine.policy import compile_policy
from slaclock.processors.replay import replay
from slaclock.schemas.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]

# `slaclock demo` through its own registration, whether or not slaclock.cli mounts it yet.
DEMO_APP = """
import typer
from slaclock.cli_demo import register_demo

app = typer.Typer()

@app.callback()
def main() -> None:
    pass

register_demo(app)
app()
"""


def simulated_outputs(seconds: float, rate: float, seed: int) -> list[dict[str, object]]:
    """Replay of what the demo would publish in `seconds`, stepped 0.1 s at a time."""
    workload = LiveWorkload(random.Random(seed), rate, unknown_every=25)
    start = parse_instant("2026-03-02T10:00:00Z")
    lines: list[bytes] = []
    for step in range(int(seconds * 10)):
        at = start + step * US_PER_SECOND // 10
        for event in workload.due(step / 10):
            lines.append(orjson.dumps({**event, "occurred_at": format_us(at)}))
    outputs: list[dict[str, object]] = []
    policy = compile_policy(load_policy(DEMO_POLICY))
    end = start + int(seconds * US_PER_SECOND)
    replay(policy, lines, outputs.append, lambda rejection: None, end)
    return outputs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_workload_shows_every_output_type_within_a_minute(seed: int) -> None:
    """The demo policy and workload are tuned together: at the default rate, a minute has
    warnings, breaches, met and late completions, credits and capped credits."""
    outputs = simulated_outputs(60, rate=2.0, seed=seed)
    kinds = Counter(str(o["type"]) for o in outputs)
    assert {"sla.warning", "sla.breach", "sla.completed", "sla.credit"} <= set(kinds), kinds
    outcomes = {o["outcome"] for o in outputs if o["type"] == "sla.completed"}
    assert outcomes == {"met", "breached"}
    assert any(o["type"] == "sla.credit" and o["capped"] for o in outputs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_escalations_breach_engineerings_group_target_within_half_a_minute(
    seed: int,
) -> None:
    """Tickets escalated from first line to engineering get engineering's first note late:
    its group_response breaches (an OLA) within the live test's half minute at its rate, and
    within a minute at the default rate the ticket is handed back to first line."""
    outputs = simulated_outputs(30, rate=4.0, seed=seed)
    group_breaches = [o for o in outputs if o["type"] == "sla.breach" and o["group"] is not None]
    assert any(
        o["group"] == "engineering" and o["metric"] == "group_response" for o in group_breaches
    ), Counter((o["group"], o["metric"]) for o in group_breaches)
    handed_back = [
        o
        for o in simulated_outputs(60, rate=2.0, seed=seed)
        if o["type"] == "sla.completed"
        and o["group"] == "engineering"
        and o["metric"] == "group_resolution"
    ]
    assert handed_back  # engineering's hold ended by the hand-back


def test_live_workload_is_in_due_order_per_ticket() -> None:
    workload = LiveWorkload(random.Random(4), rate=5.0, unknown_every=10)
    seen: dict[str, list[str]] = {}
    for step in range(600):
        for event in workload.due(step / 10):
            seen.setdefault(event["ticket_id"], []).append(event["event_id"])
    assert workload.tickets > 200
    for ticket, ids in seen.items():
        assert ids == sorted(ids, key=lambda i: int(i.rsplit("-", 1)[1])), ticket
        assert ticket.startswith("X") or ids[0] == f"{ticket}-1"
    assert any(ticket.startswith("X") for ticket in seen)  # replies to unknown tickets


@pytest.mark.kafka
def test_demo_run_shows_outputs_and_stops_its_worker(kafka_bootstrap: str) -> None:
    app_id = f"demo-test-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            DEMO_APP,
            "demo",
            "--bootstrap",
            kafka_bootstrap,
            "--duration",
            "35",
            "--rate",
            "4",
            "--seed",
            "3",
            "--app-id",
            app_id,
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLACLOCK_")},
        capture_output=True,
        text=True,
        timeout=150,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr}"
    assert "\x1b[" not in out  # stdout is no terminal: plain lines, no live view

    feed = [line.split()[1] for line in out.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d ", line)]
    shown = Counter(feed)
    for label in ("warning", "BREACH", "met", "credit", "DLQ"):
        assert shown[label] >= 1, (label, shown, out)
    group_breach = re.compile(r" BREACH .* group_response#\d+ \(group engineering\)\s+target ")
    ola_lines = [line for line in out.splitlines() if group_breach.search(line)]
    assert ola_lines, out  # an escalation whose group target was missed, in the feed

    summary = re.search(
        r"^demo finished after .*: published (\d+) events .*; warnings (\d+), breaches (\d+) "
        r"\((\d+) of internal groups\), completions (\d+) .*credits (\d+) .*dead letters (\d+)$",
        out,
        re.MULTILINE,
    )
    assert summary is not None, out
    published, warnings, breaches, groups, completions, credits, dead = map(int, summary.groups())
    assert published > 0 and min(warnings, breaches, completions, credits, dead) >= 1
    group_lines = [line for line in out.splitlines() if " BREACH " in line and "(group " in line]
    assert groups == len(group_lines) >= len(ola_lines)
    assert warnings == shown["warning"] and breaches == shown["BREACH"]
    assert credits == shown["credit"] and dead == shown["DLQ"]
    assert completions == shown["met"] + shown["late"]

    worker = re.search(r"worker \(pid (\d+)\) exited with status 0; left the broker running", out)
    assert worker is not None, out
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(int(worker.group(1)), 0)

    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert not [name for name in topics if name.startswith(app_id)]  # deleted at exit
