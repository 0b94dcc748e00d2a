"""`slaclock notify` end to end: real broker, real HTTP receivers of the three kinds."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from tests.notify.conftest import MakeReceiver, MakeRun
from tests.notify.harness import credit_output, ticket_output, wait_for
from tests.notify.receivers import Receiver

pytestmark = [pytest.mark.kafka]

SECRET = "s3cret-signing-key"
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"


def routing(hook: Receiver, chat: Receiver, pager: Receiver, delivery: str = "") -> str:
    return (
        "targets:\n"
        f"  hook: {{kind: webhook, url: '{hook.url}', secret_env: T_HOOK_SECRET}}\n"
        "  chat: {kind: slack, url_env: T_SLACK_URL}\n"
        f"  pager: {{kind: pagerduty, routing_key_env: T_PD_KEY, url: '{pager.url}'}}\n"
        "routes:\n"
        "  - {match: {type: sla.breach, priority: urgent}, targets: [pager, chat]}\n"
        "  - {match: {type: sla.completed}, targets: [pager]}\n"
        "  - {match: {type: sla.warning, threshold_at_least: 0.75}, targets: [hook]}\n"
        "  - {match: {type: sla.credit, customer: acme}, targets: [hook]}\n"
        "delivery: {initial_backoff_seconds: 0.2, max_backoff_seconds: 1"
        + (", " + delivery if delivery else "")
        + "}\n"
    )


def secrets_env(chat: Receiver) -> dict[str, str]:
    return {"T_HOOK_SECRET": SECRET, "T_SLACK_URL": chat.url, "T_PD_KEY": ROUTING_KEY}


def keys(receiver: Receiver) -> set[str]:
    return {r.headers["Idempotency-Key"] for r in receiver.accepted()}


def verify(secret: str, header: str, body: bytes) -> bool:
    """The receiver-side check documented in docs/notifications.md."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


def test_routed_outputs_reach_their_targets_and_nothing_else_does(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook, chat, pager = receiver("webhook"), receiver("slack"), receiver("pagerduty")
    run = notify_run(routing(hook, chat, pager), secrets_env(chat), partitions=1)
    routed: list[dict[str, Any]] = [
        ticket_output("sla.breach", "T1"),
        ticket_output("sla.warning", "T4"),
        ticket_output("sla.completed", "T1"),
        credit_output("acme"),
    ]
    unrouted = [
        ticket_output("sla.breach", "T2", priority="low"),
        ticket_output("sla.warning", "T5", threshold=0.5),
        ticket_output("sla.completed", "T3", outcome="met", elapsed_seconds=60),  # no resolve
        credit_output("globex"),
    ]
    run.write(routed[:2] + unrouted[:2])
    run.write_raw("sla.warnings", b"not an output")
    run.start()
    run.write(routed[2:] + unrouted[2:])
    wait_for(lambda: len(pager.accepted()) >= 2 and len(hook.accepted()) >= 2, 60, "deliveries")
    wait_for(lambda: len(chat.accepted()) >= 1, 30, "slack delivery")

    assert keys(pager) == {
        "sla.breach:T1:first_response:1::pager",
        "sla.completed:T1:first_response:1::pager",
    }
    assert keys(chat) == {"sla.breach:T1:first_response:1::chat"}
    assert keys(hook) == {"sla.warning:T4:first_response:1:0.75:hook", "credit:acme:2026-11:hook"}
    trigger, resolve = sorted(pager.accepted(), key=lambda r: r.body["event_action"] != "trigger")
    assert trigger.body["event_action"] == "trigger"
    assert trigger.body["dedup_key"] == resolve.body["dedup_key"] == "T1/first_response/1"
    assert trigger.body["payload"]["severity"] == "critical"
    assert resolve.body["event_action"] == "resolve"
    assert "T1" in chat.accepted()[0].body["text"]
    for request in hook.accepted():
        body = _canonical(request.body)
        assert verify(SECRET, request.headers["X-Slaclock-Signature"], body)
    # A receiver holds a request before its answer reaches the notifier, which only then
    # counts the delivery: wait for the count rather than read it once.
    wait_for(
        lambda: ((run.status() or {}).get("targets") or {}).get("pager", {}).get("delivered") == 2,
        30,
        "the pager's deliveries counted",
    )
    status = run.status()
    assert status is not None and status["isolation_level"] == "read_committed"
    assert status["targets"]["pager"]["delivered"] == 2
    assert status["unreadable"] == 1


def _canonical(body: Any) -> bytes:
    import json

    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_outputs_of_an_aborted_transaction_are_never_delivered(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook, chat, pager = receiver("webhook"), receiver("slack"), receiver("pagerduty")
    run = notify_run(routing(hook, chat, pager), secrets_env(chat), partitions=1)
    run.start()
    run.write([ticket_output("sla.breach", "A1"), ticket_output("sla.warning", "A1")], abort=True)
    # Committed after the aborted ones, on the same partitions: once these arrive, the
    # aborted records have been read past.
    run.write([ticket_output("sla.breach", "C1"), ticket_output("sla.warning", "C1")])
    wait_for(lambda: len(pager.accepted()) >= 1 and len(hook.accepted()) >= 1, 60, "deliveries")
    wait_for(lambda: len(chat.accepted()) >= 1, 30, "slack delivery")

    delivered = keys(pager) | keys(chat) | keys(hook)
    assert not [k for k in delivered if ":A1:" in k]
    assert delivered == {
        "sla.breach:C1:first_response:1::pager",
        "sla.breach:C1:first_response:1::chat",
        "sla.warning:C1:first_response:1:0.75:hook",
    }


def test_a_receiver_failing_twice_gets_the_notification_after_backoff(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook = receiver("webhook", script=[(500, {}), (500, {})])
    chat, pager = receiver("slack"), receiver("pagerduty")
    run = notify_run(routing(hook, chat, pager), secrets_env(chat))
    run.start()
    run.write([ticket_output("sla.warning", "R1")])
    wait_for(lambda: len(hook.accepted()) == 1, 60, "delivery after two failures")

    attempts = hook.received()
    assert [r.status for r in attempts] == [500, 500, 200]
    assert len({r.headers["Idempotency-Key"] for r in attempts}) == 1
    # backoff 0.2 s then 0.4 s, less at most 20% jitter each
    assert attempts[1].at - attempts[0].at >= 0.16
    assert attempts[2].at - attempts[1].at >= 0.32
    wait_for(lambda: (run.status() or {})["targets"]["hook"]["delivered"] == 1, 10, "status")
    status = run.status()
    assert status is not None
    assert status["targets"]["hook"]["last_error"].startswith("HTTP 500")
    assert status["targets"]["hook"]["failed"] == 0


def test_retry_after_on_429_is_honoured(receiver: MakeReceiver, notify_run: MakeRun) -> None:
    pager = receiver("pagerduty", script=[(429, {"Retry-After": "2"})])
    hook, chat = receiver("webhook"), receiver("slack")
    run = notify_run(routing(hook, chat, pager), secrets_env(chat))
    run.start()
    run.write([ticket_output("sla.breach", "R2", priority="urgent")])
    wait_for(lambda: len(pager.accepted()) == 1, 60, "delivery after 429")

    first, second = pager.received()
    assert first.status == 429 and second.status == 202
    assert second.at - first.at >= 2.0  # not sooner than asked, though the backoff is 0.2 s


def test_a_receiver_down_past_the_maximum_age_yields_a_dead_letter(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook, chat, pager = receiver("webhook"), receiver("slack"), receiver("pagerduty")
    hook.close()  # nothing listens on its port any more
    run = notify_run(routing(hook, chat, pager, "max_age_seconds: 5"), secrets_env(chat))
    run.start()
    run.write([ticket_output("sla.warning", "D1")])

    [letter] = run.dead_letters(expected=1)
    assert letter["target"] == "hook"
    assert letter["idempotency_key"] == "sla.warning:D1:first_response:1:0.75:hook"
    assert letter["reason"].startswith("max age 5 s reached after")
    assert "ClientConnectorError" in letter["reason"]
    assert letter["attempts"] >= 1
    assert letter["output"]["ticket_id"] == "D1"
    wait_for(lambda: (run.status() or {})["targets"]["hook"]["failed"] == 1, 10, "status")
    assert 'slaclock_notify_dead_lettered_total{target="hook"} 1.0' in run.metrics()


def test_outputs_read_again_after_a_restart_are_not_sent_again_once_acknowledged(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook, chat, pager = receiver("webhook"), receiver("slack"), receiver("pagerduty")
    run = notify_run(routing(hook, chat, pager), secrets_env(chat), partitions=1)
    run.start()
    run.write([ticket_output("sla.warning", f"W{n}") for n in range(5)])
    wait_for(lambda: len(hook.accepted()) == 5, 60, "first deliveries")
    run.stop()
    # Rewind the group: every output is read again by the next process.
    run.rewind_group()
    run.start()
    run.write([ticket_output("sla.warning", "W-after")])
    wait_for(lambda: any(r.body["ticket_id"] == "W-after" for r in hook.received()), 60, "new")
    wait_for(
        lambda: (run.status() or {})["targets"]["hook"]["already_delivered"] == 5,
        30,
        "re-read outputs recognised as delivered",
    )
    assert [r.body["ticket_id"] for r in hook.received()][-1] == "W-after"
    assert len(hook.received()) == 6


def test_a_tickets_notifications_reach_a_target_in_order_even_across_retries(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook = receiver("webhook", script=[(500, {})])
    chat, pager = receiver("slack"), receiver("pagerduty")
    slow_retry = "initial_backoff_seconds: 3, max_backoff_seconds: 3"
    run = notify_run(
        routing(hook, chat, pager).replace(
            "initial_backoff_seconds: 0.2, max_backoff_seconds: 1", slow_retry
        ),
        secrets_env(chat),
        partitions=1,
    )
    run.start()
    run.write([ticket_output("sla.warning", "O1", threshold=0.75)])
    wait_for(lambda: len(hook.received()) == 1, 60, "the first attempt (answered 500)")
    run.write(
        [
            ticket_output("sla.warning", "O1", threshold=0.9),
            ticket_output("sla.warning", "O2", threshold=0.75),
        ]
    )
    wait_for(lambda: len(hook.accepted()) == 3, 60, "every notification")

    o1 = [
        (r.body["threshold"], r.status, r.at)
        for r in hook.received()
        if r.body["ticket_id"] == "O1"
    ]
    assert [(t, s) for t, s, _ in o1] == [(0.75, 500), (0.75, 200), (0.9, 200)]
    assert o1[2][2] >= o1[1][2]  # the later output only after the earlier one's acknowledgement
    assert [r.body["ticket_id"] for r in hook.accepted()].count("O2") == 1


def test_a_target_gets_concurrent_requests_up_to_its_concurrency(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook = receiver("webhook", delay=0.5)
    chat, pager = receiver("slack"), receiver("pagerduty")
    run = notify_run(routing(hook, chat, pager, "concurrency: 3"), secrets_env(chat))
    run.start()
    run.write([ticket_output("sla.warning", f"P{n}") for n in range(9)])
    wait_for(lambda: len(hook.accepted()) == 9, 60, "every notification")

    assert hook.most_in_flight == 3  # several tickets at once, never more than allowed


def test_a_breached_cycle_cancelled_by_solve_resolves_its_incident(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    hook, chat, pager = receiver("webhook"), receiver("slack"), receiver("pagerduty")
    run = notify_run(routing(hook, chat, pager), secrets_env(chat), partitions=1)
    run.start()
    run.write([ticket_output("sla.breach", "X1", metric="next_response")])
    # routed by the route that names sla.completed
    run.write([ticket_output("sla.cancelled", "X1", metric="next_response", reason="solved")])
    wait_for(lambda: len(pager.accepted()) >= 2, 60, "trigger and resolve")

    actions = [(r.body["event_action"], r.body["dedup_key"]) for r in pager.accepted()]
    assert actions == [("trigger", "X1/next_response/1"), ("resolve", "X1/next_response/1")]
