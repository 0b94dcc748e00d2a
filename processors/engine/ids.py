"""Deterministic output event ids.

An output's id is a UUIDv5 of its natural key, so replaying the same input yields the
same ids and a subscriber (or the credit ledger) can detect a duplicate delivery.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c2a4e-4b7d-5f0e-9a51-5a1c10c4c0de")


def output_event_id(kind: str, *key: object) -> str:
    """`kind` is the output type (e.g. `sla.breach`); `key` its natural key parts."""
    natural = "\x1f".join([kind, *(str(part) for part in key)])
    return str(uuid.uuid5(_NAMESPACE, natural))
