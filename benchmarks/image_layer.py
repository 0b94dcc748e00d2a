"""The size of the worker image's own layer: the virtualenv its Dockerfile builds.

Without a Docker engine the image itself cannot be built here, so this builds what the
Dockerfile's build stage builds, the same way (`python -m venv`, `pip install
--no-compile -c constraints.txt .`, `compileall`), and reports its size on disk: the part
of the image that slaclock's packaging decides (the base image, python:3.11-slim, comes on
top and is the same before and after).

    python benchmarks/image_layer.py                  # this checkout
    python benchmarks/image_layer.py --rev 51e7392    # a past commit, built as its Dockerfile did
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size_mib(path: Path) -> float:
    return (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    )


def build(source: Path, venv: Path) -> None:
    dockerfile = (source / "Dockerfile").read_text()
    match = re.search(r"/opt/venv/bin/pip install ([^\\\n&]*)", dockerfile)
    assert match, "the Dockerfile pip-installs the package"
    args = match.group(1).split()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *args], cwd=source, check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "compileall", "-q", str(venv / "lib")], check=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git revision to measure instead of the checkout")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        source = ROOT
        if options.rev:
            source = Path(scratch) / "src"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(source), options.rev],
                check=True,
                capture_output=True,
            )
        try:
            venv = Path(scratch) / "venv"
            build(source, venv)
            packages = subprocess.run(
                [str(venv / "bin" / "pip"), "list", "--format=freeze"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            site = next((venv / "lib").glob("python3*/site-packages"))
            largest = sorted(
                ((size_mib(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True
            )[:8]
            print(f"revision: {options.rev or 'checkout'}")
            print(f"runtime virtualenv: {size_mib(venv):.1f} MiB, {len(packages)} distributions")
            print("largest: " + ", ".join(f"{name} {mib:.1f}" for mib, name in largest))
        finally:
            if options.rev:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(source)],
                    check=False,
                )


if __name__ == "__main__":
    main()
