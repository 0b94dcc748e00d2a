"""A reusable, seeded generator of realistic ticket event streams.

Used by the replay benchmark, the Kafka tests and `slaclock demo`. Each ticket follows
a plausible life: created, agent replies (some internal notes), customer replies,
waiting on the customer, priority changes, assignment, solved, sometimes reopened,
usually closed. Same seed, same events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from slaclock.processors.engine.instants import format_us, to_us

PRIORITIES = ("urgent", "high", "normal", "low")
PRIORITY_WEIGHTS = (1, 3, 8, 3)
DEFAULT_START = datetime.fromisoformat("2026-03-02T08:00:00+00:00")


@dataclass(frozen=True)
class WorkloadShape:
    tickets: int = 1000
    start: datetime = DEFAULT_START
    spread_seconds: int = 7 * 86_400  # tickets are created over this window
    mean_gap_seconds: float = 3 * 3600.0  # typical time between a ticket's events
    customers: Sequence[str] = ("acme", "globex", "initech", "umbrella", "hooli", "walk-in")
    seed: int = 7
    # Every ticket solved and closed at the end of its life (a workload whose stored state
    # stays bounded under a closed-ticket retention, for soaks); False leaves about a third
    # open or solved for good (exactly the events the generator always gave).
    close_every_ticket: bool = False


def ticket_events(
    shape: WorkloadShape, *, start: datetime | None = None, id_prefix: str = ""
) -> list[dict[str, Any]]:
    """All events of all tickets, sorted by occurred_at (ties in generation order).

    The events are a function of the shape alone (its seed and its fixed `start`), never
    of the day it runs: `start` overrides the shape's (an aware datetime), and `id_prefix`
    goes in front of every ticket and event id, so several workloads can be merged.
    """
    start = shape.start if start is None else start
    if start.tzinfo is None:
        raise ValueError(f"workload start {start.isoformat()} has no UTC offset")
    rng = random.Random(shape.seed)
    base = to_us(start)
    timed: list[tuple[int, int, dict[str, Any]]] = []
    seq = 0
    for n in range(shape.tickets):
        for at, event in _one_ticket(rng, shape, n, base, id_prefix):
            timed.append((at, seq, event))
            seq += 1
    timed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in timed]


def _one_ticket(
    rng: random.Random, shape: WorkloadShape, n: int, base: int, id_prefix: str = ""
) -> Iterator[tuple[int, dict[str, Any]]]:
    ticket = f"{id_prefix}T{n:07d}"
    t = base + int(rng.random() * shape.spread_seconds) * 1_000_000
    counter = 0

    def event(kind: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        nonlocal counter
        counter += 1
        return t, {
            "event_id": f"{ticket}-{counter}",
            "type": kind,
            "ticket_id": ticket,
            "occurred_at": format_us(t),
            **fields,
        }

    def later() -> None:
        nonlocal t
        t += max(1, int(rng.expovariate(1.0 / shape.mean_gap_seconds))) * 1_000_000

    priority = rng.choices(PRIORITIES, PRIORITY_WEIGHTS)[0]
    yield event("ticket.created", customer_id=rng.choice(list(shape.customers)), priority=priority)
    status = "new"
    steps = rng.randint(2, 9)
    for _ in range(steps):
        later()
        roll = rng.random()
        if roll < 0.35:
            yield event("ticket.agent_replied", public=rng.random() > 0.15)
            if status == "new":
                status = "open"
                yield event("ticket.status_changed", status="open")
        elif roll < 0.6:
            yield event("ticket.customer_replied")
            if status in ("pending", "solved"):
                status = "open"
        elif roll < 0.72:
            status = "pending" if status != "pending" else "open"
            yield event("ticket.status_changed", status=status)
        elif roll < 0.78:
            status = "on_hold" if status != "on_hold" else "open"
            yield event("ticket.status_changed", status=status)
        elif roll < 0.86:
            priority = rng.choice([p for p in PRIORITIES if p != priority])
            yield event("ticket.priority_changed", priority=priority)
        elif roll < 0.92:
            agent = rng.randint(1, 40)
            yield event("ticket.assigned", assignee=f"agent{agent}", group=group_of_agent(agent))
        else:
            status = "solved"
            yield event("ticket.status_changed", status="solved")
    later()
    solves = rng.random() < 0.85
    if solves or shape.close_every_ticket:
        yield event("ticket.status_changed", status="solved")
        closes = solves and rng.random() < 0.8
        if closes or shape.close_every_ticket:
            later()
            yield event("ticket.status_changed", status="closed")


LIVE_CUSTOMERS = ("acme", "globex", "initech", "hooli", "walk-in")
LIVE_PRIORITY_WEIGHTS = (3, 3, 3, 1)
"""More urgent tickets than the batch workload: their short targets make a livelier demo."""


def live_ticket_script(
    rng: random.Random,
    ticket_id: str,
    customers: Sequence[str] = LIVE_CUSTOMERS,
    reply_seconds: float = 20.0,
    late_share: float = 0.4,
    escalate_share: float = 0.0,
    groups: tuple[str, str] = ("first-line", "engineering"),
) -> list[tuple[float, dict[str, Any]]]:
    """One ticket's life for a *live* workload: `(seconds after creation, event)` pairs.

    The events have no `occurred_at`: a live publisher stamps each one with the wall time
    at which it sends it, so the SLA clock is real time. Offsets never decrease, so
    publishing in offset order keeps the ticket's events in time order.

    `reply_seconds` is the scale of the agents' response times, meant to be of the order of
    the policy's response targets (as in `examples/demo-policy.yaml`): a share `late_share`
    of the replies comes 1.1 to 2.5 times `reply_seconds` after the customer's message
    (likely breaches), the others after about a quarter of it (met). A few tickets are
    never solved (their resolution breaches in the end).

    With `escalate_share` > 0 every ticket is assigned to the first group of `groups` (first
    line) when created, and that share of them is escalated to the second group (engineering)
    after the first answer: engineering's first note comes 1.1 to 2 times `reply_seconds`
    later (a group_response breach under the demo policy's targets of seconds, docs/semantics.md:
    Groups), then the ticket is handed back. With 0 the script is what it was before groups
    (the same random draws).
    """
    script: list[tuple[float, dict[str, Any]]] = []
    t = 0.0

    def add(kind: str, **fields: Any) -> None:
        script.append(
            (
                round(t, 3),
                {
                    "event_id": f"{ticket_id}-{len(script) + 1}",
                    "type": kind,
                    "ticket_id": ticket_id,
                    **fields,
                },
            )
        )

    def wait(mean: float, least: float = 0.5) -> None:
        nonlocal t
        t += min(least + rng.expovariate(1.0 / mean), 4 * mean)

    def respond() -> None:
        nonlocal t
        if rng.random() < late_share:
            t += reply_seconds * rng.uniform(1.1, 2.5)
        else:
            wait(reply_seconds / 4, least=1.0)

    priority = rng.choices(PRIORITIES, LIVE_PRIORITY_WEIGHTS)[0]
    add("ticket.created", customer_id=rng.choice(list(customers)), priority=priority)
    if rng.random() < 0.15:
        wait(reply_seconds / 3)
        add("ticket.agent_replied", public=False)  # an internal note: no SLA effect
    if rng.random() < 0.1:
        wait(reply_seconds / 3)
        priority = rng.choice([p for p in PRIORITIES if p != priority])
        add("ticket.priority_changed", priority=priority)
    first_line, escalated_to = groups
    if escalate_share > 0:
        add("ticket.assigned", assignee="agent1", group=first_line)
    respond()
    add("ticket.agent_replied", public=True)
    add("ticket.status_changed", status="open")
    if escalate_share > 0 and rng.random() < escalate_share:
        wait(reply_seconds / 4)
        add("ticket.assigned", assignee="dev1", group=escalated_to)  # the escalation
        t += reply_seconds * rng.uniform(1.1, 2.0)
        add("ticket.agent_replied", public=False)  # engineering's first (late) note
        wait(reply_seconds / 4)
        add("ticket.assigned", assignee="agent1", group=first_line)  # handed back
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        if rng.random() < 0.25:
            wait(reply_seconds / 4)
            add("ticket.status_changed", status="pending")  # waiting on the customer
        wait(reply_seconds / 2)
        add("ticket.customer_replied")  # reopens a pending ticket
        respond()
        add("ticket.agent_replied", public=True)
    if rng.random() < 0.85:
        wait(reply_seconds / 2)
        add("ticket.status_changed", status="solved")
        if rng.random() < 0.6:
            wait(reply_seconds / 2)
            add("ticket.status_changed", status="closed")
    return script


SERVICE_STATUSES = ("operational", "degraded_performance", "partial_outage", "major_outage")


def mixed_lines(
    tickets: int, seed: int, customers: Sequence[str] = ("acme", "globex", "walk-in")
) -> list[bytes]:
    """A replay input with everything a file can hold, in time order: ticket events, service
    events (including an unknown service), contract changes, repeated lines (duplicates),
    and rejected lines (bad JSON, schema violations, unknown tickets, a second creation).

    For comparing replays byte for byte (one process against several, one build against
    another); meant for `examples/services-policy.yaml` (services `portal`, `back-office`).
    """
    rng = random.Random(seed)
    shape = WorkloadShape(
        tickets=tickets, customers=customers, seed=seed, spread_seconds=20 * 86_400
    )
    events = ticket_events(shape, start=datetime.fromisoformat("2026-11-02T08:00:00+00:00"))
    lines: list[bytes] = []
    services = ("portal", "back-office", "portal", "no-such-service")
    n_service = 0
    for event in events:
        roll = rng.random()
        at = event["occurred_at"]
        if roll < 0.02:
            n_service += 1
            service = rng.choice(services)
            lines.append(
                orjson.dumps(
                    {
                        "event_id": f"svc-{n_service}",
                        "type": "service.status_changed",
                        "service_id": service,
                        "occurred_at": at,
                        "status": rng.choice(SERVICE_STATUSES),
                    }
                )
            )
        elif roll < 0.025:
            customer = rng.choice(("acme", "globex", "newco", "walk-in"))
            contract = None
            if rng.random() < 0.8:
                contract = {
                    "tier": "enterprise",
                    "monthly_fee": f"{rng.randint(1, 90) * 100}.00",
                    "currency": "EUR",
                }
            lines.append(
                orjson.dumps(
                    {
                        "type": "contract.changed",
                        "customer_id": customer,
                        "occurred_at": at,
                        "contract": contract,
                    }
                )
            )
        elif roll < 0.03:
            lines.append(rng.choice(_BAD_LINES))
        elif roll < 0.035:
            lines.append(
                orjson.dumps(
                    {**event, "event_id": f"x{rng.randint(0, 9)}", "ticket_id": "NEVER-CREATED"}
                )
            )
        line = orjson.dumps(event)
        lines.append(line)
        if rng.random() < 0.03:
            lines.append(line)  # a repeat: dropped as a duplicate
        if event["type"] == "ticket.created" and rng.random() < 0.01:
            lines.append(orjson.dumps({**event, "event_id": event["event_id"] + "-again"}))
    return lines


_BAD_LINES = (
    b"{not json",
    b'{"type": "ticket.created", "ticket_id": "B1"}',
    b'{"event_id": "e", "type": "ticket.unknown", "ticket_id": "B2", "occurred_at": "2026-11-02T08:00:00Z"}',
    b'{"event_id": "e", "type": "ticket.customer_replied", "ticket_id": "B3", "occurred_at": "2026-11-02T08:00:00"}',
    b"[1, 2]",
    b"",
    b'{"event_id": "e", "type": "service.status_changed", "service_id": "portal", "occurred_at": "x"}',
)


def group_of_agent(agent: int) -> str:
    """The team of a generated agent (docs/semantics.md: Groups): agents 1-28 are first
    line (`support`), 29-36 second line (`tier2`), 37-40 `engineering`. Taken from the agent
    drawn, so workloads stay what they were apart from the group names; re-assignments
    between agents of different teams are the hand-offs."""
    if agent <= 28:
        return "support"
    return "tier2" if agent <= 36 else "engineering"
