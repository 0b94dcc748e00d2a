"""Deterministic output event ids.

An output's id is a UUIDv5 of its natural key, so replaying the same input yields the
same ids and a subscriber (or the credit ledger) can detect a duplicate delivery.
Computed directly with hashlib (identical to `uuid.uuid5`, which is several times slower
because it builds UUID objects) since it runs once per output on the hot path: the hex
digest is cut into the UUID's groups, with the version nibble (always 5) and the variant
nibble (the top two bits 10: 8, 9, a or b) written over, which is what `uuid.uuid5` sets
in the bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

NAMESPACE = uuid.UUID("6f1c2a4e-4b7d-5f0e-9a51-5a1c10c4c0de")
_NAMESPACE_BYTES: Final = NAMESPACE.bytes
# hex digit -> the digit with its top two bits set to 10 (the RFC 4122 variant)
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 0x3] for digit in "0123456789abcdef"}


KEY_SEPARATOR: Final = "\x1f"
"""Between the parts of a natural key (`kind`, then each part as `str` gives it)."""


def output_event_id(kind: str, *key: object) -> str:
    """`kind` is the output type (e.g. `sla.breach`); `key` its natural key parts."""
    return natural_key_id(KEY_SEPARATOR.join([kind, *[str(part) for part in key]]))


def natural_key_id(natural: str) -> str:
    """The id of a natural key already joined (`output_event_id` without the joining, for
    a caller on the hot path that builds the key text itself)."""
    h = hashlib.sha1(_NAMESPACE_BYTES + natural.encode()).hexdigest()
    # version 5 in the 13th digit, the variant in the 17th
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"
