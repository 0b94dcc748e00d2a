"""Which build of the core is running: compiled by mypyc (`MYPYC=1` wheels) or pure Python."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from slaclock.processors.engine import stage, ticket


def core_compiled() -> bool:
    """True when the engine modules are extension modules (a mypyc-built wheel)."""
    return all(not module.__file__.endswith(".py") for module in (ticket, stage) if module.__file__)


def describe() -> str:
    """`slaclock 0.1.0 (core: compiled with mypyc)` or `... (core: pure Python)`."""
    try:
        number = version("slaclock")
    except PackageNotFoundError:  # a source checkout on sys.path, not installed
        number = "unknown"
    core = "compiled with mypyc" if core_compiled() else "pure Python"
    return f"slaclock {number} (core: {core})"
