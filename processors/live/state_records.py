"""A ticket state as stage 1's changelog and RocksDB store hold it, and back.

Apart from `processors.live.store` so that both stores share it and the shipped build
compiles it (setup.py): the worker encodes each changed ticket once per batch.
"""

from __future__ import annotations

import orjson

from slaclock.processors.engine.ticket import TicketState

Record = bytes
"""A ticket state as the changelog holds it: `orjson.dumps(state.to_record())`."""


def encode_state(state: TicketState) -> Record:
    return orjson.dumps(state.to_record())


def decode_state(record: bytes) -> TicketState:
    return TicketState.from_record(orjson.loads(record))
