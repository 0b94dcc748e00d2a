"""The msgspec fast path of input decoding (schemas/fast_events.py) accepts exactly what
pydantic accepts, as the same event (the engine's Struct), and leaves every rejection to
pydantic."""

from __future__ import annotations

import ast
import json
from datetime import UTC
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from slaclock.processors.replay import line_kind
from slaclock.schemas.events import parse_ticket_event
from slaclock.schemas.fast_decode import decode_fast
from slaclock.schemas.fast_events import STRUCTS, from_model
from slaclock.schemas.rejection import Rejected, classify_validation_error, decode_event

BASE = {"event_id": "e-1", "ticket_id": "T-1", "occurred_at": "2026-03-02T09:00:00Z"}


def line(type_: str, **fields: Any) -> bytes:
    return json.dumps({**BASE, "type": type_, **fields}).encode()


def pydantic_outcome(raw: bytes | str) -> tuple[str, Any]:
    """What pydantic alone (the schema of record) makes of a record, as the engine's Struct."""
    try:
        return ("event", _identity(from_model(parse_ticket_event(raw))))
    except ValidationError as error:
        rejected = classify_validation_error(error)
        return ("rejected", (rejected.error_class, rejected.message))
    except Exception as error:
        return ("raised", type(error).__name__)


def outcome(raw: bytes | str) -> tuple[str, Any]:
    """What `decode_event` (fast path first) makes of it."""
    try:
        return ("event", _identity(decode_event(raw)))
    except Rejected as rejected:
        return ("rejected", (rejected.error_class, rejected.message))
    except Exception as error:
        return ("raised", type(error).__name__)


def _identity(event: Any) -> tuple[Any, ...]:
    """Everything that makes two events the same: class, `type`, values in field order
    (with their types: an enum member is not its string; and time zones), and equality."""
    values = [
        (name, type(value), value, getattr(value, "tzinfo", None))
        for name, value in zip(event.__struct_fields__, msgspec.structs.astuple(event), strict=True)
    ]
    return (type(event), event.type, values, event)


def test_every_struct_mirrors_its_model_field_for_field() -> None:
    """A field added to an event model must be added to its Struct, with the same default
    (or the fast path would build events without it); `type` is the union's tag."""
    for struct, model in STRUCTS.items():
        fields = {f.name: f for f in msgspec.structs.fields(struct)}
        assert list(fields) == [name for name in model.model_fields if name != "type"], model
        for name, info in model.model_fields.items():
            if name == "type":
                continue
            if info.is_required():
                assert fields[name].required, (model, name)
            else:
                assert fields[name].default == info.default, (model, name)
                assert type(fields[name].default) is type(info.default), (model, name)
        assert struct.type == struct.__struct_config__.tag == model.model_fields["type"].default


def test_an_event_pydantic_accepts_converts_to_the_struct_the_fast_path_decodes() -> None:
    raw = line("ticket.created", customer_id="acme", priority="low", tier="gold")
    converted = from_model(parse_ticket_event(raw))
    assert converted == decode_fast(raw)
    assert converted.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    "raw",
    [
        line("ticket.created", customer_id="acme", priority="urgent"),
        line("ticket.created", customer_id="acme", priority="low", tier="gold", status="open"),
        line("ticket.created", customer_id="acme", priority="low", tier=None),
        line("ticket.agent_replied"),
        line("ticket.agent_replied", public=False),
        line("ticket.customer_replied", extra={"nested": [1, 2.5, None]}),
        line("ticket.status_changed", status="solved"),
        line("ticket.priority_changed", priority="high"),
        line("ticket.assigned", assignee="ann", group=None),
        line("ticket.assigned"),
        line("ticket.customer_replied", occurred_at="2026-03-02T10:00:00.123456+05:30"),
        line("ticket.customer_replied", occurred_at="2026-03-02T10:00:00-00:00"),
        line("ticket.customer_replied", occurred_at="2026-03-02t10:00:00z"),
        line("ticket.customer_replied", ticket_id="Ticket-ü"),
    ],
)
def test_the_fast_path_decodes_common_events_exactly_as_pydantic_does(raw: bytes) -> None:
    event = decode_fast(raw)
    assert event is not None
    assert ("event", _identity(event)) == pydantic_outcome(raw)


@pytest.mark.parametrize(
    ("why", "raw"),
    [
        # accepted by both, differently: the fast path must step aside
        (
            "msgspec rounds a 7th digit, pydantic truncates",
            line("ticket.customer_replied", occurred_at="2026-03-02T09:00:00.9999996Z"),
        ),
        (
            "many digits",
            line("ticket.customer_replied", occurred_at="2026-03-02T09:00:00.12345678901234Z"),
        ),
        ("not UTF-8 in an unknown field", line("ticket.customer_replied")[:-1] + b', "x": "\xff"}'),
        (
            "not UTF-8 in a known field",
            line("ticket.customer_replied", ticket_id="T\udcff").replace(b"\\udcff", b"\xff"),
        ),
    ],
)
def test_the_fast_path_steps_aside_where_msgspec_and_pydantic_would_differ(
    why: str, raw: bytes
) -> None:
    assert decode_fast(raw) is None, why
    assert outcome(raw) == pydantic_outcome(raw)


@pytest.mark.parametrize(
    ("why", "raw"),
    [
        ("an epoch inside a string", line("ticket.customer_replied", occurred_at="1700000000")),
        (
            "HH:MMZ without seconds",
            line("ticket.customer_replied", occurred_at="2026-03-02T09:00Z"),
        ),
        (
            "a comma before the fraction",
            line("ticket.customer_replied", occurred_at="2026-03-02T09:00:00,5Z"),
        ),
        ("NaN in an unknown field", line("ticket.customer_replied")[:-1] + b', "x": NaN}'),
        (
            "Infinity in an unknown field",
            line("ticket.customer_replied")[:-1] + b', "x": -Infinity}',
        ),
        ("a repeated type", b'{"type": "ticket.created", ' + line("ticket.customer_replied")[1:]),
        (
            "a type repeated last",
            line("ticket.created", customer_id="a", priority="low")[:-1]
            + b', "type": "ticket.customer_replied"}',
        ),
        ("a naive timestamp", line("ticket.customer_replied", occurred_at="2026-03-02T09:00:00")),
        ("an epoch number", line("ticket.customer_replied", occurred_at=1_700_000_000)),
        ("public as a string", line("ticket.agent_replied", public="true")),
        ("an empty ticket id", line("ticket.customer_replied", ticket_id="")),
        ("an unknown type", line("ticket.merged")),
        ("no type", json.dumps(BASE).encode()),
        ("not JSON", b'{"event_id": '),
        (
            "a year-1 instant whose UTC is before year 1",
            line("ticket.customer_replied", occurred_at="0001-01-01T00:30:00+01:00"),
        ),
    ],
)
def test_inputs_msgspec_refuses_get_pydantic_s_verdict(why: str, raw: bytes) -> None:
    assert decode_fast(raw) is None, why
    assert outcome(raw) == pydantic_outcome(raw)


# -- differential: random records, valid and invalid ---------------------------------------

TYPES = [
    "ticket.created",
    "ticket.agent_replied",
    "ticket.customer_replied",
    "ticket.status_changed",
    "ticket.priority_changed",
    "ticket.assigned",
    "ticket.other",
    "",
    # other kinds of input line (`line_kind`), in a repeated `type` too
    "contract.changed",
    "policy.changed",
    "service.status_changed",
    "maintenance.scheduled",
]
STATUSES = ["new", "open", "pending", "on_hold", "solved", "closed", "Open", ""]
PRIORITIES = ["urgent", "high", "normal", "low", "URGENT", "critical"]
TIMESTAMPS = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # naive
    st.builds(
        lambda date, hh, mm, ss, frac, sep, zone: f"{date}{sep}{hh:02d}:{mm:02d}{ss}{frac}{zone}",
        st.dates().map(str),
        st.integers(0, 24),
        st.integers(0, 60),
        st.sampled_from(["", ":00", ":59", ":60", ":5"]),
        st.sampled_from(
            ["", ".", ".5", ".123456", ".1234567", ".9999999", ".0000005", ",5", ".12345678901"]
        ),
        st.sampled_from(["T", "t", " ", "_"]),
        st.sampled_from(
            ["Z", "z", "", "+00:00", "-00:00", "+05:30", "+0530", "+05", "+24:00", "-23:59", " UTC"]
        ),
    ),
    st.sampled_from(["1700000000", "0", "-1", "1700000000.5", "99999999999999", "", "now"]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(st.text(max_size=6), SCALARS),
    "ticket_id": st.one_of(st.text(max_size=6), SCALARS),
    "occurred_at": st.one_of(TIMESTAMPS, TIMESTAMPS, SCALARS),
    "customer_id": st.one_of(st.text(max_size=6), SCALARS),
    "priority": st.one_of(st.sampled_from(PRIORITIES), SCALARS),
    "tier": st.one_of(st.none(), st.text(max_size=4), SCALARS),
    "status": st.one_of(st.sampled_from(STATUSES), SCALARS),
    "public": SCALARS,
    "assignee": st.one_of(st.none(), st.text(max_size=4), SCALARS),
    "group": st.one_of(st.none(), st.text(max_size=4), SCALARS),
    "unknown": st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=4),
}


VALID: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.text(min_size=1, max_size=6),
    "ticket_id": st.text(min_size=1, max_size=6),
    "occurred_at": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    "customer_id": st.text(min_size=1, max_size=6),
    "priority": st.sampled_from(PRIORITIES[:4]),
    "tier": st.one_of(st.none(), st.text(min_size=1, max_size=4)),
    "status": st.sampled_from(STATUSES[:6]),
    "public": st.booleans(),
    "assignee": st.one_of(st.none(), st.text(max_size=4)),
    "group": st.one_of(st.none(), st.text(max_size=4)),
}
FIELDS = {
    "ticket.created": ["customer_id", "priority", "tier", "status"],
    "ticket.agent_replied": ["public"],
    "ticket.customer_replied": [],
    "ticket.status_changed": ["status"],
    "ticket.priority_changed": ["priority"],
    "ticket.assigned": ["assignee", "group"],
}


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A valid record of a random type (optional fields sometimes left out), then, mostly,
    a few changes: a field given a random value (often a tricky timestamp), removed, or an
    unknown one added; the JSON text sometimes given a literal, a repeated key or a bad byte."""
    kind = draw(st.sampled_from(sorted(FIELDS)))
    record: dict[str, Any] = {"type": kind}
    for name in ["event_id", "ticket_id", "occurred_at", *FIELDS[kind]]:
        if name in ("event_id", "ticket_id", "occurred_at", "customer_id") or draw(st.booleans()):
            record[name] = draw(VALID[name])
    if draw(st.booleans()):
        record["occurred_at"] = draw(TIMESTAMPS)
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from([*sorted(FIELD_VALUES), "type"]))
        change = draw(st.integers(0, 2))
        if change == 0:
            record.pop(name, None)
        else:
            record[name] = draw(FIELD_VALUES.get(name, st.sampled_from(TYPES)))
    keys = draw(st.permutations(list(record)))
    text = json.dumps({k: record[k] for k in keys}, ensure_ascii=draw(st.booleans()))
    raw = text.encode("utf-8", "surrogatepass")
    mutation = draw(st.integers(0, 9))
    if mutation == 0:  # a literal JSON has no name for
        literal = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0", b"01"]))
        raw = raw[:-1] + b', "z": ' + literal + b"}"
    elif mutation == 1:  # a repeated key, last or first
        key = draw(st.sampled_from([*sorted(FIELD_VALUES), "type"]))
        value = draw(
            st.one_of(VALID.get(key, st.sampled_from(TYPES)), FIELD_VALUES.get(key, SCALARS))
        )
        extra = json.dumps({key: value})[1:-1].encode()
        raw = (
            raw[:-1] + b", " + extra + b"}"
            if draw(st.booleans())
            else b"{" + extra + b", " + raw[1:]
        )
    elif mutation == 2:  # a byte changed or cut
        at = draw(st.integers(0, len(raw) - 1))
        byte = draw(st.sampled_from([b"", b"\xff", b"\xc3", b'"', b"\\", b" ", b"\x00"]))
        raw = raw[:at] + byte + raw[at + 1 :]
    return raw


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_random_records_get_the_same_verdict_with_and_without_the_fast_path(raw: bytes) -> None:
    assert outcome(raw) == pydantic_outcome(raw)


@settings(max_examples=300, deadline=None)
@given(records())
def test_random_records_as_text_get_the_same_verdict_too(raw: bytes) -> None:
    text = raw.decode("utf-8", "replace")
    assert outcome(text) == pydantic_outcome(text)


@pytest.mark.parametrize(
    "raw",
    [
        line("ticket.assigned", assignee="contract.changed", group="policy.changed"),
        line("ticket.customer_replied", event_id='"service.x', unknown="maintenance.y"),
        line("ticket.created", customer_id="a", priority="low", tier="service.up"),
    ],
)
def test_a_ticket_event_naming_other_kinds_in_its_values_is_a_ticket_line(raw: bytes) -> None:
    assert decode_fast(raw) is not None
    assert line_kind(raw) == "ticket"


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_a_line_the_fast_path_decodes_is_a_ticket_line(raw: bytes) -> None:
    """Replay skips `line_kind` for a line `decode_fast` decodes: it must be a ticket line
    there too (a contract, policy or service `type` repeated after a ticket one, say)."""
    if decode_fast(raw) is not None:
        assert line_kind(raw) == "ticket"


def test_msgspec_errors_are_decode_errors() -> None:
    """`decode_fast` catches `msgspec.DecodeError`: a validation failure must be one."""
    assert issubclass(msgspec.ValidationError, msgspec.DecodeError)


EVENT_MODELS = {"TicketEvent", *(model.__name__ for model in STRUCTS.values())}


def test_only_the_schemas_import_the_pydantic_event_models() -> None:
    """The engine, replay and the worker take the Structs (`schemas.fast_events`) that
    `decode_event` returns: an `isinstance(event, TicketCreated)` on them is always false,
    so no module outside `schemas` may import the pydantic event classes."""
    root = Path(__file__).resolve().parents[2]
    wrong = []
    paths = [
        *(root / "processors").rglob("*.py"),
        *(root / "slaclock").glob("*.py"),
        *(root / "slaclock" / "client").rglob("*.py"),
    ]
    for path in sorted(paths):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "slaclock.schemas.events":
                names = {alias.name for alias in node.names} & EVENT_MODELS
                if names:
                    wrong.append(f"{path.relative_to(root)}: {sorted(names)}")
    assert not wrong, f"use the Structs of slaclock.schemas.fast_events instead: {wrong}"
