"""`OutputWriter` (processors/replay.py), the replay command's sink: the bytes of one
`orjson.dumps` and a newline per output, in order with bytes already serialised, whatever
the block size."""

from __future__ import annotations

import orjson
import pytest

from slaclock.processors.replay import OutputWriter


@pytest.mark.parametrize("block", [1, 40, 1 << 16])
def test_outputs_and_serialised_bytes_are_written_in_their_order(block: int) -> None:
    written: list[bytes] = []
    writer = OutputWriter(written.append, block)
    outputs = [{"type": "sla.warning", "n": n, "at": "2026-03-02T09:00:00Z"} for n in range(5)]
    writer(outputs[0])
    writer(outputs[1])
    writer.write_raw(b'{"raw":1}\n')
    for output in outputs[2:]:
        writer(output)
    writer.flush()
    expected = b"".join(orjson.dumps(o) + b"\n" for o in outputs[:2])
    expected += b'{"raw":1}\n' + b"".join(orjson.dumps(o) + b"\n" for o in outputs[2:])
    assert b"".join(written) == expected
    if block == 1 << 16:  # nothing written before it had to be
        assert len(written) == 3


def test_nothing_is_written_twice_or_left_behind_by_flush() -> None:
    written: list[bytes] = []
    writer = OutputWriter(written.append, 1 << 16)
    writer.flush()
    writer({"type": "sla.breach"})
    writer.flush()
    writer.flush()
    assert written == [b'{"type":"sla.breach"}\n']
