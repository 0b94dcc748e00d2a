"""Tickets that get no SLA are counted by reason; input records keyed other than by their
ticket id are rejected as `KeyMismatch`.

Policy (tests/core/builders.py): default tier `business` has first_response and resolution
targets for high and normal only; acme has an enterprise contract (resolution for low),
globex a business one; `nobody` has no contract.
"""

from __future__ import annotations

import orjson
import pytest

from slaclock.processors.intake import decode_record
from slaclock.schemas.rejection import Rejected
from tests.core.builders import Harness, created, customer_reply

T0 = "2026-03-02T09:00:00Z"


def untracked(*events: dict[str, object]) -> dict[str, int]:
    return Harness().feed(*events).replayer.stage.counters.untracked


def test_customer_without_contract_on_a_default_tier_priority_without_target() -> None:
    assert untracked(created(T0, priority="low", customer="nobody")) == {"no_contract": 1}


def test_customer_without_contract_gets_the_default_tier_and_is_tracked() -> None:
    assert untracked(created(T0, priority="high", customer="nobody")) == {}


def test_contract_tier_without_target_for_the_priority_is_no_target() -> None:
    assert untracked(created(T0, priority="urgent", customer="globex")) == {"no_target": 1}


def test_tier_named_by_the_event_without_target_is_no_target() -> None:
    event = created(T0, priority="low", customer="nobody", tier="business")
    assert untracked(event) == {"no_target": 1}


def test_a_priority_tracked_by_any_metric_is_tracked() -> None:
    # enterprise has no first_response target for low, but a resolution one
    assert untracked(created(T0, priority="low", customer="acme")) == {}


def test_untracked_ticket_is_counted_once_and_still_created() -> None:
    h = Harness().feed(
        created(T0, priority="low", customer="nobody"), customer_reply(T0, event_id="r1")
    )
    assert h.replayer.stage.counters.untracked == {"no_contract": 1}
    assert "T1" in h.replayer.store and h.rejections == []


def _record(ticket: str = "T1") -> bytes:
    return orjson.dumps(created(T0, ticket=ticket))


def test_record_keyed_by_its_ticket_id_is_accepted() -> None:
    assert decode_record(_record(), b"T1").ticket_id == "T1"


@pytest.mark.parametrize(
    ("key", "said"),
    [(None, "has no key"), (b"T2", "record key is 'T2'"), (b"", "record key is ''")],
)
def test_record_with_missing_or_other_key_is_a_key_mismatch(key: bytes | None, said: str) -> None:
    with pytest.raises(Rejected) as rejected:
        decode_record(_record(), key)
    assert rejected.value.error_class == "KeyMismatch"
    assert said in rejected.value.message and "key = ticket_id" in rejected.value.message


def test_invalid_record_is_classified_before_its_key_is_checked() -> None:
    with pytest.raises(Rejected) as rejected:
        decode_record(b"{not json", None)
    assert rejected.value.error_class == "InvalidJson"
