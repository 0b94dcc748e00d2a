"""Properties of the engine over random ticket histories (hypothesis).

Whatever the events: at most one breach per (ticket, metric, cycle) and no warning after
it, at most one warning per threshold, credits within the cap with consistent running
totals and money as decimal strings, no output dated after the final clock (docs/semantics.md: Warnings, breaches and time order; Credits; Time);
a replay is byte-for-byte repeatable; and a snapshot of every ticket state and customer
ledger taken at any point, round-tripped through JSON, continues exactly like the
uninterrupted run (what recovery from the changelog relies on, docs/semantics.md: Duplicates and invalid input).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.engine.ticket import TicketState
from slaclock.processors.replay import Rejection, Replayer, replay
from slaclock.schemas.rejection import Rejected
from tests.core.builders import make_policy
from tests.core.reference_model import REF_POLICY_YAML, Scenario, random_scenario

Output = dict[str, Any]
MONEY = re.compile(r"^(0|[1-9]\d*)\.\d{2}$")
CENT = Decimal("0.01")

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def _policy() -> CompiledPolicy:
    return make_policy(REF_POLICY_YAML)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    rng = draw(st.randoms(use_true_random=False))
    return random_scenario(rng, draw(st.integers(1, 4)))


def _replay(lines: Sequence[bytes], until: str | None) -> tuple[list[Output], bytes, int]:
    """Run `processors.replay.replay`; outputs, the CLI's output bytes, the final clock."""
    outputs: list[Output] = []
    written = bytearray()
    rejected: list[Rejection] = []

    def emit(output: Output) -> None:
        outputs.append(output)
        written.extend(orjson.dumps(output))
        written.extend(b"\n")

    until_us = None if until is None else parse_instant(until)
    summary = replay(_policy(), list(lines), emit, rejected.append, until_us)
    assert rejected == []
    assert summary.final_clock is not None
    return outputs, bytes(written), summary.final_clock


def _feed(replayer: Replayer, lines: Sequence[bytes]) -> None:
    for line in lines:
        try:
            replayer.on_line(line)
        except Rejected as rejected:  # pragma: no cover - the scenarios are valid
            raise AssertionError(f"unexpected rejection: {rejected.message}") from None


# -- invariants ---------------------------------------------------------------------------


def _check_timers_and_breaches(outputs: Sequence[Output]) -> None:
    breaches: dict[tuple[str, str, int], Output] = {}
    warned: Counter[tuple[str, str, int, float]] = Counter()
    for output in outputs:
        if "ticket_id" not in output:
            continue  # statements: customer-level
        key = (output["ticket_id"], output["metric"], output.get("cycle", 0))
        if output["type"] == "sla.breach":
            assert key not in breaches, f"second breach for {key}: {output}"
            assert output["deadline"] == output["at"]
            assert parse_instant(output["decided_at"]) >= parse_instant(output["at"])
            breaches[key] = output
        elif output["type"] == "sla.warning":
            assert key not in breaches, f"warning after the breach of {key}: {output}"
            warned[(*key, output["threshold"])] += 1
    assert [k for k, n in warned.items() if n > 1] == [], "a threshold warned twice"
    # (A warning may be dated after its breach: a priority raise can move the deadline
    # back before a threshold instant that was warned under the old target.)


def _check_credits(outputs: Sequence[Output]) -> None:
    policy = _policy()
    breaches = {o["event_id"]: o for o in outputs if o["type"] == "sla.breach"}
    credits = [o for o in outputs if o["type"] == "sla.credit"]
    totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: Decimal("0.00"))
    caps: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for credit in credits:
        for name in ("amount", "period_total"):
            value = credit[name]
            assert isinstance(value, str) and MONEY.match(value), f"{name}={value!r} is not money"
        assert isinstance(credit["percent"], str)
        Decimal(credit["percent"])  # a decimal string, never a float
        assert isinstance(credit["capped"], bool)
        contract = policy.contracts[credit["customer_id"]]
        terms = policy.tiers[contract.tier].credits  # the cap is the contract's
        assert terms is not None and terms.monthly_cap is not None
        fee = contract.monthly_fee
        full = (Decimal(credit["percent"]) / 100 * fee).quantize(CENT, ROUND_HALF_UP)
        cap = (terms.monthly_cap / 100 * fee).quantize(CENT, ROUND_HALF_UP)
        amount = Decimal(credit["amount"])
        assert Decimal("0.00") <= amount <= full
        assert credit["capped"] == (amount < full)
        period = (credit["customer_id"], credit["period"])
        totals[period] += amount
        caps[period] = max(caps[period], cap)
        assert Decimal(credit["period_total"]) == totals[period], "period_total is not the sum"
        if amount > 0:
            assert totals[period] <= cap, f"credits of {period} above the tier cap {cap}"
        assert totals[period] <= caps[period]
    credited = Counter(c["breach_event_id"] for c in credits)
    assert all(n == 1 for n in credited.values()), "a breach credited twice"
    assert set(credited) <= set(breaches)
    for breach_id, breach in breaches.items():  # every creditable breach got its credit
        terms = policy.tiers[breach["tier"]].credits
        creditable = (
            terms is not None
            and breach["metric"] in terms.per_breach
            and breach["customer_id"] in policy.contracts
        )
        assert creditable == (breach_id in credited), breach


@PROPERTY_SETTINGS
@given(scenario=scenarios())
def test_outputs_keep_the_once_only_cap_and_clock_invariants(scenario: Scenario) -> None:
    outputs, _, final_clock = _replay(scenario.lines(), scenario.until)
    assert final_clock == parse_instant(scenario.until)
    for output in outputs:  # a warning's `deadline` is a projection: it may lie ahead
        fields = ("at", "deadline", "decided_at") if output["type"] == "sla.breach" else ("at",)
        for name in fields:
            assert parse_instant(output[name]) <= final_clock, (name, output)
    _check_timers_and_breaches(outputs)
    _check_credits(outputs)


@PROPERTY_SETTINGS
@given(scenario=scenarios(), explicit_until=st.booleans())
def test_replaying_the_same_file_twice_gives_identical_bytes(
    scenario: Scenario, explicit_until: bool
) -> None:
    lines = scenario.lines()
    until = scenario.until if explicit_until else None
    _, first, clock_first = _replay(lines, until)
    _, second, clock_second = _replay(lines, until)
    assert first == second
    assert clock_first == clock_second


# -- snapshot / restore -------------------------------------------------------------------


def _round_trip(record: object) -> Any:
    return orjson.loads(orjson.dumps(record))


def _restore(original: Replayer, emit: Callable[[Output], None]) -> Replayer:
    """A fresh replayer rebuilt only from the JSON records of `original`'s state."""
    restored = Replayer(_policy(), emit)
    for ticket_id, state in original.store.items():
        restored.store[ticket_id] = TicketState.from_record(_round_trip(state.to_record()))
    for account in original.ledger.accounts.values():
        restored.ledger.restore_account(_round_trip(account.to_record()))
    restored.ledger.restore_meta(_round_trip(original.ledger.meta_record()))
    restored.stage.first_applied = original.stage.first_applied
    restored.stage.clock = original.stage.clock
    restored.stage.rebuild_timers()
    return restored


@PROPERTY_SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_restored_snapshot_continues_like_the_uninterrupted_run(
    scenario: Scenario, data: st.DataObject
) -> None:
    lines = scenario.lines()
    cut = data.draw(st.integers(0, len(lines)), label="cut")
    until = parse_instant(scenario.until)

    straight: list[Output] = []
    original = Replayer(_policy(), straight.append)
    _feed(original, lines[:cut])
    emitted_before_cut = len(straight)

    resumed: list[Output] = []
    restored = _restore(original, resumed.append)
    assert {t: s.to_record() for t, s in restored.store.items()} == {
        t: _round_trip(s.to_record()) for t, s in original.store.items()
    }

    _feed(original, lines[cut:])
    original.finish(until)
    _feed(restored, lines[cut:])
    restored.finish(until)
    assert resumed == straight[emitted_before_cut:]


@PROPERTY_SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_timers_rebuilt_from_state_records_are_those_rebuilt_from_the_states(
    scenario: Scenario, data: st.DataObject
) -> None:
    """A restore schedules each ticket's timer from its changelog record (`record_timer`)
    without rebuilding the state: the same timers, closed tickets' retention included."""
    lines = scenario.lines()
    cut = data.draw(st.integers(0, len(lines)), label="cut")
    replayer = Replayer(_policy(), lambda output: None)
    _feed(replayer, lines[:cut])
    stage = replayer.stage
    stage.rebuild_timers()
    from_states = stage.scheduled_timers()
    stage.rebuild_timers_from_records(
        _round_trip(state.to_record()) for state in replayer.store.values()
    )
    assert stage.scheduled_timers() == from_states
