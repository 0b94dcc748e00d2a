"""The package layers, checked on the import statements of every module.

One import name, `slaclock`; from the bottom up:

- `slaclock.schemas` (the wire and policy models) imports nothing else of slaclock;
- `slaclock.client` (the SDK: publisher, subscriber) imports the schemas only;
- `slaclock.processors.engine` (the pure core) imports the schemas only, and no Kafka,
  HTTP or stream-processing library;
- `slaclock.processors` (the runtime: settings, broker, topics, live, notify, report...)
  imports the schemas, the client and itself, never the commands above it;
- the commands and the demo (`slaclock.*` modules) may import everything.

Nothing imports a top-level `processors` or `schemas`: the folders of those names are
installed as `slaclock.processors` and `slaclock.schemas`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = {
    "slaclock": "slaclock",
    "processors": "slaclock.processors",
    "schemas": "slaclock.schemas",
}
IO_LIBRARIES = {
    "confluent_kafka",
    "aiokafka",
    "faust",
    "aiohttp",
    "rocksdict",
    "socket",
    "requests",
}


def modules() -> dict[str, Path]:
    """Every source module by its import name (the symlinks inside slaclock/ are skipped)."""
    found: dict[str, Path] = {}
    for folder, package in SOURCE_FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder)
            if relative.parts[0] in ("processors", "schemas") and folder == "slaclock":
                continue
            parts = [package, *relative.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def allowed(module: str, target: str) -> bool:
    """Whether `module` may import the slaclock module `target`."""
    if module.startswith("slaclock.schemas"):
        return target.startswith("slaclock.schemas")
    if module.startswith("slaclock.client"):
        return target.startswith(("slaclock.client", "slaclock.schemas"))
    if module.startswith("slaclock.processors.engine"):
        return target.startswith(("slaclock.processors.engine", "slaclock.schemas"))
    if module.startswith("slaclock.processors"):
        return target.startswith(("slaclock.processors", "slaclock.schemas", "slaclock.client"))
    return True


MODULES = modules()


def test_the_layer_rules_see_every_folder() -> None:
    assert "slaclock.schemas.events" in MODULES
    assert "slaclock.client.publisher" in MODULES
    assert "slaclock.processors.engine.stage" in MODULES
    assert "slaclock.processors.live.worker" in MODULES
    assert "slaclock.cli" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_from_its_layer_and_below(module: str) -> None:
    wrong = sorted(
        target
        for target in imported_names(MODULES[module])
        if target.split(".")[0] == "slaclock" and not allowed(module, target)
    )
    assert not wrong, f"{module} imports {wrong}"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if m.startswith("slaclock.processors.engine"))
)
def test_the_pure_core_does_no_io(module: str) -> None:
    libraries = {name.split(".")[0] for name in imported_names(MODULES[module])}
    assert not libraries & IO_LIBRARIES, f"{module} imports {sorted(libraries & IO_LIBRARIES)}"


def test_nothing_imports_top_level_processors_or_schemas() -> None:
    python_files = [
        *MODULES.values(),
        *sorted((ROOT / "tests").rglob("*.py")),
        *sorted((ROOT / "benchmarks").rglob("*.py")),
    ]
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in python_files
        for name in imported_names(path)
        if name.split(".")[0] in ("processors", "schemas")
    ]
    assert not wrong
