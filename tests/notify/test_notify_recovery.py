"""A notifier restarted before it ever committed an offset delivers every record it finds.

The first process delivers to one target and keeps retrying the other, so it acknowledges
no record and commits no offset, while the `delivered` table's changelog already holds
keys: the second process restores that table, and every pending record must reach it.
"""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tests.notify.conftest import MakeReceiver, MakeRun
from tests.notify.harness import NotifyRun, ticket_output, wait_for
from tests.notify.test_notify_delivery import keys, routing, secrets_env

pytestmark = [pytest.mark.kafka]

TICKETS = 40
JUNK = 30_000  # changelog records to restore: a restore long enough to fetch during it
ALWAYS_503: list[tuple[int, dict[str, str]]] = [(503, {})] * 100_000


def committed_offsets(run: NotifyRun) -> dict[str, int]:
    """The group's committed offsets on the output topics (topic[partition] -> offset)."""
    admin = AdminClient({"bootstrap.servers": run.bootstrap})
    from confluent_kafka import ConsumerGroupTopicPartitions

    group = str(run.env["SLACLOCK_NOTIFY_APP_ID"])
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {
        f"{tp.topic}[{tp.partition}]": tp.offset
        for tp in future.result(15).topic_partitions
        if tp.offset >= 0 and tp.topic in run.topics
    }


def fill_changelog(run: NotifyRun, count: int) -> None:
    """`count` old keys in the `delivered` table's changelog, as a long-lived notifier has."""
    producer = Producer({"bootstrap.servers": run.bootstrap, "linger.ms": 20})
    topic = f"{run.env['SLACLOCK_NOTIFY_APP_ID']}-delivered-changelog"
    for n in range(count):
        key = json.dumps(f"old-{n}:hook").encode()
        producer.produce(topic, key=key, value=b'{"at": 1, "p": 0}', partition=n % 2)
        if n % 10_000 == 0:
            producer.flush(30)
    producer.flush(30)


def test_records_pending_when_killed_before_the_first_commit_are_delivered_after_restart(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook, pager = receiver("webhook"), receiver("pagerduty")
    chat = receiver("slack", script=list(ALWAYS_503))  # down until the restart
    run = notify_run(routing(hook, chat, pager), secrets_env(chat), partitions=2)
    breaches = [ticket_output("sla.breach", f"P{n:02d}") for n in range(TICKETS)]
    run.write(breaches)
    run.start()
    # Every trigger acknowledged (the changelog holds their keys); no record acked.
    wait_for(lambda: len(keys(pager)) == TICKETS, 60, "every trigger delivered")
    wait_for(lambda: len(chat.received()) >= TICKETS, 60, "a first attempt to chat each")
    assert committed_offsets(run) == {}
    run.kill()
    fill_changelog(run, JUNK)

    chat.script.clear()  # chat is back
    run.start()
    try:
        wait_for(lambda: len(keys(chat)) == TICKETS, 60, "every pending record delivered")
    except TimeoutError as error:
        raise AssertionError(
            f"{error}: chat has {len(keys(chat))} of {TICKETS}; status {run.status()}; "
            f"last log:\n{run.logs[-1].read_text(errors='replace')[-6000:]}"
        ) from None
    # The triggers acknowledged by the first process are not sent again.
    assert len(pager.accepted()) == TICKETS


def test_a_record_still_in_delivery_is_not_committed_past_when_a_later_one_is_acked(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    # One partition per topic: the breach at offset 0 waits for chat, the breaches after it
    # are for low priority (no route) and are acknowledged at once, out of order.
    hook, pager = receiver("webhook"), receiver("pagerduty")
    chat = receiver("slack", script=list(ALWAYS_503))
    run = notify_run(routing(hook, chat, pager), secrets_env(chat), partitions=1)
    run.write([ticket_output("sla.breach", "SLOW")])
    run.write([ticket_output("sla.breach", f"L{n}", priority="low") for n in range(5)])
    run.start()
    wait_for(lambda: len(chat.received()) >= 2, 60, "chat attempts")
    breaches = run.prefix + "sla.breaches[0]"
    # Offset commits happen every 0.5 s; give them time to go wrong.
    time.sleep(3)
    assert committed_offsets(run).get(breaches, 0) == 0
    run.kill()

    chat.script.clear()
    run.start()
    wait_for(lambda: len(keys(chat)) == 1, 60, "the pending breach delivered after restart")


def test_a_trigger_remembered_without_its_mark_does_not_hold_up_its_resolve(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    # A predecessor killed between the two changelog records of an acknowledged trigger
    # (its idempotency key, then its mark) left the key only.
    hook, chat, pager = receiver("webhook"), receiver("slack"), receiver("pagerduty")
    run = notify_run(
        routing(hook, chat, pager, "resolve_wait_seconds: 600"), secrets_env(chat), partitions=1
    )
    breach = ticket_output("sla.breach", "M1")
    topic = f"{run.env['SLACLOCK_NOTIFY_APP_ID']}-delivered-changelog"
    admin = AdminClient({"bootstrap.servers": run.bootstrap})
    run.start()  # creates the changelog topic
    wait_for(lambda: topic in admin.list_topics(timeout=10).topics, 60, "the changelog topic")
    run.kill()
    producer = Producer({"bootstrap.servers": run.bootstrap})
    value = json.dumps({"at": time.time_ns() // 1000, "p": 0}).encode()
    key = json.dumps(f"{breach['event_id']}:pager").encode()
    producer.produce(topic, key=key, value=value, partition=0)
    assert producer.flush(30) == 0
    run.write([breach, ticket_output("sla.completed", "M1")])
    run.start()
    wait_for(lambda: len(pager.accepted()) >= 1, 60, "the resolve, without waiting 600 s")
    assert [r.body["event_action"] for r in pager.accepted()] == ["resolve"]
