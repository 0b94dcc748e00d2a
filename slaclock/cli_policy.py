"""`slaclock policy publish` and `slaclock policy show`: policy versions on `sla.policies`.

`publish` validates first and publishes nothing unless every check passes: the document
(every problem listed, as `policy check` does), the version id (new, and the document's own
`version` key, if any, the same), and the contracts in force at P (or later), whose tiers
and services the version must define. Exit status 1 with every problem, 2 for bad flags or
settings. `show` prints the version in force (or `--version ID`) as the document it was
published with, so an operator can get back the file that runs.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml

from slaclock.processors.engine.instants import US_PER_SECOND, format_us, to_us
from slaclock.schemas.policy import PolicyError, parse_policy, validate_policy_data

if TYPE_CHECKING:
    from slaclock.processors.live.policies import Recorded
    from slaclock.processors.settings import Settings

Timeline = list[tuple[int, int, "Recorded"]]


def register_policy_versions(policy_app: typer.Typer) -> None:
    policy_app.command("publish")(publish_command)
    policy_app.command("show")(show_command)


def _settings(bootstrap: str | None) -> Settings:
    from slaclock.processors.settings import SettingsError, load_settings

    try:
        return load_settings(**({"bootstrap_servers": bootstrap} if bootstrap else {}))
    except SettingsError as error:
        print(error, file=sys.stderr)
        raise typer.Exit(2) from None


def publish_command(
    file: Annotated[Path, typer.Argument(help="The whole policy document (YAML).")],
    version: Annotated[str, typer.Option("--version", help="The new version's id (unique).")],
    effective_at: Annotated[
        datetime | None,
        typer.Option(
            "--effective-at",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
            help="When it takes effect (RFC 3339 with an offset); never before now.",
        ),
    ] = None,
    applies_to: Annotated[
        str,
        typer.Option(
            "--applies-to", help="open (default: open tickets too) or new (new tickets only)."
        ),
    ] = "open",
    bootstrap: Annotated[str | None, typer.Option(help="Broker address.")] = None,
) -> None:
    """Validate a policy version and publish it on sla.policies (nothing if it is refused)."""
    from slaclock.processors.engine.contracts import ContractBook
    from slaclock.processors.engine.policy import compile_policy
    from slaclock.processors.engine.versions import PolicyBook
    from slaclock.processors.live.contracts import ContractsFollower
    from slaclock.processors.live.policies import (
        PolicyLogError,
        policy_document,
        publish_version,
        read_policy_log,
    )
    from slaclock.processors.policy_versions import (
        compile_version,
        contract_problems,
        effective_instant,
        version_problems,
    )
    from slaclock.schemas.policy_versions import PolicyPublication

    if applies_to not in ("open", "new"):
        print(f"--applies-to {applies_to!r}: use open or new", file=sys.stderr)
        raise typer.Exit(2)
    if effective_at is not None and effective_at.tzinfo is None:
        print("--effective-at needs an offset or Z", file=sys.stderr)
        raise typer.Exit(2)
    try:
        parse_policy(file.read_text(encoding="utf-8"), str(file))
    except (OSError, UnicodeDecodeError) as error:
        print(f"{file}: cannot read: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    except PolicyError as error:
        _refuse(file, [f"{p.location}: {p.message}" for p in error.problems])
    publication = PolicyPublication(
        version=version,
        effective_at=effective_at,
        applies_to="new" if applies_to == "new" else "open",
        policy=policy_document(file),
    )
    problems = version_problems(publication, str(file))
    settings = _settings(bootstrap)
    try:
        records = read_policy_log(settings)
    except PolicyLogError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    first = next((r for r in records if r.publication.first), None)
    if first is None:
        problems.append(
            f"{settings.topic_policies} holds no first version yet: start a worker first "
            "(it records its policy file as the first version)"
        )
        _refuse(file, problems)
    assert first is not None
    if any(r.publication.version == version for r in records):
        problems.append(
            f"version: {version!r} exists already; versions are never edited, use a new id"
        )
    now = int(time.time() * US_PER_SECOND)
    if not problems:
        first_policy = compile_version(first.publication, "first version")
        versions = PolicyBook(first_policy)
        contracts = ContractBook.from_policy(first_policy, versions)
        for record in records:
            if record.publication.first:
                continue
            compiled = compile_version(record.publication, record.publication.version)
            effective = record.publication.effective_at
            versions.add(
                record.publication.version,
                compiled,
                record.published_at,
                None if effective is None else to_us(effective),
                record.publication.applies_to,
            )
        follower = ContractsFollower(settings, contracts, "publish")
        try:
            follower.catch_up()
        finally:
            follower.close()
        data = {**publication.policy, "version": version}
        compiled = compile_policy(validate_policy_data(data, str(file)))
        problems += contract_problems(contracts, compiled, effective_instant(publication, now))
    if problems:
        _refuse(file, problems)
    try:
        publish_version(settings, publication)
    except PolicyLogError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    when = format_us(effective_instant(publication, now))
    print(
        f"published policy version {version!r} on {settings.topic_policies}: takes effect at "
        f"{when} (or when published, if later), applies to {publication.applies_to} tickets"
    )


def _refuse(file: Path, problems: list[str]) -> None:
    for problem in problems:
        print(f"{file}: {problem}", file=sys.stderr)
    count = len(problems)
    print(
        f"{count} problem{'s' if count != 1 else ''} in {file}: nothing published",
        file=sys.stderr,
    )
    raise typer.Exit(1)


def show_command(
    version: Annotated[
        str | None, typer.Option("--version", help="A version id (default: the one in force).")
    ] = None,
    list_versions: Annotated[
        bool, typer.Option("--list", help="List the versions instead of printing one.")
    ] = False,
    bootstrap: Annotated[str | None, typer.Option(help="Broker address.")] = None,
) -> None:
    """Print the policy version in force now (as YAML), or list every version."""
    from slaclock.processors.live.policies import PolicyLogError, read_policy_log
    from slaclock.processors.policy_versions import effective_instant

    settings = _settings(bootstrap)
    try:
        records = read_policy_log(settings)
    except PolicyLogError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    if not records:
        print(f"{settings.topic_policies} is empty: no worker has started yet", file=sys.stderr)
        raise typer.Exit(1)
    now = int(time.time() * US_PER_SECOND)
    timeline: Timeline = sorted(
        (
            -(2**62) if r.publication.first else effective_instant(r.publication, r.published_at),
            index,
            r,
        )
        for index, r in enumerate(records)
    )
    if list_versions:
        for effective, _, record in timeline:
            when = "from the beginning" if record.publication.first else format_us(effective)
            marker = "  (in force)" if record is _in_force(timeline, now) else ""
            print(f"{record.publication.version}\t{when}\t{record.publication.applies_to}{marker}")
        return
    chosen = (
        _in_force(timeline, now)
        if version is None
        else next((r for r in records if r.publication.version == version), None)
    )
    if chosen is None:
        print(f"no version {version!r} in {settings.topic_policies}", file=sys.stderr)
        raise typer.Exit(1)
    document = {**chosen.publication.policy, "version": chosen.publication.version}
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def _in_force(timeline: Timeline, now: int) -> Recorded | None:
    found = None
    for effective, _, record in timeline:
        if effective <= now:
            found = record
    return found
