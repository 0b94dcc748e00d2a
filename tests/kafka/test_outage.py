"""A worker rides out broker outages; commands say clearly which broker they cannot reach.

The outage test runs its own broker (it SIGKILLs it; never the shared one) and compares
what a read_committed reader sees afterwards with `slaclock replay` of the same input.
The command-line tests run `slaclock` as a user would, against a port nobody listens on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from slaclock.client.librdkafka_log import LIBRDKAFKA_LOG
from slaclock.local_kafka import BrokerConfig, LocalKafka, free_port, render_server_properties
from slaclock.processors.broker import BrokerState
from slaclock.processors.live.records import Tick
from slaclock.processors.live.worker import Ticker
from tests.kafka.pipeline import ROOT, LivePipeline, assert_whole_output_equals_replay
from tests.kafka.test_live_pipeline import FINAL_CLOCK, keyed, workload

OUTAGE_S = 20.0  # how long the broker stays dead each time
OUTAGES = 3

CLI = [sys.executable, "-c", "from slaclock.cli import main; main()"]


# -- no broker: one line naming the address and the setting --------------------------------


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_every_command_says_in_one_line_which_broker_it_could_not_reach(
    tmp_path: Path,
) -> None:
    port = free_port()  # nobody listens there
    address = f"127.0.0.1:{port}"
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id":"e1","type":"ticket.created","ticket_id":"T1",'
        '"occurred_at":"2026-03-02T09:00:00Z","customer_id":"acme","priority":"high"}\n'
    )
    by_env = {"SLACLOCK_BOOTSTRAP_SERVERS": address}
    commands = {
        "worker": run_cli(["worker"], {**by_env, "SLACLOCK_HTTP_PORT": "0"}),
        "publish": run_cli(["publish", str(events)], by_env),
        "tail": run_cli(["tail"], by_env),
        "topics create": run_cli(["topics", "create"], by_env),
        "publish --bootstrap": run_cli(["publish", str(events), "--bootstrap", address]),
    }
    for name, process in commands.items():
        stdout, stderr = process.communicate(timeout=60)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert process.returncode == 1, (name, stderr)
        assert len(lines) == 1, (name, stderr)
        assert "Traceback" not in stderr and "%3|" not in stderr, (name, stderr)
        assert address in lines[0], (name, lines[0])
        setting = "--bootstrap" if name.endswith("--bootstrap") else "SLACLOCK_BOOTSTRAP_SERVERS"
        assert setting in lines[0], (name, lines[0])
        assert "published" not in stderr and stdout == "", (name, stdout, stderr)


def test_local_broker_does_not_create_topics_on_first_use(tmp_path: Path) -> None:
    config = BrokerConfig(data_dir=tmp_path, port=19092, controller_port=19093)
    assert "auto.create.topics.enable=false" in render_server_properties(config).splitlines()


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    state = BrokerState("kafka-1:9092", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="slaclock.processors.broker"):
        for component in ("tickets", "ledger", "ticker"):
            state.down(component, TimeoutError("no answer"))
        assert not state.is_up
        now[0] += 25.0
        state.up()
        state.up()
        now[0] += 5.0
        state.down("ticker", TimeoutError("no answer"))  # the broker flickers back
        state.up()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == [
        logging.WARNING,
        logging.WARNING,
        logging.INFO,
        logging.INFO,
    ], lines
    assert "kafka-1:9092 unreachable" in lines[0][1] and "after 25.0 s" in lines[1][1]
    assert state.is_up and state.outages == 2


def test_librdkafka_connection_chatter_goes_to_debug_and_real_errors_stay_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused"
    with caplog.at_level(logging.DEBUG, logger="librdkafka"):
        LIBRDKAFKA_LOG.log(3, "%s [%s] %s", "FAIL", "rdkafka#producer-1", refused)
        LIBRDKAFKA_LOG.log(3, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "SSL handshake failed")
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.ERROR]


# -- topics the worker needs --------------------------------------------------------------------


@pytest.mark.kafka
def test_worker_refuses_co_partitioned_topics_that_disagree_in_one_line(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    pipeline = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path, partitions=2)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    clock = pipeline.settings.topic_clock
    admin.delete_topics([clock])[clock].result(30)
    for _ in range(100):  # deletion completes in the background
        with contextlib.suppress(Exception):
            admin.create_topics([NewTopic(clock, num_partitions=1)])[clock].result(30)
            break
        time.sleep(0.2)

    def recreated() -> bool:  # the new topic's metadata has reached the broker's answers
        topic = admin.list_topics(clock, timeout=10).topics.get(clock)
        return topic is not None and topic.error is None and len(topic.partitions) == 1

    wait_for(recreated, f"{clock} recreated with one partition")
    env = {**pipeline.env("w1")}
    done = subprocess.run(
        [*CLI, "worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert "co-partitioned topics disagree" in lines[0]
    assert f"{clock} has 1" in lines[0] and f"{pipeline.settings.topic_events} has 2" in lines[0]


@pytest.mark.kafka
def test_worker_refuses_missing_topics_naming_them(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SLACLOCK_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SLACLOCK_APP_ID": f"{topic_prefix.rstrip('.')}-app",
        "SLACLOCK_TOPIC_EVENTS": f"{topic_prefix}nothing.here",
        "SLACLOCK_HTTP_PORT": "0",
    }
    done = subprocess.run(
        [*CLI, "worker"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{topic_prefix}nothing.here" in lines[0] and "slaclock topics create" in lines[0]


# -- the broker dies under a running worker ------------------------------------------------------


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker of this test alone: it is killed and restarted."""
    broker = LocalKafka.on_free_ports(tmp_path_factory.mktemp("outage-kafka"), die_with_parent=True)
    broker.up(timeout=120)
    try:
        yield broker
    finally:
        broker.down()


@contextlib.contextmanager
def ticking_through_outages(pipeline: LivePipeline, clock: int) -> Iterator[None]:
    """The test's clock ticks (as `LivePipeline.ticking`), going on when the broker is away."""
    stop = threading.Event()

    def run() -> None:
        producer = Producer(
            {"bootstrap.servers": pipeline.bootstrap, "linger.ms": 0, "log_level": 0}
        )
        while not stop.is_set():
            with contextlib.suppress(Exception):  # the broker is away: tick later
                pipeline.tick(clock, producer)
            stop.wait(0.5)

    thread = threading.Thread(target=run, name="test-ticker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except (urllib.error.URLError, OSError):  # not listening yet
        return 0, ""


def wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(1200)
def test_worker_rides_out_broker_kills_and_its_committed_output_equals_replay(
    own_broker: LocalKafka, topic_prefix: str, tmp_path: Path
) -> None:
    pipeline = LivePipeline(own_broker.bootstrap, topic_prefix, tmp_path, manual_clock=True)
    lines = workload(200, seed=71)
    pipeline.publish(keyed(lines))
    port = free_port()
    # small transactions: the input lasts long enough for every kill to land mid-stream
    pipeline.extra_env.update({"SLACLOCK_MAX_BATCH": "20", "SLACLOCK_HTTP_PORT": str(port)})
    ready = f"http://127.0.0.1:{port}/ready"
    metrics = f"http://127.0.0.1:{port}/metrics"
    rng = random.Random(7)
    mid_stream = 0
    with ticking_through_outages(pipeline, FINAL_CLOCK):
        worker = pipeline.start_worker()
        wait_for(lambda: http_get(ready)[0] == 200, "the worker is ready", timeout=120)
        for outage in range(OUTAGES):
            time.sleep(rng.uniform(1.0, 4.0))
            mid_stream += pipeline.unprocessed_input() > 0
            own_broker.kill()
            wait_for(lambda: http_get(ready)[0] == 503, "/ready says 503 in the outage")
            assert "slaclock_broker_up 0.0" in http_get(metrics)[1]
            time.sleep(OUTAGE_S)
            assert worker.process.poll() is None, worker.log_tail()
            own_broker.up(timeout=120)
            wait_for(
                lambda: http_get(ready)[0] == 200,
                f"ready again after outage {outage + 1}",
                timeout=180,
            )
            assert "slaclock_broker_up 1.0" in http_get(metrics)[1]
        pipeline.settle(FINAL_CLOCK, timeout=600)
    abandoned = sum(
        float(line.rsplit(" ", 1)[1])
        for line in http_get(metrics)[1].splitlines()
        if line.startswith("slaclock_transactional_calls_abandoned_total{")
    )
    assert worker.process.poll() is None, worker.log_tail()
    assert worker.stop() == 0, worker.log_tail()
    assert mid_stream >= 1, "no kill came while input was still unprocessed"
    outputs, _ = assert_whole_output_equals_replay(pipeline, FINAL_CLOCK)
    log = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in log, worker.log_tail(80)
    assert "|FAIL|" not in log, "librdkafka's connection lines go through Python logging"
    print(
        f"broker kills: {OUTAGES} x {OUTAGE_S:.0f} s (mid-stream {mid_stream}); "
        f"outputs expected {outputs.expected}, live {outputs.live}, missing "
        f"{len(outputs.missing)}, duplicated {len(outputs.duplicated)}; stuck transactional "
        f"calls abandoned {abandoned:.0f}"
    )


def ticks_readable(pipeline: LivePipeline) -> bool:
    consumer = Consumer({"bootstrap.servers": pipeline.bootstrap, "group.id": "probe"})
    try:
        for topic in (pipeline.settings.topic_events, pipeline.settings.topic_clock):
            consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5, cached=False)
        return True
    except KafkaException:
        return False
    finally:
        consumer.close()


def clock_ticks(pipeline: LivePipeline) -> list[Tick]:
    """Every tick written to the clock topic's partition 0 so far."""
    consumer = Consumer({"bootstrap.servers": pipeline.bootstrap, "group.id": "ticks-reader",
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.assign([TopicPartition(pipeline.settings.topic_clock, 0, OFFSET_BEGINNING)])
    ticks: list[Tick] = []
    try:
        while (message := consumer.poll(10)) is not None and message.error() is None:
            ticks.append(Tick.decode(message.value() or b""))
    finally:
        consumer.close()
    return ticks


@pytest.mark.kafka
def test_after_a_broker_outage_the_clock_waits_the_grace_for_what_publishers_held(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """During an outage publishers keep their events; they land after the broker's return.
    A tick at once would move the clock past them (they would be late, applied at the
    clock, unlike the replay), so the ticker's first tick after an outage comes `grace`
    seconds after it saw the broker back, and ticks before the outage are not delayed."""
    pipeline = LivePipeline(kafka_bootstrap, topic_prefix, tmp_path)
    settings = pipeline.settings.model_copy(update={"grace": 5.0})
    wait_for(lambda: ticks_readable(pipeline), "the new topics have leaders")
    wall = [1_800_000_000.0]
    broker = BrokerState(kafka_bootstrap)
    ticker = Ticker(settings, lambda: [0], lambda: wall[0], broker=broker)
    ticker.tick_once()  # in normal operation: at once
    broker.down("publisher", "connection refused")  # an outage seen by another component
    wall[0] += 10.0
    ticker.tick_once()  # the broker answers again: the first tick after it waits
    wall[0] += 4.9
    ticker.tick_once()
    wall[0] += 0.2  # grace has passed since the return
    ticker.tick_once()
    wall[0] += 1.0
    ticker.tick_once()
    ticker.producer.flush(30)
    ticker.offsets.close()
    assert [tick.now for tick in clock_ticks(pipeline)] == [
        1_800_000_000_000_000,
        1_800_000_015_100_000,
        1_800_000_016_100_000,
    ]
