"""The notification routing file (`SLACLOCK_NOTIFY_PATH`): targets, routes, delivery policy.

`parse_notify_config(text, source, env)` validates a YAML document and returns a
`NotifyConfig`, or raises `NotifyConfigError` listing every problem (unknown fields, bad
values, routes naming unknown targets, secret environment variables that are not set).
Secrets are read from `env` here and kept in `NotifyConfig.secrets`; they never appear in
problems, `repr` or logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

_STRICT = ConfigDict(extra="forbid", frozen=True)

Names = Annotated[list[str], Field(min_length=1)]
"""A match field: one value or a list of values (any of them matches)."""

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
HTTP_URL = r"^https?://[^\s/]+(/\S*)?$"

Severity = Literal["critical", "error", "warning", "info"]
DEFAULT_SEVERITY: dict[str, Severity] = {
    "urgent": "critical",
    "high": "error",
    "normal": "warning",
    "low": "info",
}
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"


def _listify(value: object) -> object:
    return [value] if isinstance(value, str) else value


class WebhookTarget(BaseModel):
    """A generic JSON webhook: the output as body, signed with HMAC-SHA256."""

    model_config = _STRICT
    kind: Literal["webhook"]
    url: str = Field(pattern=HTTP_URL)
    secret_env: str = Field(pattern=ENV_NAME, description="env var holding the signing secret")


class SlackTarget(BaseModel):
    """A Slack incoming webhook; its URL is a secret, so it comes from an env var."""

    model_config = _STRICT
    kind: Literal["slack"]
    url_env: str = Field(pattern=ENV_NAME)


class PagerDutyTarget(BaseModel):
    """PagerDuty Events API v2: trigger on a breach, resolve when its metric cycle completes."""

    model_config = _STRICT
    kind: Literal["pagerduty"]
    routing_key_env: str = Field(pattern=ENV_NAME)
    url: str = Field(PAGERDUTY_URL, pattern=HTTP_URL)
    source: str = Field("slaclock", min_length=1, description="payload.source")
    severity: dict[str, Severity] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY),
        description="priority -> PagerDuty severity; unknown priorities get 'error'",
    )


Target = Annotated[WebhookTarget | SlackTarget | PagerDutyTarget, Field(discriminator="kind")]


class Match(BaseModel):
    """Every field given must match (AND); a list matches any of its values (OR)."""

    model_config = _STRICT
    type: Names | None = None
    tier: Names | None = None
    priority: Names | None = None
    metric: Names | None = None
    customer: Names | None = None
    service: Names | None = None
    threshold_at_least: float | None = Field(None, ge=0, le=1)

    @field_validator("type", "tier", "priority", "metric", "customer", "service", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return _listify(value)


class Route(BaseModel):
    model_config = _STRICT
    name: str | None = None
    match: Match = Match.model_validate({})
    targets: Names

    @field_validator("targets", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return _listify(value)


class Delivery(BaseModel):
    """Retry policy; times in seconds."""

    model_config = _STRICT
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    initial_backoff_seconds: float = Field(1.0, gt=0)
    max_backoff_seconds: float = Field(60.0, gt=0)
    multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.2, ge=0, le=1, description="fraction of a backoff left to chance")
    max_age_seconds: float = Field(
        3600.0, gt=0, description="after this long since the output was written: dead letter"
    )
    resolve_wait_seconds: float = Field(
        60.0,
        ge=0,
        description="how long a PagerDuty resolve waits for its trigger to be acknowledged",
    )
    concurrency: int = Field(8, ge=1, le=256, description="requests in flight per target")
    delivered_ttl_seconds: float = Field(
        7 * 86400.0, gt=0, description="how long an acknowledged delivery is remembered"
    )


class NotifyDocument(BaseModel):
    model_config = _STRICT
    targets: dict[str, Target] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)
    delivery: Delivery = Delivery.model_validate({})
    topics: list[str] | None = Field(
        None, min_length=1, description="output topics to read (default: every output topic)"
    )


@dataclass(frozen=True)
class NotifyConfig:
    """A validated routing file with its secrets resolved."""

    document: NotifyDocument
    secrets: Mapping[str, str] = field(repr=False)  # env var name -> value

    @property
    def targets(self) -> dict[str, WebhookTarget | SlackTarget | PagerDutyTarget]:
        return self.document.targets

    @property
    def routes(self) -> list[Route]:
        return self.document.routes

    @property
    def delivery(self) -> Delivery:
        return self.document.delivery


@dataclass(frozen=True, slots=True)
class NotifyProblem:
    file: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.message}"


class NotifyConfigError(Exception):
    """The routing file was refused; `problems` lists everything wrong with it."""

    def __init__(self, problems: Sequence[NotifyProblem]) -> None:
        super().__init__(list(problems))
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


_TOP = "(top level)"


def _dotted(loc: Sequence[str | int]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in ("webhook", "slack", "pagerduty") and parts and parts[-1] != "targets":
            continue  # the union tag pydantic adds inside a target
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or _TOP


def _validation_problems(error: ValidationError, source: str) -> list[NotifyProblem]:
    problems = []
    for item in error.errors(include_url=False):
        kind = item["type"]
        if kind == "missing":
            message = "required field is missing"
        elif kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "union_tag_invalid":
            message = "kind must be one of webhook, slack, pagerduty"
        elif kind == "union_tag_not_found":
            message = "required field 'kind' is missing (webhook, slack or pagerduty)"
        elif kind == "string_pattern_mismatch" and str(item["loc"][-1]).endswith("_env"):
            message = "must be an environment variable name"
        elif kind == "string_pattern_mismatch" and item["loc"][-1] == "url":
            message = "must be an http:// or https:// URL"
        else:
            message = item["msg"]
        problems.append(NotifyProblem(source, _dotted(item["loc"]), message))
    return problems


AnyTarget = WebhookTarget | SlackTarget | PagerDutyTarget


def _secret_variable(target: AnyTarget) -> tuple[str, str]:
    """(field name, environment variable) of the target's secret."""
    if isinstance(target, WebhookTarget):
        return "secret_env", target.secret_env
    if isinstance(target, SlackTarget):
        return "url_env", target.url_env
    return "routing_key_env", target.routing_key_env


def _unset(source: str, name: str, env_field: str, variable: str) -> NotifyProblem:
    return NotifyProblem(
        source,
        f"targets.{name}.{env_field}",
        f"environment variable {variable} is not set (it holds the secret; or set "
        f"{variable}_FILE to a file holding it)",
    )


def _reference_problems(
    targets: Mapping[str, AnyTarget | None],
    routes: Sequence[Route | None],
    source: str,
    env: Mapping[str, str],
) -> tuple[list[NotifyProblem], dict[str, str]]:
    """Routes naming unknown targets, unset secrets, unused targets.

    A None target or route failed validation (its problems are listed already): a None
    target still counts as a known name, a None route is skipped.
    """
    problems: list[NotifyProblem] = []
    secrets: dict[str, str] = {}
    known = ", ".join(sorted(targets))
    for i, route in enumerate(routes):
        for j, name in enumerate(route.targets if route is not None else []):
            if name not in targets:
                problems.append(
                    NotifyProblem(
                        source,
                        f"routes[{i}].targets[{j}]",
                        f"unknown target {name!r} (targets: {known})",
                    )
                )
    for name, target in targets.items():
        if target is None:
            continue
        env_field, variable = _secret_variable(target)
        value = env.get(variable, "")
        if not value:
            problems.append(_unset(source, name, env_field, variable))
            continue
        secrets[variable] = value
        if isinstance(target, SlackTarget) and not value.startswith(("http://", "https://")):
            problems.append(
                NotifyProblem(
                    source,
                    f"targets.{name}.url_env",
                    f"environment variable {variable} must hold an http(s) URL",
                )
            )
    if all(route is not None for route in routes):
        used = {name for route in routes if route is not None for name in route.targets}
        for name in sorted(set(targets) - used):
            problems.append(
                NotifyProblem(source, f"targets.{name}", "no route sends to this target")
            )
    return problems, secrets


def parse_notify_config(text: str, source: str, env: Mapping[str, str]) -> NotifyConfig:
    """Validate a routing document; raises `NotifyConfigError` with every problem."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else _TOP
        raise NotifyConfigError([NotifyProblem(source, where, "invalid YAML")]) from None
    if not isinstance(data, dict):
        raise NotifyConfigError(
            [NotifyProblem(source, _TOP, "expected a mapping with targets and routes")]
        )
    try:
        doc = NotifyDocument.model_validate(data)
    except ValidationError as error:
        problems = _validation_problems(error, source)
        # References and secrets too, as far as the parts that did validate allow.
        targets, routes = _partial(data)
        problems += _reference_problems(targets, routes, source, env)[0]
        problems += _unset_secrets_of_invalid_targets(data, targets, source, env)
        raise NotifyConfigError(sorted(problems, key=_order(data))) from None
    problems, secrets = _reference_problems(doc.targets, doc.routes, source, env)
    if problems:
        raise NotifyConfigError(problems)
    return NotifyConfig(document=doc, secrets=secrets)


_TARGET = TypeAdapter(Target)


def _partial(data: Mapping[str, Any]) -> tuple[dict[str, AnyTarget | None], list[Route | None]]:
    """Each target and route validated on its own; None where one is invalid."""
    targets: dict[str, AnyTarget | None] = {}
    raw_targets = data.get("targets")
    if isinstance(raw_targets, dict):
        for name, raw in raw_targets.items():
            try:
                targets[str(name)] = _TARGET.validate_python(raw)
            except ValidationError:
                targets[str(name)] = None
    routes: list[Route | None] = []
    raw_routes = data.get("routes")
    if isinstance(raw_routes, list):
        for raw in raw_routes:
            try:
                routes.append(Route.model_validate(raw))
            except ValidationError:
                names = raw.get("targets") if isinstance(raw, dict) else None
                names = [names] if isinstance(names, str) else names
                if isinstance(names, list) and all(isinstance(n, str) for n in names):
                    # Its targets can still be checked against the known names.
                    routes.append(Route.model_construct(targets=names))
                else:
                    routes.append(None)
    return targets, routes


_ENV_FIELDS = ("secret_env", "url_env", "routing_key_env")


def _unset_secrets_of_invalid_targets(
    data: Mapping[str, Any],
    targets: Mapping[str, AnyTarget | None],
    source: str,
    env: Mapping[str, str],
) -> list[NotifyProblem]:
    problems = []
    raw_targets = data.get("targets")
    for name, target in targets.items():
        raw = raw_targets.get(name) if isinstance(raw_targets, dict) else None
        if target is not None or not isinstance(raw, dict):
            continue
        for env_field in _ENV_FIELDS:
            variable = raw.get(env_field)
            if isinstance(variable, str) and variable and not env.get(variable):
                problems.append(_unset(source, name, env_field, variable))
    return problems


def _order(data: Mapping[str, Any]) -> Any:
    """Problems in document order: targets, routes, delivery, the rest."""
    sections = [str(k) for k in data]

    def key(problem: NotifyProblem) -> tuple[int, str]:
        head = problem.location.split(".", 1)[0].split("[", 1)[0]
        return (sections.index(head) if head in sections else len(sections), "")

    return key
