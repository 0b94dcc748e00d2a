"""docker-compose.yml, run unchanged through `docker compose` against Podman: the broker,
the topics, two workers; the example events published from the host come out exactly as
`slaclock replay` says, through a killed worker, its restart, a clean restart that reuses
its store from its volume and a hung worker; plus the hardening the file promises.

The tests run in file order on one stack (the `stack` fixture), each one continuing from
where the one before left it, as an operator's session would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import datetime

import orjson
import pytest

from slaclock.processors.engine.instants import US_PER_SECOND, format_us
from slaclock.processors.live.http import partition_for
from tests.containers import kafka_io
from tests.containers.conftest import PROJECT, Stack
from tests.containers.engine import Podman, listening_ports, wait_for
from tests.kafka.pipeline import ROOT, compare, replay_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

POLICY = ROOT / "examples" / "policy.yaml"
WORKER_UID = 10001


def now_us() -> int:
    return int(time.time() * US_PER_SECOND)


def assert_outputs_equal_replay(stack: Stack, timeout: float = 180) -> int:
    """The committed outputs and dead letters, once as many as expected have arrived, equal
    `slaclock replay --until now` of everything published: nothing missing, nothing twice."""
    expected = replay_cli(POLICY, stack.published, now_us(), stack.workdir)

    def arrived() -> tuple[list, list] | None:
        outputs = kafka_io.committed_outputs(stack.bootstrap)
        dead = kafka_io.committed_dead_letters(stack.bootstrap)
        enough = len(outputs) >= len(expected.outputs) and len(dead) >= len(expected.dead_letters)
        return (outputs, dead) if enough else None

    wait_for("the replay's count of committed outputs", arrived, timeout, 2)
    time.sleep(3)  # anything extra would come now: compare what is there after that
    outputs = kafka_io.committed_outputs(stack.bootstrap)
    dead = kafka_io.committed_dead_letters(stack.bootstrap)
    outputs_seen, dead_seen = (
        compare(outputs, expected.outputs),
        compare(dead, expected.dead_letters),
    )
    assert outputs_seen.equal and dead_seen.equal, (
        outputs_seen.describe("outputs") + "\n" + dead_seen.describe("dead letters")
    )
    return len(outputs)


def tickets_now(count: int, tag: str) -> list[tuple[bytes | None, bytes]]:
    """`count` tickets created, answered and closed at the wall time now, plus one record
    that is not JSON: their clocks are live, so these are in time order for the workers."""
    at = format_us(now_us())
    lines = []
    for i in range(count):
        ticket = f"C-{tag}-{i}"
        base = {"ticket_id": ticket, "occurred_at": at}
        lines += [
            {
                **base,
                "event_id": f"{ticket}-c",
                "type": "ticket.created",
                "customer_id": "acme",
                "priority": "high",
            },
            {**base, "event_id": f"{ticket}-r", "type": "ticket.agent_replied", "public": True},
            {
                **base,
                "event_id": f"{ticket}-x",
                "type": "ticket.status_changed",
                "status": "closed",
            },
        ]
    return kafka_io.keyed(
        [orjson.dumps(line) for line in lines] + [b'{"ticket_id": "C-' + tag.encode()]
    )


def instant(stamp: str) -> datetime:
    """A container state's time stamp (RFC 3339, up to nanoseconds) to microseconds."""
    head, _, tail = stamp.partition(".")
    digits = re.match(r"\d*", tail)
    fraction = (digits.group() if digits else "")[:6].ljust(6, "0")
    zone = tail[len(digits.group()) if digits else 0 :] or "Z"
    return datetime.fromisoformat(f"{head}.{fraction}{zone.replace('Z', '+00:00')}")


def proc_status(stack: Stack, container: str) -> dict[str, str]:
    text = stack.compose.exec(container, "cat", "/proc/1/status").stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# -- the stack comes up ---------------------------------------------------------------------


def test_broker_turns_healthy_before_the_topics_are_created_and_workers_start(
    stack: Stack,
) -> None:
    (kafka,) = stack.compose.containers("kafka")
    assert stack.ticker.statuses(kafka)[:2] == ["starting", "healthy"]
    (topics,) = stack.compose.containers("topics")
    state = stack.compose.inspect(topics)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    partitions = kafka_io.topic_partitions(stack.bootstrap)
    # SLACLOCK_PARTITIONS=6 in the compose file: every slaclock topic has six, but for the
    # policy versions' history, which is one ordered partition whatever the setting
    slaclock_topics = {t: n for t, n in partitions.items() if t.startswith(("sla", "tickets"))}
    assert slaclock_topics.pop("sla.policies") == 1, partitions
    assert len(slaclock_topics) >= 10 and set(slaclock_topics.values()) == {6}, partitions
    # depends_on held the workers back until the topics container had exited 0
    for worker in stack.workers():
        started = stack.compose.inspect(worker)["State"]["StartedAt"]
        assert instant(started) >= instant(state["FinishedAt"]), (worker, started, state)


def test_two_workers_share_the_six_partitions_and_turn_healthy(stack: Stack) -> None:
    workers = stack.workers()
    assert len(workers) == 2
    owned = stack.wait_ready(workers)
    assert sorted(len(p) for p in owned.values()) == [3, 3], owned
    for worker in workers:
        wait_for(
            f"{worker} healthy", lambda w=worker: stack.ticker.check_now(w) == "healthy", 90, 3
        )
        assert stack.ticker.statuses(worker)[:2] == ["starting", "healthy"]


def test_example_events_published_from_the_host_come_out_as_replay_says(stack: Stack) -> None:
    # published before the workers started: they began on a backlog (the fixture)
    count = assert_outputs_equal_replay(stack)
    assert count >= 16  # the README's outputs of examples/events.jsonl, and statements since


# -- failures -------------------------------------------------------------------------------


def test_killed_worker_partitions_move_to_the_other_and_outputs_stay_exact(stack: Stack) -> None:
    first, second = stack.workers()
    stack.compose.docker("kill", first)  # SIGKILL: no clean stop, no checkpoint
    assert stack.compose.inspect(first)["State"]["ExitCode"] == 137
    # its static membership expires after the 10 s session timeout, then it moves
    wait_for(
        f"{second} to own every partition",
        lambda: stack.tickets_partitions(second) == list(range(6)),
        timeout=120,
    )
    before = len(kafka_io.committed_outputs(stack.bootstrap))
    stack.publish(tickets_now(12, "kill"))
    assert assert_outputs_equal_replay(stack) > before


def test_restarted_worker_takes_partitions_back_and_a_clean_restart_reuses_its_store(
    stack: Stack,
) -> None:
    first, second = stack.workers()
    stack.compose.docker("start", first)
    owned = stack.wait_ready([first, second])
    mine = owned[first]
    assert len(mine) == 3, owned
    # after the kill there was no checkpoint: every task was restored from its changelog
    assert "reuses its local store" not in stack.compose.logs(first)
    stack.compose.docker("restart", "--time", "30", first)  # SIGTERM: a clean stop
    reused = wait_for(
        f"{first} to reuse its stores",
        lambda: re.findall(
            r"tickets: task (\d+) reuses its local store", stack.compose.logs(first)
        ),
        timeout=120,
    )
    assert sorted(int(p) for p in reused) == mine  # static membership: the same tasks again
    assert stack.wait_ready([first, second])[first] == mine
    stack.publish(tickets_now(12, "restart"))
    assert_outputs_equal_replay(stack)


def test_hung_worker_turns_unhealthy_and_healthy_again_when_it_resumes(
    stack: Stack, podman: Podman
) -> None:
    first, second = stack.workers()
    pid = int(podman.inspect(first)["State"]["Pid"])
    os.kill(pid, signal.SIGSTOP)  # from the host: a worker that hangs
    try:
        # its health file goes stale after 30 s; three failed checks in a row: unhealthy
        wait_for(f"{first} unhealthy", lambda: stack.ticker.check_now(first) == "unhealthy", 120, 3)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(f"{first} healthy again", lambda: stack.ticker.check_now(first) == "healthy", 120, 3)
    history = stack.ticker.statuses(first)
    assert history[-2:] == ["unhealthy", "healthy"], history
    stack.wait_ready([first, second])
    stack.publish(tickets_now(6, "hang"))
    assert_outputs_equal_replay(stack)


# -- hardening -------------------------------------------------------------------------------


def test_policy_is_mounted_read_only_and_so_is_the_root_file_system(stack: Stack) -> None:
    worker = stack.workers()[0]
    shown = stack.compose.exec(worker, "cat", "/etc/slaclock/policy.yaml").stdout
    assert shown == POLICY.read_text()
    mounts = {
        fields[4]: fields[5].split(",")
        for fields in (
            line.split()
            for line in stack.compose.exec(worker, "cat", "/proc/1/mountinfo").stdout.splitlines()
        )
    }
    assert "ro" in mounts["/"] and "ro" in mounts["/etc/slaclock/policy.yaml"], mounts
    # even root in the container, who owns those files, cannot write them
    for path in ("/etc/slaclock/policy.yaml", "/opt/venv/probe", "/etc/probe"):
        done = stack.compose.exec(worker, "sh", "-c", f"echo x >> {path}", user="0", check=False)
        assert done.returncode != 0 and "Read-only file system" in done.stderr, (path, done)
    # the state volume and /tmp are where the worker may write
    assert "ro" not in mounts["/var/lib/slaclock"] and "ro" not in mounts["/tmp"], mounts
    for path in ("/var/lib/slaclock/probe", "/tmp/probe"):
        stack.compose.exec(worker, "sh", "-c", f"echo x > {path} && rm {path}")


def test_http_token_is_read_from_the_secret_file_and_guards_the_data_endpoints(
    stack: Stack,
) -> None:
    first, second = stack.workers()
    for worker in (first, second):
        assert stack.compose.exec(worker, "cat", "/run/secrets/http-token").stdout.strip() == (
            stack.token
        )
        # never an environment value: not in the container's config, not in the process
        assert stack.token not in " ".join(stack.compose.inspect(worker)["Config"]["Env"])
        environ = stack.compose.exec(worker, "cat", "/proc/1/environ").stdout
        assert stack.token not in environ
        assert "SLACLOCK_HTTP_TOKEN_FILE=/run/secrets/http-token" in environ
    owner = next(
        w
        for w in (first, second)
        if partition_for("T-2001", 6) in (stack.tickets_partitions(w) or [])
    )
    assert stack.http(owner, "/tickets/T-2001")[0] == 401
    assert stack.http(owner, "/tickets/T-2001", token="0" * 64)[0] == 401
    status, body = stack.http(owner, "/tickets/T-2001", token=stack.token)
    assert status == 200 and body["ticket_id"] == "T-2001", body


def test_containers_run_as_non_root_without_capabilities(stack: Stack) -> None:
    (kafka,) = stack.compose.containers("kafka")
    for container in [*stack.workers(), kafka]:
        status = proc_status(stack, container)
        uids = {int(u) for u in status["Uid"].split()}
        assert 0 not in uids, (container, status["Uid"])
        if container != kafka:
            assert uids == {WORKER_UID}
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, status
        assert status["NoNewPrivs"].strip() == "1"


def test_nothing_listens_beyond_what_the_compose_file_publishes(
    stack: Stack, podman: Podman
) -> None:
    (kafka,) = stack.compose.containers("kafka")
    workers = stack.workers()
    published: dict[str, set[str]] = {}
    for container in [kafka, *workers]:
        ports = stack.compose.inspect(container)["NetworkSettings"]["Ports"] or {}
        published[container] = {
            f"{b['HostIp']}:{b['HostPort']}->{port}"
            for port, bindings in ports.items()
            for b in bindings or []
        }
    assert published[kafka] == {"127.0.0.1:29092->29092/tcp"}, published
    for worker in workers:
        (only,) = published[worker]
        assert re.fullmatch(r"127\.0\.0\.1:\d+->6066/tcp", only), published
    # on the host: the sockets Podman holds for these containers, loopback only
    conmons = {str(podman.inspect(c)["State"]["ConmonPid"]) for c in published}
    held = set()
    for line in subprocess.run(
        ["ss", "-ltnpH"], capture_output=True, text=True
    ).stdout.splitlines():
        if any(f"pid={pid}," in line for pid in conmons):
            held.add(line.split()[3])
    assert held == {p.split("->")[0] for ports in published.values() for p in ports}, held
    # inside: a worker serves HTTP only; the broker its three listeners
    for container, expected in [(kafka, {9092, 9093, 29092}), *[(w, {6066}) for w in workers]]:
        tables = stack.compose.exec(container, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
        assert listening_ports(iter(tables.splitlines())) == expected, container


# -- last: tear down ----------------------------------------------------------------------------


def test_down_removes_every_container_network_and_volume_the_stack_created(
    stack: Stack, podman: Podman
) -> None:
    containers = stack.compose.containers()
    volumes = {
        mount["Name"]
        for c in containers
        for mount in stack.compose.inspect(c)["Mounts"]
        if mount["Type"] == "volume"
    }
    # the broker's named volume, one per worker, one for the topics container (the image's VOLUME)
    assert f"{PROJECT}_kafka-data" in volumes and len(volumes) >= 3, volumes
    stack.compose.run("down", "--volumes", "--remove-orphans", "--timeout", "30")
    assert stack.compose.containers() == []
    assert volumes.isdisjoint(podman.run("volume", "ls", "--format", "{{.Name}}").split())
    networks = podman.run("network", "ls", "--format", "{{.Name}}").split()
    assert not [n for n in networks if n.startswith(PROJECT)], networks
