"""`slaclock explain` and `GET /tickets/{id}?explain=true` (docs/semantics.md: Explanations):
the same JSON for the same ticket at the same instant; replay to `--at`; the terminal
table; one-line errors; the HTTP access, redirect and bad-value rules."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import yaml
from typer.testing import CliRunner

from slaclock.cli import app
from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.versions import PolicyBook
from slaclock.processors.explain_replay import replay_to
from slaclock.processors.live.http import TicketSnapshot
from slaclock.processors.live.store import MemoryTicketStore
from slaclock.processors.settings import load_settings
from tests.core.builders import POLICY_YAML, agent_reply, created, make_policy, priority, status
from tests.unit.test_http_server import (
    TOKEN,
    FakeDirectory,
    FakeView,
    request,
    serve,
    ticket_in,
    view,
)

runner = CliRunner()

EVENTS = [
    created("2026-03-06T13:00:00Z", ticket="T-7", customer="globex", event_id="c1"),
    status("2026-03-06T13:30:00Z", "pending", ticket="T-7", event_id="p1"),
    priority("2026-03-06T13:40:00Z", "normal", ticket="T-7", event_id="n1"),
    status("2026-03-09T09:00:00Z", "open", ticket="T-7", event_id="o1"),
    agent_reply("2026-03-09T10:00:00Z", ticket="T-7", event_id="a1"),
    created("2026-03-10T09:00:00Z", ticket="T-8", customer="acme", event_id="c2"),
]
AT = "2026-03-09T09:30:00Z"


def files(tmp_path: Path) -> tuple[Path, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in EVENTS))
    return policy, events


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["explain", *args])
    return result.exit_code, result.stdout, result.stderr


def snapshot_at(events: Path, ticket: str, at: str, partition: int) -> TicketSnapshot:
    """The ticket as a worker would publish it with its partition clock at `at`."""
    with events.open("rb") as source:
        replayer, _ = replay_to(make_policy(), source, parse_instant(at))
    store = MemoryTicketStore()
    store[ticket] = replayer.store[ticket]
    store.flush(parse_instant(at))
    record, clock = store.published(ticket)
    assert record is not None
    return TicketSnapshot(partition, record, clock)


def test_http_and_cli_give_the_same_json_for_the_same_ticket_and_instant(
    tmp_path: Path,
) -> None:
    policy, events = files(tmp_path)
    code, out, err = cli(
        "--policy", str(policy), "--events", str(events), "--ticket", "T-7", "--at", AT, "--json"
    )
    assert code == 0, err
    fake = view(http_token=TOKEN)
    fake.snapshots["T-7"] = snapshot_at(events, "T-7", AT, 1)
    server = serve(fake)
    try:
        status_code, headers, body = request(server, "/tickets/T-7?explain=true", token=TOKEN)
        assert status_code == 200 and headers["Content-Type"] == "application/json"
        assert body == out.encode().rstrip(b"\n")
        plain = json.loads(request(server, "/tickets/T-7", token=TOKEN)[2])
        assert "metrics" in plain and "cycles" not in plain  # without explain: the status
    finally:
        server.stop()
    explanation = json.loads(out)
    assert explanation["at"] == AT
    resolution = next(c for c in explanation["cycles"] if c["metric"] == "resolution")
    assert [s["kind"] for s in resolution["segments"]] == ["counted", "paused", "counted"]
    assert resolution["segments"][1]["cause"] == {"event_id": "p1", "status": "pending"}
    assert [c["priority"] for c in resolution["target_history"]] == ["high", "normal"]


def test_explain_replays_only_to_at_and_defaults_to_the_last_event(tmp_path: Path) -> None:
    policy, events = files(tmp_path)
    code, out, _ = cli(
        "--policy", str(policy), "--events", str(events), "--ticket", "T-7", "--json"
    )
    assert code == 0
    whole = json.loads(out)
    assert whole["at"] == "2026-03-10T09:00:00Z"
    first = next(c for c in whole["cycles"] if c["metric"] == "first_response")
    assert first["state"] in ("met", "breached") and first["ended_at"] == "2026-03-09T10:00:00Z"
    code, out, _ = cli(
        "--policy", str(policy), "--events", str(events), "--ticket", "T-7", "--json",
        "--at", "2026-03-06T13:35:00Z",
    )  # fmt: skip
    early = json.loads(out)
    first = next(c for c in early["cycles"] if c["metric"] == "first_response")
    assert first["state"] == "running" and first["target_history"][-1]["priority"] == "high"


def test_explain_prints_a_table_per_cycle(tmp_path: Path) -> None:
    policy, events = files(tmp_path)
    code, out, _ = cli("--policy", str(policy), "--events", str(events), "--ticket", "T-7")
    assert code == 0
    assert "T-7 as of 2026-03-10 09:00 (UTC)" in out
    assert "resolution #1" in out and "first_response #1" in out
    assert "status pending, event p1" in out
    assert "not working time of berlin-office" in out


def test_explain_of_an_unknown_ticket_or_a_bad_instant_is_one_line(tmp_path: Path) -> None:
    policy, events = files(tmp_path)
    code, _, err = cli("--policy", str(policy), "--events", str(events), "--ticket", "nope")
    assert code == 1 and err.count("\n") == 1 and "'nope' is not in" in err
    code, _, err = cli(
        "--policy", str(policy), "--events", str(events), "--ticket", "T-8",
        "--at", "2026-03-09T00:00:00Z",
    )  # fmt: skip
    assert code == 1 and "as of 2026-03-09T00:00:00Z" in err  # created later
    code, _, err = cli(
        "--policy", str(policy), "--events", str(events), "--ticket", "T-7", "--at", "yesterday"
    )
    assert code == 2 and err.startswith("explain: error: --at 'yesterday'")
    code, _, err = cli(
        "--policy", str(policy), "--events", str(events), "--ticket", "T-7", "--timezone", "Mars"
    )
    assert code == 2 and err.startswith("explain: error: --timezone 'Mars'")


def test_explain_over_http_needs_the_token_and_redirects_with_the_flag() -> None:
    fake = view(http_token=TOKEN)
    fake.assigned["tickets"] = [0]
    server = serve(fake, FakeDirectory(4, {2: "http://w2:6066"}))
    try:
        assert request(server, "/tickets/T-7?explain=true")[0] == 401
        ticket = ticket_in(2)
        status_code, headers, _ = request(server, f"/tickets/{ticket}?explain=true", token=TOKEN)
        assert status_code == 307
        assert headers["Location"] == f"http://w2:6066/tickets/{ticket}?explain=true"
        status_code, _, body = request(server, "/tickets/T-7?explain=maybe", token=TOKEN)
        assert status_code == 400 and b"explain must be true or false" in body
    finally:
        server.stop()


def test_the_readme_example_is_what_explain_prints() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    command = "slaclock explain --policy examples/policy.yaml --events examples/events.jsonl"
    flags = "--ticket T-2001 --timezone Europe/Berlin"
    example = readme.split(f"$ {command} {flags}\n", 1)[1].split("```", 1)[0]
    code, out, _ = cli(
        "--policy",
        str(root / "examples" / "policy.yaml"),
        "--events",
        str(root / "examples" / "events.jsonl"),
        "--ticket",
        "T-2001",
        "--timezone",
        "Europe/Berlin",
    )
    assert code == 0
    assert [line.rstrip() for line in out.splitlines()] == example.splitlines()


class VersionedView(FakeView):
    """A worker view whose tickets ran under the policy versions of a replay."""

    book: PolicyBook | None = None

    @property
    def versions(self) -> PolicyBook:
        assert self.book is not None
        return self.book


def test_a_version_change_explains_the_same_over_http_and_the_cli(tmp_path: Path) -> None:
    doc = yaml.safe_load(POLICY_YAML)
    doc["tiers"]["enterprise"]["targets"]["resolution"]["high"] = "2h"
    doc["tiers"]["enterprise"]["calendar"] = "berlin-office"  # 08:00-16:00Z on a Monday
    version_2 = {"type": "policy.changed", "event_id": "pv2", "version": "2",
                 "occurred_at": "2026-03-02T10:45:00Z", "effective_at": "2026-03-02T12:00:00Z",
                 "policy": doc}  # fmt: skip
    lines = [
        created("2026-03-02T09:00:00Z", ticket="T-9", customer="acme", event_id="c9"),
        agent_reply("2026-03-02T09:30:00Z", ticket="T-9", event_id="a9"),
        version_2,
        agent_reply("2026-03-02T17:00:00Z", ticket="T-9", event_id="a10"),
    ]
    policy, events = files(tmp_path)
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    at = "2026-03-02T17:00:00Z"
    args = ("--policy", str(policy), "--events", str(events), "--ticket", "T-9", "--at", at)
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    resolution = next(c for c in json.loads(out)["cycles"] if c["metric"] == "resolution")
    version_cause = {"event_id": None, "policy_version": "2"}
    assert [(s["from"], s["cause"]) for s in resolution["segments"]] == [
        ("2026-03-02T09:00:00Z", {"event_id": "c9"}),
        ("2026-03-02T11:00:00Z", {"event_id": "c9"}),  # the new deadline cuts it
        ("2026-03-02T12:00:00Z", version_cause),
        ("2026-03-02T16:00:00Z", {"calendar": "berlin-office"}),  # version 2's calendar
    ]
    assert resolution["target_history"][-1]["cause"] == version_cause
    with events.open("rb") as source:
        replayer, _ = replay_to(make_policy(), source, parse_instant(at))
    fake = VersionedView(load_settings(http_host="127.0.0.1", http_port=0, http_token=TOKEN))
    fake.book = replayer.versions
    fake.snapshots["T-9"] = snapshot_at(events, "T-9", at, 0)
    server = serve(fake)
    try:
        status_code, _headers, body = request(server, "/tickets/T-9?explain=true", token=TOKEN)
    finally:
        server.stop()
    assert status_code == 200 and body == out.encode().rstrip(b"\n")
    code, text, _ = cli(*args)
    assert "policy version 2 took effect" in text and "event ?" not in text
