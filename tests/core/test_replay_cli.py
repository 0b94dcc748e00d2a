"""`slaclock replay` end to end on files, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from slaclock.cli import app

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "policy.yaml"
EVENTS = ROOT / "examples" / "events.jsonl"
runner = CliRunner()


def _replay(tmp_path: Path, *extra: str, name: str = "out.jsonl") -> tuple[bytes, str]:
    out = tmp_path / name
    result = runner.invoke(
        app,
        ["replay", "--policy", str(POLICY), "--events", str(EVENTS), "--out", str(out), *extra],
    )
    assert result.exit_code == 0, result.output
    return out.read_bytes(), result.output


def test_replaying_the_same_file_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first, _ = _replay(tmp_path, name="a.jsonl")
    second, _ = _replay(tmp_path, name="b.jsonl")
    assert first == second
    assert first.count(b"\n") > 10


def test_example_shows_every_output_type(tmp_path: Path) -> None:
    data, _ = _replay(tmp_path)
    kinds = {orjson.loads(line)["type"] for line in data.splitlines()}
    assert kinds == {"sla.warning", "sla.breach", "sla.completed", "sla.cancelled", "sla.credit"}


def test_rejected_lines_go_to_dlq_with_line_number_and_reason(tmp_path: Path) -> None:
    dlq = tmp_path / "dlq.jsonl"
    _, stderr = _replay(tmp_path, "--dlq", str(dlq))
    rejected = [orjson.loads(line) for line in dlq.read_bytes().splitlines()]
    assert [(r["line"], r["error_class"]) for r in rejected] == [
        (12, "NaiveTimestamp"),
        (13, "UnknownTicket"),
    ]
    assert "T-9999" in rejected[1]["message"]
    assert orjson.loads(rejected[0]["raw"])["event_id"] == "ev-011"  # the line, unchanged
    assert "rejected 2, duplicates 1" in stderr


def test_rejected_lines_are_shown_with_line_class_and_reason_and_dlq_is_named(
    tmp_path: Path,
) -> None:
    _, stderr = _replay(tmp_path)
    lines = stderr.splitlines()
    assert any(line.startswith("replay: line 12: NaiveTimestamp: ") for line in lines)
    assert any(
        line.startswith("replay: line 13: UnknownTicket: ") and "T-9999" in line for line in lines
    )
    assert "2 rejected lines not kept: --dlq FILE writes them" in stderr


def test_rejected_lines_written_with_dlq_say_where(tmp_path: Path) -> None:
    dlq = tmp_path / "dlq.jsonl"
    _, stderr = _replay(tmp_path, "--dlq", str(dlq))
    assert f"2 rejected lines written to {dlq}" in stderr.replace("\n", "")


def test_a_refused_policy_is_printed_without_wrapping_its_lines(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    text = POLICY.read_text(encoding="utf-8")
    bad.write_text(text.replace("{urgent: 15m,", "{urgent: 15 minutes and a half,", 1))
    result = runner.invoke(
        app, ["replay", "--policy", str(bad), "--events", str(EVENTS)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 1
    [problem] = [line for line in result.output.splitlines() if "invalid duration" in line]
    assert len(problem) > 80
    assert problem.endswith("e.g. '15m', '1h30m', '1d', '90s'")


def test_until_advances_the_clock_and_fires_later_timers(tmp_path: Path) -> None:
    short, _ = _replay(tmp_path, name="short.jsonl")
    longer, _ = _replay(tmp_path, "--until", "2026-03-20T00:00:00Z", name="long.jsonl")
    assert longer.startswith(short)
    extra = [orjson.loads(line) for line in longer[len(short) :].splitlines()]
    assert {(e["ticket_id"], e["type"], e["metric"]) for e in extra} == {
        ("T-2001", "sla.warning", "resolution"),
        ("T-2001", "sla.breach", "resolution"),
    }


def test_until_without_offset_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["replay", "--policy", str(POLICY), "--events", str(EVENTS), "--until", "2026-03-20T00:00"],
    )
    assert result.exit_code == 2
    assert "offset" in result.output


def test_invalid_policy_is_refused_with_its_problems(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "replay",
            "--policy",
            str(ROOT / "examples" / "invalid-policy.yaml"),
            "--events",
            str(EVENTS),
        ],
    )
    assert result.exit_code == 1
    assert "policy refused" in result.output


def test_statements_example_earns_octobers_credit_back_at_the_end_of_december(
    tmp_path: Path,
) -> None:
    out = tmp_path / "statements.jsonl"
    events = ROOT / "examples" / "statements-events.jsonl"
    result = runner.invoke(
        app,
        [
            "replay",
            "--policy",
            str(POLICY),
            "--events",
            str(events),
            "--out",
            str(out),
            "--until",
            "2026-12-31T23:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    outputs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    acme = {
        o["period"]: o
        for o in outputs
        if o["type"] == "sla.statement" and o["customer_id"] == "acme"
    }
    assert [
        (p, s["overall"]["compliance"], s["credits_total"], s["compliant"])
        for p, s in sorted(acme.items())
    ] == [
        ("2026-10", "0.7500", "120.00", False),
        ("2026-11", "1.0000", "0.00", True),
        ("2026-12", "1.0000", "0.00", True),
    ]
    earned = [o for o in outputs if o["type"] == "sla.credit_earned_back"]
    assert [(e["period"], e["amount"], e["earned_through"]) for e in earned] == [
        ("2026-10", "120.00", "2026-12")
    ]
    assert outputs.index(earned[0]) == outputs.index(acme["2026-12"]) + 1


def test_timers_fired_before_a_refused_service_line_keep_their_outputs() -> None:
    """The replay clock moves to a service line before the line is judged: the ticket timers
    due before it fire, and their outputs are written even when the line names a service
    the policy does not define."""
    from slaclock.processors.engine.policy import compile_policy
    from slaclock.processors.replay import Rejection, replay
    from slaclock.schemas.policy import load_policy

    policy = compile_policy(load_policy(Path("examples/services-policy.yaml")))
    lines = [
        orjson.dumps(line)
        for line in (
            {"event_id": "e1", "type": "ticket.created", "ticket_id": "T1",
             "customer_id": "acme", "priority": "urgent", "occurred_at": "2026-11-02T09:00:00Z"},
            {"event_id": "s1", "type": "service.status_changed", "service_id": "no-such-service",
             "status": "major_outage", "occurred_at": "2026-11-02T10:00:00Z"},
        )
    ]  # fmt: skip
    outputs: list[dict[str, object]] = []
    rejected: list[Rejection] = []
    replay(policy, lines, outputs.append, rejected.append, None)
    assert [r.error_class for r in rejected] == ["UnknownService"]
    # first response: warned at 75% of 15 minutes, breached at 09:15 (both before 10:00)
    fired = [(o["type"], o["metric"], o["at"]) for o in outputs if o["type"] != "sla.credit"]
    assert fired == [
        ("sla.warning", "first_response", "2026-11-02T09:11:15Z"),
        ("sla.breach", "first_response", "2026-11-02T09:15:00Z"),
    ]
