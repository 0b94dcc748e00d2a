"""A contract change as an input record: `contract.changed` in a replay file.

On Kafka a change is a `sla.contracts` record (key customer id, value a `Contract`, or no
value to withdraw it) published at the record's timestamp. In a replay file the same
change is one line, so replay reproduces it at the same place in time:

    {"type": "contract.changed", "customer_id": "acme", "occurred_at": "2026-10-01T00:00:00Z",
     "contract": {"tier": "enterprise", "monthly_fee": "12000.00", "currency": "EUR"}}

`occurred_at` is when the change was published; it takes effect at the contract's
`effective_at` if that is later, never earlier (a change is never retroactive).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from slaclock.schemas.events import NonEmptyStr, UtcDatetime
from slaclock.schemas.policy import Contract

__all__ = ["ContractChanged", "parse_contract_changed"]


class ContractChanged(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["contract.changed"] = "contract.changed"
    event_id: str | None = None
    customer_id: NonEmptyStr
    occurred_at: UtcDatetime = Field(description="When the change was published.")
    contract: Contract | None = Field(description="The new contract; null withdraws it.")


def parse_contract_changed(raw: bytes | str) -> ContractChanged:
    """Raises `pydantic.ValidationError`."""
    return ContractChanged.model_validate_json(raw)
