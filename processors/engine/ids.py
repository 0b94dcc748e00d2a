"""Deterministic output event ids.

An output's id is a UUIDv5 of its natural key, so replaying the same input yields the
same ids and a subscriber (or the credit ledger) can detect a duplicate delivery.
Computed directly with hashlib (identical to `uuid.uuid5`, which is several times slower
because it builds UUID objects) since it runs once per output on the hot path.
"""

from __future__ import annotations

import hashlib
import uuid

NAMESPACE = uuid.UUID("6f1c2a4e-4b7d-5f0e-9a51-5a1c10c4c0de")
_NAMESPACE_BYTES = NAMESPACE.bytes


def output_event_id(kind: str, *key: object) -> str:
    """`kind` is the output type (e.g. `sla.breach`); `key` its natural key parts."""
    natural = "\x1f".join([kind, *(str(part) for part in key)])
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + natural.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
