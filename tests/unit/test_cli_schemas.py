"""`slaclock schemas export` and `slaclock policy check`."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from slaclock.cli_schemas import policy_app, schemas_app
from slaclock.schemas.export import SCHEMA_FILES

ROOT = Path(__file__).resolve().parents[2]

# Mounted as in slaclock.cli, without depending on the other command areas.
app = typer.Typer()
app.add_typer(schemas_app, name="schemas")
app.add_typer(policy_app, name="policy")
runner = CliRunner()


def test_schemas_export_writes_every_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schemas", "export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(SCHEMA_FILES)
    for name in SCHEMA_FILES:
        assert name in result.stdout


def test_policy_check_summarises_a_valid_policy() -> None:
    result = runner.invoke(app, ["policy", "check", str(ROOT / "examples" / "policy.yaml")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "OK",
        "berlin-office",
        "Europe/Berlin",
        "America/New_York",
        "Tier enterprise",
        "calendar always",
        "first_response",
        "15m",
        "1h30m",
        "acme",
        "12000.00 EUR",
        "USD",
        "Credit terms",
        "2400.00 EUR (20%)",  # acme's cap: 20% of its fee
        "2 month(s) >= 0.95",  # its tier's earn-back
    ):
        assert expected in out
    assert result.stderr == ""


def test_policy_check_lists_every_problem_on_stderr_and_fails() -> None:
    path = ROOT / "examples" / "invalid-policy.yaml"
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1] == f"5 problems in {path}"
    problems = lines[:-1]
    assert len(problems) == 5
    assert all(line.startswith(f"{path}: ") for line in problems)
    assert f"{path}: tiers.standard.calendar: unknown calendar 'berlin'" in result.stderr


def test_policy_check_reports_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "check", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_policy_check_prints_markup_like_names_literally(tmp_path: Path) -> None:
    policy = (ROOT / "examples" / "policy.yaml").read_text(encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(policy.replace("  acme:", '  "[bold]acme":'), encoding="utf-8")
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "[bold]acme" in result.stdout


def test_policy_check_shows_each_group_with_its_targets_pauses_and_warnings() -> None:
    result = runner.invoke(app, ["policy", "check", str(ROOT / "examples" / "demo-policy.yaml")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "Group first-line: calendar always",
        "Group engineering: calendar always",
        "group_response",
        "group_resolution",
        "group_resolution pauses on pending, on_hold; warns at 0.75",
    ):
        assert expected in out


def test_policy_check_lists_every_problem_of_a_group(tmp_path: Path) -> None:
    groups = """
groups:
  tier2:
    calendar: paris-office
    targets: {group_response: {high: 1h}, resolution: {high: 2h}}
    pause_on: [solved]
    warnings: [1.5]
    credits: {}
"""
    path = tmp_path / "groups.yaml"
    path.write_text((ROOT / "examples" / "policy.yaml").read_text(encoding="utf-8") + groups)
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    problems = result.stderr.splitlines()
    assert problems[-1] == f"5 problems in {path}"
    where = sorted(line.split(": ")[1] for line in problems[:-1])
    assert where == [
        "groups.tier2.calendar",
        "groups.tier2.credits",
        "groups.tier2.pause_on.0",
        "groups.tier2.targets.resolution",
        "groups.tier2.warnings.0",
    ]
    assert "unknown calendar 'paris-office'" in result.stderr


def test_policy_check_refuses_an_empty_group_name(tmp_path: Path) -> None:
    # an assignment with an empty group is held by no group: such a group could never hold
    groups = '\ngroups:\n  "":\n    calendar: always\n    targets: {group_response: {high: 1h}}\n'
    path = tmp_path / "empty-group.yaml"
    path.write_text((ROOT / "examples" / "policy.yaml").read_text(encoding="utf-8") + groups)
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}: groups: a group name cannot be empty: an empty group holds no ticket",
        f"1 problem in {path}",
    ]
