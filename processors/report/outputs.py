"""Output events as the report reads them: a JSONL file (`replay --out`) or topic records."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

Output = dict[str, Any]

TICKET_OUTCOME_TYPES = ("sla.breach", "sla.completed")
KNOWN_TYPES = frozenset(
    {
        "sla.warning",
        "sla.breach",
        "sla.completed",
        "sla.cancelled",  # read, never counted: a cycle that ended without an outcome
        "sla.credit",
        "sla.credit_earned_back",
        "sla.statement",
        "sla.group_statement",  # kept apart: groups are not part of customer compliance
        "sla.availability_report",
        "sla.availability_warning",
        "sla.availability_breach",
    }
)


class ReportInputError(Exception):
    """Input the report cannot use; the message is one line meant for the user."""


@dataclass
class Outputs:
    """The output events the report uses, by kind, in emission order (warnings are skipped)."""

    breaches: list[Output] = field(default_factory=list)
    completions: list[Output] = field(default_factory=list)
    credits: list[Output] = field(default_factory=list)
    earned_back: list[Output] = field(default_factory=list)
    statements: list[Output] = field(default_factory=list)
    availability_reports: list[Output] = field(default_factory=list)
    availability_alerts: list[Output] = field(default_factory=list)
    # group metrics' outputs and group statements (docs/semantics.md: Groups): never part of
    # a customer's figures
    group_outputs: list[Output] = field(default_factory=list)
    warnings: int = 0

    def add(self, output: Output) -> None:
        kind = output.get("type")
        if output.get("group") is not None:
            self.group_outputs.append(output)
        elif kind == "sla.warning":
            self.warnings += 1
        elif kind == "sla.breach":
            self.breaches.append(output)
        elif kind == "sla.completed":
            self.completions.append(output)
        elif kind == "sla.credit":
            self.credits.append(output)
        elif kind == "sla.credit_earned_back":
            self.earned_back.append(output)
        elif kind == "sla.statement":
            self.statements.append(output)
        elif kind == "sla.availability_report":
            self.availability_reports.append(output)
        elif kind in ("sla.availability_warning", "sla.availability_breach"):
            self.availability_alerts.append(output)

    def customers(self) -> set[str]:
        found: set[str] = set()
        for group in (self.breaches, self.completions, self.credits, self.statements):
            found.update(o["customer_id"] for o in group if o.get("customer_id"))
        return found

    @property
    def empty(self) -> bool:
        return not (
            self.warnings
            or self.breaches
            or self.completions
            or self.credits
            or self.statements
            or self.availability_reports
        )


def read_outputs(lines: Iterable[bytes], source: str) -> Outputs:
    """Parse JSONL output events. Raises `ReportInputError` naming the first bad line."""
    outputs = Outputs()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ReportInputError(
                f"{source}, line {number}: not JSON; --outputs takes the JSONL file that "
                "`slaclock replay --out` writes (one output event per line)"
            ) from None
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise ReportInputError(
                f"{source}, line {number}: not an output event (a JSON object with a `type`); "
                "--outputs takes the file that `slaclock replay --out` writes"
            )
        if value["type"] not in KNOWN_TYPES:
            if value["type"].startswith("ticket.") or value["type"].startswith("service."):
                raise ReportInputError(
                    f"{source}, line {number}: an input event ({value['type']}), not an output; "
                    "run `slaclock replay --out OUT.jsonl` first and pass OUT.jsonl"
                )
            continue  # an output kind this report does not read (forward compatible)
        outputs.add(value)
    return outputs


def outputs_from_records(values: Iterable[Any]) -> Outputs:
    """Outputs from decoded topic record values (non-objects are skipped)."""
    outputs = Outputs()
    for value in values:
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            outputs.add(value)
    return outputs
