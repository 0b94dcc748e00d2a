"""The opt-in compiled build (setup.py): pure unless asked, never for an editable install,
and `slaclock --version` says which core runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slaclock.build_info import core_compiled
from slaclock.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _ext_modules(env: dict[str, str], *argv: str) -> str:
    """What setup.py's hook would compile, for these settings and command-line words."""
    probe = (
        "import sys, runpy, setuptools; setuptools.setup = lambda **kw: print(len(kw['ext_modules'])); "
        f"sys.argv = ['setup.py', *{list(argv)!r}]; runpy.run_path('setup.py')"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_the_wheel_is_pure_python_unless_mypyc_is_asked_for() -> None:
    assert _ext_modules({"MYPYC": ""}, "bdist_wheel") == "0"
    assert _ext_modules({"MYPYC": "0"}, "bdist_wheel") == "0"


@pytest.mark.parametrize("command", ["editable_wheel", "develop"])
def test_an_editable_install_stays_pure_even_with_mypyc_asked_for(command: str) -> None:
    assert _ext_modules({"MYPYC": "1"}, command) == "0"


def test_version_says_whether_the_core_is_compiled() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    expected = "compiled with mypyc" if core_compiled() else "pure Python"
    assert result.output.startswith("slaclock ") and f"(core: {expected})" in result.output


def test_the_editable_checkout_runs_the_pure_core() -> None:
    if os.environ.get("SLACLOCK_EXPECT_COMPILED") == "1":
        pytest.skip("this run tests the compiled wheel")
    assert not core_compiled()
