"""The user documentation stands on its own and cannot drift from the code: no references
to documents outside the repository, working links, every setting with its real default,
every metric the worker exports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo

import slaclock.cli  # noqa: F401 - every command's settings class, so all names are known
from slaclock.processors.live.http import InputLagCollector
from slaclock.processors.live.metrics import Metrics
from slaclock.processors.settings import (
    FILE_SUFFIX,
    OTHER_NAMES,
    TEST_NAMES,
    Settings,
    known_setting_names,
)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
OPERATIONS = ROOT / "docs" / "operations.md"
USER_DOCS = [README, *DOCS]
NONE = ("\u2013", "-")  # how a table says "no default"


# what a reader of the repository sees: the docs, and the docstrings and comments of the code
READABLE = [
    *USER_DOCS,
    *(
        path
        for folder in ("processors", "schemas", "slaclock", "tests", "benchmarks", "examples")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".yaml", ".md")
        and not path.is_relative_to(ROOT / "slaclock" / "processors")
        and not path.is_relative_to(ROOT / "slaclock" / "schemas")
        and path != Path(__file__)
    ),
]


@pytest.mark.parametrize("path", READABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_and_code_cite_no_document_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    cited = re.findall(r"\b(?:SPEC|DESIGN)\b(?:\s*(?:§|section)?\s*\d+)?", text)
    assert cited == [], f"{path.name} cites {cited}: say it in the project's own words"
    assert "../shared" not in text and "/work/shared" not in text


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: p.name)
def test_relative_links_point_to_files_that_exist(path: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_readme_links_every_document_and_keeps_the_two_commands() -> None:
    text = README.read_text()
    for doc in DOCS:
        assert f"docs/{doc.name}" in text, f"README does not link docs/{doc.name}"
    assert "make run" in text and "make test" in text


# -- settings ---------------------------------------------------------------------------------


def table_rows(text: str, first_header: str) -> dict[str, str]:
    """`| `NAME` | default | ... |` rows of the markdown tables whose first column is
    `first_header`, keyed by the name."""
    rows: dict[str, str] = {}
    in_table = False
    for line in text.splitlines():
        if line.startswith(f"| {first_header} |"):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        if in_table and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1] if len(cells) > 1 else ""
    return rows


def default_matches(field: FieldInfo, cell: str) -> bool:
    text = cell.strip("`")
    if field.default_factory is not None:
        return bool(text) and text[0] not in NONE  # described, e.g. "host name"
    default: Any = field.default
    if default is None:
        return text in NONE or "<" in text  # none, or derived: `http://<host name>:<port>`
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(text) == float(default)
        except ValueError:
            return False
    return text == str(default)


def test_every_setting_is_documented_with_its_real_default() -> None:
    rows = table_rows(OPERATIONS.read_text(), "variable")
    problems = []
    for name, field in Settings.model_fields.items():
        variable = f"SLACLOCK_{name.upper()}"
        if variable not in rows:
            problems.append(f"missing row: | `{variable}` | `{field.default}` | ... |")
        elif not default_matches(field, rows[variable]):
            problems.append(f"{variable}: docs say {rows[variable]}, the code {field.default!r}")
    stale = [v for v in rows if v.startswith("SLACLOCK_") and v not in known_setting_names()]
    problems += [f"documented but read by nothing: {v}" for v in stale]
    assert problems == [], "docs/operations.md, Configuration:\n" + "\n".join(problems)


def test_every_other_slaclock_name_is_mentioned_in_the_operations_guide() -> None:
    text = OPERATIONS.read_text()
    fields = {f"SLACLOCK_{name.upper()}" for name in Settings.model_fields}
    known = known_setting_names()
    twins = {name for name in known if name.endswith(FILE_SUFFIX) and name[:-5] in known}
    others = known - fields - twins - set(TEST_NAMES)
    assert set(OTHER_NAMES) <= others
    wildcards = re.findall(r"`(SLACLOCK_[A-Z0-9_]*_)\*`", text)  # e.g. `SLACLOCK_NOTIFY_*`
    missing = [
        name
        for name in sorted(others)
        if f"`{name}`" not in text and not any(name.startswith(w) for w in wildcards)
    ]
    assert missing == [], f"docs/operations.md does not mention {missing}"


# -- metrics ----------------------------------------------------------------------------------


def exported_metric_names() -> set[str]:
    registry = Metrics().registry
    names = {family.name for family in registry.collect()}
    names |= {family.name for family in InputLagCollector.describe(None)}  # type: ignore[arg-type]
    # prometheus_client strips `_total` from counter family names
    counters = {family.name for family in registry.collect() if family.type == "counter"}
    return {f"{n}_total" if n in counters else n for n in names}


def test_every_metric_the_worker_exports_is_documented() -> None:
    rows = table_rows(OPERATIONS.read_text(), "metric")
    documented = {name for name in rows if name.startswith("slaclock_")}
    exported = exported_metric_names()
    assert exported - documented == set(), "undocumented metrics"
    assert documented - exported == set(), "documented metrics the worker does not export"
