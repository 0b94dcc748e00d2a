"""The committed JSON Schemas under schemas/json match the models."""

from __future__ import annotations

import json
from pathlib import Path

from slaclock.schemas.export import SCHEMA_FILES, export_json_schemas, json_schemas

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "json"
REGENERATE = "JSON Schemas are out of date: run `slaclock schemas export schemas/json`"


def test_committed_schemas_match_a_fresh_export(tmp_path: Path) -> None:
    written = export_json_schemas(tmp_path)
    assert [p.name for p in written] == list(SCHEMA_FILES)
    for fresh in written:
        committed = COMMITTED / fresh.name
        assert committed.is_file(), f"{committed} is missing. {REGENERATE}"
        assert committed.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
            f"{committed.name} differs from the models. {REGENERATE}"
        )


def test_export_is_deterministic(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in export_json_schemas(tmp_path / "a")]
    second = [p.read_bytes() for p in export_json_schemas(tmp_path / "b")]
    assert first == second
    for text in first:
        assert text.endswith(b"}\n")
        document = json.loads(text)
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert text.decode() == json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_export_creates_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir"
    assert {p.name for p in export_json_schemas(target)} == set(SCHEMA_FILES)


def test_ticket_event_schema_lists_every_event_type() -> None:
    schema = json_schemas()["ticket-event.schema.json"]
    assert set(schema["discriminator"]["mapping"]) == {
        "ticket.created",
        "ticket.agent_replied",
        "ticket.customer_replied",
        "ticket.status_changed",
        "ticket.priority_changed",
        "ticket.assigned",
    }
    created = schema["$defs"]["TicketCreated"]
    assert {"type", "event_id", "ticket_id", "occurred_at", "customer_id", "priority"} <= set(
        created["required"]
    )


def test_output_schema_writes_money_as_strings() -> None:
    schema = json_schemas()["output-event.schema.json"]
    assert set(schema["discriminator"]["mapping"]) == {
        "sla.warning",
        "sla.breach",
        "sla.completed",
        "sla.cancelled",
        "sla.credit",
        "sla.statement",
        "sla.group_statement",
        "sla.credit_earned_back",
    }
    credit = schema["$defs"]["SlaCredit"]["properties"]
    for field in ("amount", "period_total", "percent"):
        assert credit[field]["type"] == "string"
    statement = schema["$defs"]["SlaStatement"]["properties"]
    for field in ("monthly_fee", "credits_total", "availability_credits_total"):
        assert statement[field]["type"] == "string"


def test_policy_schema_describes_the_file_notation() -> None:
    defs = json_schemas()["policy.schema.json"]["$defs"]
    targets = defs["TierSpec"]["properties"]["targets"]
    duration = targets["additionalProperties"]["additionalProperties"]
    assert duration["type"] == "string"
    assert defs["WorkingInterval"]["type"] == "string"
    assert defs["TierSpec"]["additionalProperties"] is False
    contract = json_schemas()["contract.schema.json"]
    assert contract["properties"]["monthly_fee"]["type"] == "string"
