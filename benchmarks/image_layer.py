"""The size of the worker image's own layer: the virtualenv its Dockerfile builds.

Without a Docker engine the image itself cannot be built here, so this builds what the
Dockerfile's build stage builds, the same way (`python -m venv`, `pip install
--no-compile -c constraints.txt .`, `compileall`), and reports its size on disk: the part
of the image that slaclock's packaging decides (the base image, python:3.11-slim, comes on
top and is the same before and after).

    python benchmarks/image_layer.py                  # this checkout
    python benchmarks/image_layer.py --extras reports # the image with report charts
    python benchmarks/image_layer.py --rev 51e7392    # a past commit, built as its Dockerfile did
"""

from __future__ import annotations

import argparse
import os
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


def build(source: Path, venv: Path, extras: str) -> None:
    """Run the build stage's RUN line (the one that makes /opt/venv) with `venv` for
    /opt/venv, as the image's shell would, EXTRAS set as by --build-arg."""
    dockerfile = re.sub(r"\\\n\s*", " ", (source / "Dockerfile").read_text())
    (run,) = [
        line for line in dockerfile.splitlines() if line.startswith("RUN python -m venv /opt/venv")
    ]
    command = run.removeprefix("RUN ").replace("/opt/venv", str(venv))
    command = command.replace("python -m venv", f"{sys.executable} -m venv", 1)
    subprocess.run(
        ["sh", "-c", command], cwd=source, env={**os.environ, "EXTRAS": extras}, check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git revision to measure instead of the checkout")
    parser.add_argument("--extras", default="", help="as docker build --build-arg EXTRAS=...")
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
            build(source, venv, options.extras)
            # what the image runs must import without pip, setuptools (or matplotlib)
            smoke = (
                "import slaclock.cli, slaclock.processors.live.worker, "
                "slaclock.processors.notify.app, slaclock.client.publisher"
            )
            subprocess.run([str(venv / "bin" / "python"), "-c", smoke], check=True)
            subprocess.run(
                [str(venv / "bin" / "slaclock"), "--help"], check=True, capture_output=True
            )
            site = next((venv / "lib").glob("python3*/site-packages"))
            packages = list(site.glob("*.dist-info"))
            largest = sorted(
                ((size_mib(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True
            )[:8]
            print(f"revision: {options.rev or 'checkout'}, EXTRAS={options.extras!r}")
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
