"""A what-if run, or a replay sharded over forked processes, from a process that holds
native handles (a worker's Kafka clients and RocksDB store, closed but not yet collected, as
in a long test run): no child may collect what it inherited, or the garbage collection each
replay starts with runs their destructors without their threads and crashes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HOST = """
import gc, sys, tempfile
from pathlib import Path
gc.disable()  # the handles stay garbage until a collection, as in a busy process
from slaclock.processors.live.tickets import TicketProcessor
from slaclock.processors.report.whatif_run import replay_both
from slaclock.processors.settings import load_settings
from tests.core.group_builders import group_policy

state = Path(tempfile.mkdtemp())
for store in ("memory", "rocksdb"):
    settings = load_settings(
        bootstrap_servers="127.0.0.1:1", app_id="app", instance_id="w1", http_port=0,
        store=store, state_dir=state / store,
    )
    tickets = TicketProcessor(settings, group_policy(), ledger_partitions=1)
    tickets.restore_task(0, [])
    tickets.close()
    del tickets
examples = Path("examples")
if sys.argv[1] == "sharded":  # the shards fork from this process
    from slaclock.processors.parallel_replay import replay_parallel
    from slaclock.processors.engine.policy import compile_policy
    from slaclock.schemas.policy import load_policy
    from slaclock.processors.report.whatif import OutcomeCollector, calendar_projection

    policy = compile_policy(load_policy(examples / "policy.yaml"))
    collector = OutcomeCollector(calendar_projection(policy))
    with (examples / "events.jsonl").open("rb") as source:
        replay_parallel(policy, source, collector, lambda rejection: None, None, 2)
    print("outcomes", len(collector.result()))
else:  # the what-if's two replays start from this process
    (a, _), (b, _) = replay_both(
        examples / "policy.yaml", examples / "policy.yaml", examples / "events.jsonl", None
    )
    assert a == b
    print("outcomes", len(a))
"""


@pytest.mark.parametrize("run", ["what-if", "sharded"])
def test_a_replay_from_a_process_holding_kafka_clients_and_a_store_completes(run: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", HOST, run],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    label, count = done.stdout.split()
    assert label == "outcomes" and int(count) > 0
