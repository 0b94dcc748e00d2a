"""`replay --workers N` (processors/parallel_replay.py): tickets sharded across processes,
and exactly the bytes, rejections and counts of one process."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from slaclock.cli import app
from slaclock.processors import parallel_replay
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import CompiledPolicy, compile_policy
from slaclock.processors.parallel_replay import replay_parallel
from slaclock.processors.replay import Rejection, replay
from slaclock.schemas.policy import load_policy, parse_policy
from slaclock.workload import mixed_lines
from tests.report.workload import known_events, policy_yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES_POLICY = ROOT / "examples" / "services-policy.yaml"


def _policy(path: Path) -> CompiledPolicy:
    return compile_policy(load_policy(path))


def one_process(
    policy: CompiledPolicy, lines: list[bytes], until: int | None
) -> tuple[bytes, bytes, str]:
    outputs: list[bytes] = []
    rejected: list[bytes] = []
    summary = replay(
        policy,
        lines,
        lambda o: outputs.append(orjson.dumps(o)),
        lambda r: rejected.append(r.to_json()),
        until,
    )
    return b"\n".join(outputs), b"\n".join(rejected), summary.describe()


def sharded(
    policy: CompiledPolicy, lines: list[bytes], until: int | None, workers: int, raw: bool = False
) -> tuple[tuple[bytes, bytes, str], int, str | None]:
    """With `raw`, the outputs the shards serialised come as bytes (the command's writer)."""
    outputs: list[bytes] = []
    rejected: list[Rejection] = []

    def emit_raw(written: bytes) -> None:
        assert written.endswith(b"\n")
        outputs.extend(written.splitlines())

    run = replay_parallel(
        policy,
        lines,
        lambda o: outputs.append(orjson.dumps(o)),
        rejected.append,
        until,
        workers,
        emit_raw=emit_raw if raw else None,
    )
    dlq = b"\n".join(r.to_json() for r in rejected)
    return (b"\n".join(outputs), dlq, run.summary.describe()), run.workers, run.fallback


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("until", [None, "2027-01-03T00:00:00Z"])
@pytest.mark.parametrize("chunk", [parallel_replay.CHUNK, 37])
def test_two_and_three_workers_write_the_bytes_of_one_process(
    seed: int, until: str | None, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random workloads with rejected lines, repeated events, contract changes, service
    events (and an unknown service), with and without a final `until`; in one batch of
    lines, and in batches of 37 lines merged while the shards work on the next (the
    shards are forked: they see the patched size)."""
    monkeypatch.setattr(parallel_replay, "CHUNK", chunk)
    policy = _policy(SERVICES_POLICY)
    lines = [line + b"\n" for line in mixed_lines(100 + 40 * seed, seed)]
    lines.insert(len(lines) // 2, b"   \n")  # a blank line: still counted as a line
    until_us = None if until is None else parse_instant(until)
    expected = one_process(policy, lines, until_us)
    assert expected[0].count(b'"sla.credit"') > 0 and expected[1].count(b"UnknownTicket") > 0
    for workers in (1, 2, 3):
        result, used, fallback = sharded(policy, lines, until_us, workers)
        assert (used, fallback) == (workers, None)
        assert result == expected, f"{workers} workers"
    for workers in (2, 3):
        assert sharded(policy, lines, until_us, workers, raw=True)[0] == expected


@pytest.mark.parametrize("chunk", [parallel_replay.CHUNK, 5])
def test_tickets_without_services_and_statements_with_earn_back_are_merged_exactly(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel_replay, "CHUNK", chunk)
    policy = compile_policy(parse_policy(policy_yaml(), "test-policy.yaml"))
    lines = [orjson.dumps(e) for e in known_events()]
    until = parse_instant("2027-01-01T00:00:00Z")
    expected = one_process(policy, lines, until)
    assert expected[0].count(b'"sla.statement"') > 0
    for workers in (2, 3):
        assert sharded(policy, lines, until, workers)[0] == expected
        assert sharded(policy, lines, until, workers, raw=True)[0] == expected


@pytest.mark.parametrize("chunk", [parallel_replay.CHUNK, 40])
def test_input_out_of_time_order_is_replayed_in_one_process_and_says_why(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found half-way through the merge too (batches of 40 lines): nothing merged before
    it is written."""
    monkeypatch.setattr(parallel_replay, "CHUNK", chunk)
    policy = _policy(SERVICES_POLICY)
    lines = mixed_lines(300, 5)
    # a ticket's reply moved before the previous line: one process applies it late
    at = next(
        i
        for i, line in enumerate(lines)
        if i > 100 and b'"ticket.customer_replied","ticket_id":"T' in line
    )
    late = orjson.loads(lines[at])
    late["occurred_at"] = "2026-11-01T00:00:00Z"
    lines.insert(at + 1, orjson.dumps({**late, "event_id": "late-1"}))
    expected = one_process(policy, lines, None)
    assert "late 1" in expected[2]
    result, used, fallback = sharded(policy, lines, None, 2)
    assert used == 1 and fallback is not None and f"line {at + 2} " in fallback
    assert result == expected


def test_input_with_a_policy_version_is_replayed_in_one_process_and_says_why() -> None:
    policy = _policy(SERVICES_POLICY)
    lines = mixed_lines(300, 7)
    at = len(lines) // 2
    instant = orjson.loads(lines[at])["occurred_at"]
    document = load_policy(SERVICES_POLICY).model_dump(mode="json", exclude_none=True)
    document.pop("version", None)
    for targets in document["tiers"].values():
        for by_priority in targets["targets"].values():
            for priority in by_priority:
                by_priority[priority] = "1m"  # every deadline shorter: breaches at P
    version = {
        "type": "policy.changed",
        "event_id": "v2",
        "occurred_at": instant,
        "version": "2",
        "policy": document,
    }
    lines.insert(at + 1, orjson.dumps(version))
    expected = one_process(policy, lines, None)
    assert "policy versions 1" in expected[2] and b'"policy_version":"2"' in expected[0]
    result, used, fallback = sharded(policy, lines, None, 2)
    assert used == 1 and fallback is not None and f"line {at + 2} is a policy version" in fallback
    assert result == expected


def test_by_default_small_inputs_replay_in_one_process() -> None:
    policy = _policy(SERVICES_POLICY)
    run = replay_parallel(policy, mixed_lines(50, 1), lambda o: None, lambda r: None)
    assert run.workers == 1


def _cli_replay(tmp_path: Path, events: Path, *flags: str) -> tuple[bytes, bytes, str]:
    out, dlq = tmp_path / f"out{flags}.jsonl", tmp_path / f"dlq{flags}.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "replay",
            "--policy",
            str(SERVICES_POLICY),
            "--events",
            str(events),
            "--out",
            str(out),
            "--dlq",
            str(dlq),
            *flags,
        ],
    )
    assert result.exit_code == 0, result.output
    return out.read_bytes(), dlq.read_bytes(), result.stderr


def test_the_replay_command_with_workers_writes_what_one_process_writes(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(mixed_lines(400, 21)) + b"\n")
    out, dlq, stderr = _cli_replay(tmp_path, events, "--workers", "2")
    assert "replay: 2 workers" in stderr
    assert (out, dlq) == _cli_replay(tmp_path, events, "--workers", "1")[:2]


def test_the_replay_command_says_when_it_falls_back_to_one_process(tmp_path: Path) -> None:
    lines = mixed_lines(100, 22)
    lines.append(lines[-1].replace(b'"occurred_at":"2026-1', b'"occurred_at":"2025-1'))
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    out, _, stderr = _cli_replay(tmp_path, events, "--workers", "3")
    assert f"line {len(lines)} " in stderr and "replayed in one process" in stderr
    assert out == _cli_replay(tmp_path, events, "--workers", "1")[0]


def test_a_ticket_id_written_with_escapes_reaches_the_shard_of_its_ticket() -> None:
    policy = _policy(SERVICES_POLICY)
    lines = mixed_lines(120, 23)
    for n, at in enumerate(("2026-11-02T08:00:00Z", "2026-11-02T08:00:01Z")):
        ticket = b'"ticket_id":"TA%d"' % n
        lines.insert(
            n,
            b'{"event_id":"e%d","type":"ticket.created",%s,"occurred_at":"%s",'
            b'"customer_id":"acme","priority":"urgent"}' % (n, ticket, at.encode()),
        )
    lines += [  # the same tickets, their ids escaped, and one named twice (the last counts)
        b'{"event_id":"r0","type":"ticket.customer_replied","ticket_id":"T\\u00410",'
        b'"occurred_at":"2026-12-30T00:00:00Z"}',
        b'{"event_id":"r1","type":"ticket.agent_replied","ticket_id":"x","ticket_id":"TA1",'
        b'"occurred_at":"2026-12-30T00:00:00Z"}',
    ]
    expected = one_process(policy, lines, None)
    assert b'"r0"' not in expected[1] and b'"r1"' not in expected[1]  # both applied
    for workers in (2, 3):
        result, used, _ = sharded(policy, lines, None, workers)
        assert (result, used) == (expected, workers)


def test_a_refused_line_ahead_of_the_clock_does_not_fire_a_shards_timers_early() -> None:
    """A line the engine refuses moves no clock in one process; a shard fires its timers
    due before the line's instant before it learns the line is refused. A later (earlier
    dated) event of that ticket must still come before its breach: such input replays in
    one process."""
    policy = _policy(SERVICES_POLICY)
    created = (
        b'{"event_id":"c1","type":"ticket.created","ticket_id":"X","occurred_at":'
        b'"2026-11-02T09:00:00Z","customer_id":"acme","priority":"urgent"}'
    )
    again = created.replace(b'"c1"', b'"c2"').replace(b"2026-11-02T09", b"2026-11-09T09")
    reply = (
        b'{"event_id":"r1","type":"ticket.agent_replied","ticket_id":"X","occurred_at":'
        b'"2026-11-02T09:05:00Z"}'
    )
    lines = [created, again, reply]
    expected = one_process(policy, lines, None)
    assert b"DuplicateTicket" in expected[1] and b'"outcome":"met"' in expected[0]
    result, used, fallback = sharded(policy, lines, None, 2)
    assert result == expected
    assert used == 1 and fallback is not None and "line 3 " in fallback
