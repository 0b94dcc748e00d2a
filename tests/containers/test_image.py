"""The Dockerfile, built for real: each variant builds, runs as uid 10001, keeps its
health check, and carries exactly the dependencies its extras ask for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.containers.conftest import Images
from tests.containers.engine import VARIANTS, Podman

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def run_in(podman: Podman, image: str, *command: str) -> str:
    return podman.run(
        "run", "--rm", "--network", "none", "--entrypoint", command[0], image, *command[1:]
    ).strip()


def test_every_variant_builds_and_its_size_is_recorded(images: Images) -> None:
    assert set(images.built) == set(VARIANTS)
    for name, built in images.built.items():
        assert built.size > images.base_size, f"{name}: smaller than its base?"
        own = [layer for layer in built.layers if layer["size"] > 0]
        assert any("/opt/venv" in layer["created_by"] for layer in own), built.layers
    # the reports extra (matplotlib, numpy, pillow, fonttools) is the larger image
    assert images.built["reports"].size > images.built["default"].size + 50 * 2**20


def test_image_runs_as_uid_10001_with_the_worker_healthcheck(
    podman: Podman, images: Images
) -> None:
    tag = images.built["default"].tag
    assert run_in(podman, tag, "id", "-u") == "10001"
    assert run_in(podman, tag, "id", "-g") == "10001"
    health = podman.run("image", "inspect", "--format", "{{json .HealthCheck}}", tag)
    # An image built in the OCI format (podman's default) silently drops HEALTHCHECK.
    assert '"slaclock","worker","--health"' in health.replace(" ", ""), health
    # The state directory is the volume and the only place the user may write.
    assert run_in(podman, tag, "stat", "-c", "%u %a", "/var/lib/slaclock") == "10001 755"


def test_the_default_image_leaves_out_pip_and_the_report_charts(
    podman: Podman, images: Images
) -> None:
    default, reports = images.built["default"].tag, images.built["reports"].tag
    probe = (
        "import importlib.util as u; "
        "print(*[m for m in ('matplotlib', 'pip', 'confluent_kafka', 'rocksdict') if u.find_spec(m)])"
    )
    assert run_in(podman, default, "python", "-c", probe) == "confluent_kafka rocksdict"
    assert run_in(podman, reports, "python", "-c", probe) == "matplotlib confluent_kafka rocksdict"
    assert run_in(podman, default, "slaclock", "--help").startswith("Usage")


def test_the_compiled_image_runs_the_mypyc_core_and_replays_the_example_byte_for_byte(
    podman: Podman, images: Images
) -> None:
    default, compiled = images.built["default"].tag, images.built["compiled"].tag
    assert run_in(podman, default, "slaclock", "--version").endswith("(core: pure Python)")
    assert run_in(podman, compiled, "slaclock", "--version").endswith("(core: compiled with mypyc)")
    examples = f"{ROOT / 'examples'}:/examples:ro"
    replay = ["replay", "--policy", "/examples/policy.yaml", "--events", "/examples/events.jsonl"]
    outputs = {
        tag: podman.run(
            "run", "--rm", "--network", "none", "-v", examples, "--entrypoint", "slaclock",
            tag, *replay,
        )
        for tag in (default, compiled)
    }  # fmt: skip
    assert outputs[default].count("sla.") > 10
    assert outputs[compiled] == outputs[default]
