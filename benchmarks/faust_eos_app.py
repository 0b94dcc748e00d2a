"""Minimal faust-streaming app for the exactly-once-under-SIGKILL experiment.

Driven by `benchmarks/faust_eos_experiment.py`, which runs it as a worker subprocess:

    EOS_APP_ID=... EOS_BROKER=127.0.0.1:19192 EOS_GUARANTEE=exactly_once \\
        python benchmarks/faust_eos_app.py worker -l warn

For every record of the input topic the agent (a) increments a per-key count in a
Table (in-memory store, rebuilt from its changelog topic on every start) and (b) sends
one record to the output topic whose value carries the input partition/offset and the
new count, so that the experiment can tell lost, duplicated and state-divergent outputs
apart after the worker has been SIGKILLed repeatedly.

Environment:
    EOS_APP_ID       faust app id (also the consumer group and transactional-id prefix)
    EOS_BROKER       host:port of the Kafka broker
    EOS_GUARANTEE    "exactly_once" or "at_least_once"
    EOS_IN, EOS_OUT  topic names (default eos-in / eos-out)
    EOS_DATADIR      faust data dir (default: a directory next to this file's cwd)
    EOS_DELAY_MS     optional per-record sleep, to slow the worker down
"""

from __future__ import annotations

import asyncio
import json
import os

import faust

APP_ID = os.environ.get("EOS_APP_ID", "faust-eos")
BROKER = os.environ.get("EOS_BROKER", "127.0.0.1:19192")
GUARANTEE = os.environ.get("EOS_GUARANTEE", "exactly_once")
IN_TOPIC = os.environ.get("EOS_IN", "eos-in")
OUT_TOPIC = os.environ.get("EOS_OUT", "eos-out")
PARTITIONS = 4
DELAY = float(os.environ.get("EOS_DELAY_MS", "0")) / 1000.0

app = faust.App(
    APP_ID,
    broker=f"kafka://{BROKER}",
    processing_guarantee=GUARANTEE,
    store="memory://",
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    datadir=os.environ.get("EOS_DATADIR", f"{APP_ID}-data"),
    web_enabled=False,
    # A SIGKILLed member stays in the group until its session expires; every restart
    # waits for that, so keep it short (the broker's group.min.session.timeout.ms is 6 s).
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_rebalance_timeout=20.0,
)

source = app.topic(IN_TOPIC, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS)
sink = app.topic(OUT_TOPIC, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS)
counts = app.Table("counts", default=int, partitions=PARTITIONS)


_diagnosed = False


@app.agent(source)
async def process(stream: faust.StreamT) -> None:
    global _diagnosed
    async for event in stream.events():
        if not _diagnosed:
            # faust's TransactionManager.send() only routes a send through a transactional
            # producer when the *consumer's* metadata knows the destination topic's
            # partitions; None here means the output goes out on the plain producer.
            _diagnosed = True
            app.log.warning(
                "eos-diag: guarantee=%s in_transaction=%s consumer.key_partition(%s)=%r",
                GUARANTEE,
                app.in_transaction,
                OUT_TOPIC,
                app.consumer.key_partition(OUT_TOPIC, event.key),
            )
        key = event.key.decode()
        counts[key] += 1
        value = {
            "k": key,
            "p": event.message.partition,
            "o": event.message.offset,
            "n": counts[key],
        }
        await sink.send(key=event.key, value=json.dumps(value).encode())
        if DELAY:
            await asyncio.sleep(DELAY)


if __name__ == "__main__":
    app.main()
