"""What an events file looks like when it is not JSON Lines (`replay`'s error message)."""

from __future__ import annotations

import gzip
import json

import pytest

from slaclock.sniff import describe_bytes

EVENT = {"event_id": "e1", "type": "ticket.created", "ticket_id": "T-1"}


def test_json_lines_are_recognised_as_such() -> None:
    lines = "\n".join(json.dumps(EVENT) for _ in range(3)) + "\n"
    assert describe_bytes(lines.encode()) is None
    assert describe_bytes(b"\n\n" + lines.encode()) is None  # blank lines first
    assert describe_bytes(b"") is None  # empty: nothing to say about its shape


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"events:\n  - ticket_id: T-1\n", "line 1 is YAML, not JSON Lines"),
        (b"---\n- ticket_id: T-1\n", "line 1 is YAML, not JSON Lines"),
        (b"event_id,type,ticket_id\ne1,ticket.created,T-1\n", "line 1 is CSV"),
        (json.dumps([EVENT], indent=2).encode(), "it is one JSON array"),
        (json.dumps(EVENT, indent=2).encode(), "one JSON object spread over 5 lines"),
        (b"[" + json.dumps(EVENT).encode() + b"]\n", "line 1 is a JSON array"),
        (b'"ticket.created"\n', "line 1 is a JSON string"),
        (b"42\n", "line 1 is a JSON number"),
        (b"\n\nhello there\n", "line 3 is not JSON: hello there"),
        (gzip.compress(json.dumps(EVENT).encode()), "gzip-compressed"),
        (b"PK\x03\x04rest", "ZIP archive"),
        (json.dumps(EVENT).encode("utf-16"), "not UTF-8 text"),
    ],
    ids=[
        "yaml-mapping",
        "yaml-document",
        "csv",
        "pretty-array",
        "pretty-object",
        "one-line-array",
        "json-string",
        "json-number",
        "prose",
        "gzip",
        "zip",
        "utf-16",
    ],
)
def test_other_shapes_are_named(content: bytes, expected: str) -> None:
    described = describe_bytes(content)
    assert described is not None and expected in described


def test_a_truncated_head_is_judged_by_its_first_line() -> None:
    head = b"[\n  " + json.dumps(EVENT).encode() + b',\n  {"event'  # cut mid-document
    described = describe_bytes(head, complete=False)
    assert described is not None and "line 1 starts a JSON array" in described
