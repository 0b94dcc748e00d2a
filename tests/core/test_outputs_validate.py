"""Every output the engine emits meets the published contract (hypothesis).

Random ticket histories (several tickets, contracts with credits and caps, month ends, DST
days) are replayed through `processors.replay.replay`; every output, as the bytes a
subscriber receives, must validate against the pydantic models of `schemas/outputs.py`
AND against the exported JSON Schema `schemas/json/output-event.schema.json`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaclock.processors.engine.instants import parse_instant
from slaclock.processors.engine.policy import CompiledPolicy
from slaclock.processors.replay import Rejection, replay
from slaclock.schemas.outputs import parse_output_event
from tests.core.builders import Harness, agent_reply, created, make_policy, status
from tests.core.reference_model import REF_POLICY_YAML, Scenario, random_scenario

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "json" / "output-event.schema.json"


@cache
def _policy() -> CompiledPolicy:
    return make_policy(REF_POLICY_YAML)


@cache
def _validator() -> Any:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _replay(scenario: Scenario) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    until = parse_instant(scenario.until)
    replay(_policy(), scenario.lines(), outputs.append, rejected.append, until)
    assert rejected == []
    return outputs


def check_output(output: dict[str, Any]) -> None:
    """Validate one output, as the JSON bytes subscribers read, against both contracts."""
    raw = orjson.dumps(output)
    model = parse_output_event(raw)  # raises pydantic.ValidationError
    assert model.type == output["type"]
    errors = sorted(_validator().iter_errors(orjson.loads(raw)), key=lambda e: e.path)
    assert not errors, f"{output}: " + "; ".join(e.message for e in errors[:3])


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    return random_scenario(draw(st.randoms(use_true_random=False)), draw(st.integers(1, 6)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_every_output_validates_against_the_models_and_the_json_schema(
    scenario: Scenario,
) -> None:
    for output in _replay(scenario):
        check_output(output)


def test_the_validation_sees_every_ticket_output_kind_and_credits() -> None:
    """Guard: the generated histories do reach every output type this checks."""
    kinds: Counter[str] = Counter()
    for seed in range(30):
        for output in _replay(random_scenario(random.Random(seed), 6)):
            kinds[output["type"]] += 1
    assert {"sla.warning", "sla.breach", "sla.completed", "sla.credit"} <= set(kinds)


def test_a_warning_whose_metric_pauses_at_the_threshold_instant_validates() -> None:
    # enterprise, high: resolution 8h, warning 50 % at 13:00; pending pauses it exactly
    # then, so the projected deadline is unknown when the warning fires.
    h = Harness().feed(created("2026-03-02T09:00:00Z"), status("2026-03-02T13:00:00Z", "pending"))
    h.until("2026-03-02T14:00:00Z")
    warning = h.one("warning", "resolution")
    assert (warning["at"], warning["deadline"]) == ("2026-03-02T13:00:00Z", "2026-03-02T17:00:00Z")
    for output in h.outputs:
        check_output(output)


@pytest.mark.parametrize(
    "broken",
    [
        {"type": "sla.breach", "decided_at": None},
        {"type": "sla.completed", "outcome": "late"},
        {"type": "sla.warning", "threshold": "0.5"},
    ],
)
def test_the_check_refuses_an_output_that_breaks_the_contract(broken: dict[str, Any]) -> None:
    h = Harness().feed(created("2026-03-02T09:00:00Z"), agent_reply("2026-03-02T10:30:00Z"))
    h.until("2026-03-02T11:00:00Z")
    sample = next(o for o in h.outputs if o["type"] == broken["type"])
    with pytest.raises((AssertionError, ValueError)):
        check_output({**sample, **broken})
