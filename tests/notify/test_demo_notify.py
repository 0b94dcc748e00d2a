"""`slaclock demo --notify` (`make run NOTIFY=1`): notifications reach its local receiver."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.notify.harness import SLACLOCK

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_shows_breaches_arriving_at_a_local_receiver(kafka_bootstrap: str) -> None:
    app_id = f"demo-notify-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [
            str(SLACLOCK),
            "demo",
            "--notify",
            "--bootstrap",
            kafka_bootstrap,
            "--duration",
            "40",
            "--rate",
            "4",
            "--seed",
            "3",
            "--app-id",
            app_id,
            "--plain",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLACLOCK_")},
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr}"
    breaches = set(re.findall(r"BREACH\s+(\S+)", out))
    notified = set(re.findall(r"notified :rotating_light: Ticket (\S+) ", out))
    assert notified, out
    assert notified <= breaches  # only breaches the demo itself reported
    received = re.search(r"notify: (\d+) notifications received", out)
    assert received is not None and int(received.group(1)) >= len(notified)
