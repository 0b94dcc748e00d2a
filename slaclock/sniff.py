"""What an input file looks like when it is not JSON Lines, in words for an error message.

`replay` reads one JSON object a line; when nothing valid came out of a file, telling the
user "line 1 is YAML" or "it is one JSON array" fixes the mistake faster than a count of
`InvalidJson` rejections.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import orjson
import yaml

SNIFF_BYTES = 1 << 20
_YAML_LINE = re.compile(r"""^(---|%YAML|- |[A-Za-z_"'][\w "'.-]*:(\s|$))""")


def describe_file(path: Path) -> str | None:
    """None when the file's first non-blank line is a JSON object (it looks like JSON Lines),
    else a short description of what it is instead."""
    with path.open("rb") as source:
        head = source.read(SNIFF_BYTES)
        complete = not source.read(1)
    return describe_bytes(head, complete)


def describe_bytes(head: bytes, complete: bool = True) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "it is gzip-compressed; decompress it first (gunzip)"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive; extract the JSON Lines file from it"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:4096]:
        return "it is not UTF-8 text (UTF-16 or binary); save it as UTF-8"
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    lines = text.splitlines()
    number, first = next(
        ((n, line) for n, line in enumerate(lines, start=1) if line.strip()), (0, "")
    )
    if not number:
        return None
    where = f"line {number}"
    try:
        value = orjson.loads(first)
    except orjson.JSONDecodeError:
        return _not_json(text if complete else None, first, where, len(lines))
    if isinstance(value, dict):
        return None
    if isinstance(value, list):
        return f"{where} is a JSON array, not an object; write one event object a line (e.g. jq -c '.[]')"
    return f"{where} is a JSON {_json_kind(value)}, not an event object"


def _not_json(whole: str | None, first: str, where: str, line_count: int) -> str:
    stripped = first.strip()
    if whole is not None and stripped[:1] in ("{", "["):
        try:
            document = orjson.loads(whole)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, list):
            return "it is one JSON array; write one event object a line (e.g. jq -c '.[]')"
        if isinstance(document, dict):
            return (
                f"it is one JSON object spread over {line_count} lines, not JSON Lines; "
                "write each event on a single line (e.g. jq -c .)"
            )
    if stripped.startswith("{"):
        return f"{where} starts a JSON object that does not end on that line (pretty-printed JSON?)"
    if stripped.startswith("["):
        return f"{where} starts a JSON array; write one event object a line (e.g. jq -c '.[]')"
    if _YAML_LINE.match(stripped) and _parses_as_yaml(whole if whole is not None else first):
        return f"{where} is YAML, not JSON Lines"
    if _looks_like_csv(whole if whole is not None else first):
        return f"{where} is CSV ({_shorten(stripped)}), not JSON Lines"
    return f"{where} is not JSON: {_shorten(stripped)}"


def _parses_as_yaml(text: str) -> bool:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        # a truncated head may end mid-document: the first line alone decides
        return False
    return isinstance(value, dict | list)


def _looks_like_csv(text: str) -> bool:
    rows = [row for row in text.splitlines()[:5] if row.strip()]
    if not rows:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(rows), delimiters=",;\t")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(rows, dialect)}
    return len(widths) == 1 and widths.pop() > 1


def _json_kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
