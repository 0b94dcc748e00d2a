"""The test-only crash points of the transactional loop (SLACLOCK_TEST_CRASH)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from slaclock.processors.live.testcrash import (
    AFTER_COMMITS,
    BETWEEN_PRODUCE_AND_COMMIT,
    ENV_VAR,
    CrashPoint,
)


def test_without_the_variable_no_loop_has_a_crash_point() -> None:
    assert CrashPoint.from_env("tickets", {}) is None
    assert CrashPoint.from_env("ledger", {ENV_VAR: ""}) is None


def test_a_crash_point_without_a_loop_applies_to_every_loop() -> None:
    env = {ENV_VAR: f"{AFTER_COMMITS}:3"}
    assert CrashPoint.from_env("tickets", env) == CrashPoint(AFTER_COMMITS, 3, "tickets")
    assert CrashPoint.from_env("ledger", env) == CrashPoint(AFTER_COMMITS, 3, "ledger")


def test_a_crash_point_naming_a_loop_leaves_the_other_alone() -> None:
    env = {ENV_VAR: f"{BETWEEN_PRODUCE_AND_COMMIT}:2:ledger"}
    assert CrashPoint.from_env("tickets", env) is None
    assert CrashPoint.from_env("ledger", env) == CrashPoint(BETWEEN_PRODUCE_AND_COMMIT, 2, "ledger")


def test_stop_makes_a_zombie_instead_of_a_kill() -> None:
    env = {ENV_VAR: f"{BETWEEN_PRODUCE_AND_COMMIT}:4:tickets:stop"}
    assert CrashPoint.from_env("tickets", env) == CrashPoint(
        BETWEEN_PRODUCE_AND_COMMIT, 4, "tickets", stop=True
    )


@pytest.mark.parametrize(
    "value",
    [
        "after_commit:2",
        "after_commits",
        "after_commits:0",
        "after_commits:x",
        "after_commits:2:bank",
        "after_commits:2:tickets:halt",
        "after_commits:2:tickets:stop:now",
    ],
)
def test_a_malformed_crash_point_is_refused_in_one_line(value: str) -> None:
    with pytest.raises(ValueError, match=f"{ENV_VAR}=.*test-only.*<point>:<n>") as raised:
        CrashPoint.from_env("tickets", {ENV_VAR: value})
    assert "\n" not in str(raised.value)


CHILD = """
from slaclock.processors.live.testcrash import CrashPoint

class Producer:
    def flush(self, timeout):
        print("flushed", flush=True)
        return 0

crash = CrashPoint("{point}", 3, "tickets", stop={stop})
for n in range(1, 6):
    crash.reached("{other}", Producer())
    crash.reached("{point}", Producer())
    print("survived", n, flush=True)
"""


@pytest.mark.parametrize(
    ("point", "other"),
    [(AFTER_COMMITS, BETWEEN_PRODUCE_AND_COMMIT), (BETWEEN_PRODUCE_AND_COMMIT, AFTER_COMMITS)],
)
def test_the_process_is_sigkilled_at_the_nth_time_its_point_is_reached(
    point: str, other: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(point=point, other=other, stop=False)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL
    flushed = ["flushed"] if point == BETWEEN_PRODUCE_AND_COMMIT else []
    assert done.stdout.splitlines() == ["survived 1", "survived 2", *flushed]
    expected = f"slaclock test crash: {point} #3 in tickets"
    if point == BETWEEN_PRODUCE_AND_COMMIT:
        expected += ", transaction open, 0 records unacknowledged"
    assert done.stderr.strip() == expected


def test_a_stopped_process_goes_on_after_sigcont_and_stops_only_once() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(point=AFTER_COMMITS, other="none", stop=True)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    line = child.stderr.readline().strip()  # written just before it stops itself
    assert line == f"slaclock test crash: {AFTER_COMMITS} #3 in tickets, stopping"
    _, status = os.waitpid(child.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    child.send_signal(signal.SIGCONT)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.splitlines() == [f"survived {n}" for n in range(1, 6)]
