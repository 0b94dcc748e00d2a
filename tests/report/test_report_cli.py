"""`slaclock report` and `generate` from the command line: files written, bad input refused."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.report.workload import POLICY_YAML, known_events, replay_outputs, write_jsonl


def slaclock(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from slaclock.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def outputs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "outputs.jsonl"
    write_jsonl(path, replay_outputs(known_events()))
    return path


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_report_writes_html_csv_json_and_breaches_csv(outputs_file: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    done = slaclock(
        "report",
        "--outputs",
        str(outputs_file),
        "--period",
        "2026-10",
        "--customer",
        "acme",
        "--policy",
        str(policy),
        "--out",
        str(tmp_path / "r"),
    )
    assert done.returncode == 0, done.stderr
    document = orjson.loads((tmp_path / "r.json").read_bytes())
    assert [s["customer_id"] for s in document["sections"]] == ["acme"]
    assert document["sections"][0]["min_compliance"] == "0.9"
    html = (tmp_path / "r.html").read_text()
    assert "<script" not in html
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)) > 100  # inline SVGs never share an id
    for target in set(re.findall(r'(?:url\(|href=")#([^)"]+)', html)):
        assert target in ids, target
    assert not re.search(
        r"(src|href)\s*=\s*[\"']?(https?:)?//", html
    )  # nothing fetched at view time
    breaches = (tmp_path / "r-breaches.csv").read_text().splitlines()
    assert len(breaches) == 1 + len(document["sections"][0]["breaches"])


def test_outputs_file_that_is_not_jsonl_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "sla.breach"}\nthis is not json\n')
    done = slaclock("report", "--outputs", str(bad), "--period", "2026-10")
    assert_one_line_error(done, "line 2", "not JSON")


def test_input_events_instead_of_outputs_are_refused(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, known_events()[:3])
    done = slaclock("report", "--outputs", str(events), "--period", "2026-10")
    assert_one_line_error(done, "line 1", "slaclock replay --out")


def test_an_outputs_file_without_outputs_says_how_to_produce_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = slaclock("report", "--outputs", str(empty))
    assert_one_line_error(
        done, "holds no output events", "slaclock replay --policy", "--out", "--from-topics"
    )


def test_period_without_data_is_refused(outputs_file: Path) -> None:
    done = slaclock("report", "--outputs", str(outputs_file), "--period", "2025-01")
    assert_one_line_error(done, "no outputs in 2025-01", "the outputs cover")


def test_unknown_customer_is_refused(outputs_file: Path) -> None:
    done = slaclock(
        "report", "--outputs", str(outputs_file), "--period", "2026-10", "--customer", "nobody"
    )
    assert_one_line_error(done, "--customer 'nobody'", "acme")


def test_malformed_period_is_refused(outputs_file: Path) -> None:
    done = slaclock("report", "--outputs", str(outputs_file), "--period", "October")
    assert_one_line_error(done, "--period 'October'", "YYYY-MM")


def test_generate_is_seeded_and_spreads_tickets_over_the_period(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    runs = []
    for name in ("one", "two"):
        done = slaclock(
            "generate",
            "--policy",
            str(policy),
            "--tickets",
            "50",
            "--period",
            "2026-11",
            "--seed",
            "3",
            "--out",
            str(tmp_path / f"{name}.jsonl"),
        )
        assert done.returncode == 0, done.stderr
        runs.append((tmp_path / f"{name}.jsonl").read_bytes())
    assert runs[0] == runs[1]
    events = [orjson.loads(line) for line in runs[0].splitlines()]
    created = [e for e in events if e["type"] == "ticket.created"]
    assert len(created) == 50
    assert {e["customer_id"] for e in created} <= {"acme", "beta", "walk-in"}
    assert all(e["occurred_at"].startswith("2026-11") for e in created)


def test_whatif_with_a_refused_policy_or_no_outcomes_says_so(tmp_path: Path) -> None:
    good, bad = tmp_path / "a.yaml", tmp_path / "b.yaml"
    good.write_text(POLICY_YAML)
    bad.write_text(POLICY_YAML.replace("calendar: always", "calendar: nowhere", 1))
    events = tmp_path / "events.jsonl"
    write_jsonl(events, known_events())
    done = slaclock("whatif", "--events", str(events), "--policy", str(good), "--policy", str(bad))
    assert_one_line_error(done, f"--policy {bad}: refused")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"not": "an event"}\n')
    done = slaclock("whatif", "--events", str(empty), "--policy", str(good), "--policy", str(good))
    assert_one_line_error(done, "no SLA outcome under either policy")
