"""SIGKILL `slaclock notify` five times while it delivers: nothing routed is lost, every
duplicate carries the same idempotency key, and every PagerDuty incident a breach opened is
resolved once its metric cycle completed or was cancelled."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from tests.notify.conftest import MakeReceiver, MakeRun
from tests.notify.harness import ticket_output, wait_for
from tests.notify.test_notify_delivery import routing, secrets_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

TICKETS = 120
KILLS = 5


def outputs_of(ticket: str, rng: random.Random) -> list[dict[str, Any]]:
    metric = rng.choice(["first_response", "resolution", "next_response"])
    # A breached cycle ends in a late completion or, ended without an outcome, a cancellation.
    end = (
        ticket_output("sla.cancelled", ticket, metric=metric, reason="solved")
        if metric == "next_response"
        else ticket_output("sla.completed", ticket, metric=metric, outcome="breached")
    )
    return [
        ticket_output("sla.warning", ticket, metric=metric),
        ticket_output("sla.breach", ticket, metric=metric),
        end,
    ]


def test_sigkill_five_times_loses_nothing_routed_and_resolves_every_incident(
    receiver: MakeReceiver, notify_run: MakeRun
) -> None:
    rng = random.Random(15)
    # Slow receivers keep deliveries in flight when the kills come.
    hook = receiver("webhook", delay=0.02)
    chat = receiver("slack", delay=0.02)
    pager = receiver("pagerduty", delay=0.02)
    run = notify_run(routing(hook, chat, pager), secrets_env(chat), partitions=3)
    tickets = [f"K{n:03d}" for n in range(TICKETS)]
    batches = [tickets[i : i + 10] for i in range(0, TICKETS, 10)]
    per_round = len(batches) // (KILLS + 1)

    def total() -> int:
        return len(hook.received()) + len(chat.received()) + len(pager.received())

    for round_ in range(KILLS + 1):
        run.start()
        mine = batches[round_ * per_round : (round_ + 1) * per_round]
        if round_ == KILLS:
            mine = batches[round_ * per_round :]
        for batch in mine:
            run.write([o for t in batch for o in outputs_of(t, rng)])
        if round_ < KILLS:
            before = total()
            try:
                wait_for(lambda b=before: total() >= b + 5, 120, f"progress, kill {round_ + 1}")
            except TimeoutError as error:
                raise AssertionError(
                    f"{error}; status {run.status()}; notify's logs:\n{run.log_text()}"
                ) from None
            run.kill()

    expected = {f"sla.warning:{t}:" for t in tickets}  # prefixes; metric varies

    def counts() -> tuple[int, int, int]:
        return tuple(  # type: ignore[return-value]
            len({r.headers["Idempotency-Key"] for r in target.accepted()})
            for target in (pager, hook, chat)
        )

    try:
        wait_for(lambda: counts() == (2 * TICKETS, TICKETS, TICKETS), 120, "every notification")
    except TimeoutError as error:
        raise AssertionError(
            f"{error}: (pager, hook, chat) = {counts()}; status {run.status()}; "
            f"last log:\n{run.logs[-1].read_text(errors='replace')[-6000:]}"
        ) from None

    # Nothing routed lost, nothing unrouted sent.
    hook_keys = {r.headers["Idempotency-Key"] for r in hook.accepted()}
    assert {k.split(":")[0] + ":" + k.split(":")[1] + ":" for k in hook_keys} == expected
    assert all(k.endswith(":hook") for k in hook_keys)
    # A duplicate is the same notification with the same key: one body per key.
    for target in (hook, chat, pager):
        bodies: dict[str, set[str]] = defaultdict(set)
        for r in target.received():
            bodies[r.headers["Idempotency-Key"]].add(repr(sorted(r.body.items())))
        assert all(len(b) == 1 for b in bodies.values())
    # ... and the same notification never comes with another key.
    hook_keys_per_output: dict[str, set[str]] = defaultdict(set)
    for r in hook.received():
        hook_keys_per_output[r.body["event_id"]].add(r.headers["Idempotency-Key"])
    pager_keys_per_event: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in pager.received():
        event = (r.body["dedup_key"], r.body["event_action"])
        pager_keys_per_event[event].add(r.headers["Idempotency-Key"])
    assert all(len(k) == 1 for k in hook_keys_per_output.values())
    assert all(len(k) == 1 for k in pager_keys_per_event.values())
    # PagerDuty: replay the accepted events in arrival order; every incident ends resolved.
    state: dict[str, str] = {}
    for r in sorted(pager.accepted(), key=lambda r: r.at):
        state[r.body["dedup_key"]] = r.body["event_action"]
    assert len(state) == TICKETS
    assert set(state.values()) == {"resolve"}
    duplicates = sum(len(t.accepted()) for t in (hook, chat, pager)) - 4 * TICKETS
    print(f"kills: {KILLS}, duplicates: {duplicates}")
