"""`slaclock services ingest-statuspage`: Statuspage webhook payloads -> service events.

Reads payloads (a file holding one JSON object, or JSON lines with one payload each; `-`
is standard input) and writes the service events they mean, one JSON object a line, to
standard output or `--out`; with `--publish` they also go to the services topic
(SLACLOCK_TOPIC_SERVICES, key service_id).

Exit status: 0 when every payload was understood; 1 when some were not (each is named on
standard error, the others are still converted); 2 for a bad flag value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from slaclock.statuspage import StatuspageError, convert_payload

services_app = typer.Typer(no_args_is_help=True, help="Service availability inputs.")


def _payloads(path: Path) -> list[tuple[str, object]]:
    """(where, decoded payload or the JSON error) for each payload of a file."""
    name = "<stdin>" if str(path) == "-" else str(path)
    data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    try:
        return [(name, orjson.loads(data))]
    except orjson.JSONDecodeError:
        pass
    found: list[tuple[str, object]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append((f"{name}:{number}", orjson.loads(line)))
        except orjson.JSONDecodeError as error:
            found.append((f"{name}:{number}", StatuspageError(f"not JSON: {error}")))
    return found


def _component_map(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        component, sep, service = pair.partition("=")
        if not sep or not component or not service:
            typer.echo(
                f"--component {pair!r}: write COMPONENT=SERVICE (a Statuspage component id or "
                "name, then the policy's service id), e.g. --component sqm6pl84wzjc=portal",
                err=True,
            )
            raise typer.Exit(2)
        mapping[component] = service
    return mapping


@services_app.command("ingest-statuspage")
def ingest_statuspage(
    files: Annotated[
        list[Path], typer.Argument(help="Payload files (JSON or JSON lines); - = stdin.")
    ],
    component: Annotated[
        list[str] | None,
        typer.Option(
            "--component",
            "-c",
            help="COMPONENT=SERVICE: map a Statuspage component (id or name) to a service id; "
            "repeat it. Without any, the component id is the service id.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the events here (default: stdout).")
    ] = None,
    publish: Annotated[
        bool, typer.Option(help="Also publish the events to the services topic.")
    ] = False,
) -> None:
    """Turn Statuspage webhook payloads (component updates, scheduled maintenance) into
    service events."""
    mapping = _component_map(component or [])
    events: list[dict[str, Any]] = []
    failed = 0
    for path in files:
        if str(path) != "-" and not path.is_file():
            typer.echo(f"{path}: no such file", err=True)
            raise typer.Exit(2)
        for where, payload in _payloads(path):
            try:
                if isinstance(payload, StatuspageError):
                    raise payload
                conversion = convert_payload(payload, mapping)
            except StatuspageError as error:
                typer.echo(f"{where}: {error}", err=True)
                failed += 1
                continue
            for reason in conversion.skipped:
                typer.echo(f"{where}: skipped {reason} (no --component mapping)", err=True)
            events.extend(conversion.events)
    lines = b"".join(orjson.dumps(event) + b"\n" for event in events)
    if out is None:
        sys.stdout.buffer.write(lines)
        sys.stdout.flush()
    else:
        try:
            out.write_bytes(lines)
        except OSError as error:
            typer.echo(f"--out {out}: cannot write: {error.strerror or error}", err=True)
            raise typer.Exit(2) from None
    if publish and events:
        _publish(events)
    if failed:
        typer.echo(f"{failed} payload{'s' if failed != 1 else ''} not understood", err=True)
        raise typer.Exit(1)


def _publish(events: list[dict[str, Any]]) -> None:
    from confluent_kafka import KafkaException, Producer

    from slaclock.processors.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    producer = Producer(
        {
            **settings.kafka_config(),
            "enable.idempotence": True,
            "partitioner": "murmur2_random",  # the partitioner of the Java clients
        }
    )
    try:
        for event in events:
            producer.produce(
                settings.topic_services, orjson.dumps(event), key=event["service_id"].encode()
            )
        left = producer.flush(30)
    except KafkaException as error:
        typer.echo(f"publishing to {settings.topic_services} failed: {error}", err=True)
        raise typer.Exit(1) from None
    if left:
        typer.echo(
            f"{left} events not delivered to {settings.topic_services} at "
            f"{settings.bootstrap_servers} within 30 s (is SLACLOCK_BOOTSTRAP_SERVERS right?)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"published {len(events)} events to {settings.topic_services}", err=True)
