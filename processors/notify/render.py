"""The HTTP request each target kind gets for an output (pure: no clock, no I/O).

- webhook: the output itself as the JSON body; `Idempotency-Key: <event_id>:<target>`;
  `X-Slaclock-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, added per
  attempt by `signed_headers` (the timestamp is the attempt's, so receivers can refuse
  replays of old requests).
- slack: `{"text": ...}`, a readable line with ticket, metric, deadline and overrun.
- pagerduty: Events API v2; `trigger` for `sla.breach` and `resolve` for the `sla.completed`
  or `sla.cancelled` of a breached cycle, `dedup_key` = `<ticket>/<metric>/<cycle>` (then
  `/<group>` for a group metric); other
  types: no request.
  The resolve carries `after` = the mark its trigger leaves when acknowledged, so it is not
  sent before the trigger (which would leave the incident open).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slaclock.processors.notify.config import (
    AnyTarget,
    PagerDutyTarget,
    SlackTarget,
    WebhookTarget,
)

SIGNATURE_HEADER = "X-Slaclock-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Request:
    """One notification for one target, ready to POST (the same bytes on every attempt)."""

    target: str
    key: str  # the idempotency key: <event_id>:<target>
    url: str = field(repr=False)  # a Slack URL is a secret
    body: bytes = field(repr=False)  # a PagerDuty body holds the routing key
    headers: tuple[tuple[str, str], ...]
    signing_secret: str | None = field(default=None, repr=False)
    # A PagerDuty trigger leaves a mark once acknowledged; the resolve of the same dedup_key
    # waits for it (a breach and its completion are on different topics, read concurrently).
    marks: str | None = None
    after: str | None = None


def delivery_key(output: Mapping[str, Any], target: str) -> str:
    return f"{output.get('event_id')}:{target}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def signed_headers(request: Request, timestamp: int) -> dict[str, str]:
    """The request's headers for an attempt at `timestamp` (unix seconds)."""
    headers = dict(request.headers)
    if request.signing_secret is not None:
        headers[SIGNATURE_HEADER] = signature(request.signing_secret, timestamp, request.body)
    return headers


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def render(
    name: str, target: AnyTarget, output: Mapping[str, Any], secrets: Mapping[str, str]
) -> Request | None:
    """The request for `output` to target `name`, or None when this kind has nothing to send."""
    key = delivery_key(output, name)
    base = (
        ("Content-Type", "application/json"),
        (IDEMPOTENCY_HEADER, key),
        ("X-Slaclock-Event-Type", str(output.get("type"))),
    )
    if isinstance(target, WebhookTarget):
        return Request(
            name, key, target.url, _json(output), base, signing_secret=secrets[target.secret_env]
        )
    if isinstance(target, SlackTarget):
        return Request(
            name, key, secrets[target.url_env], _json({"text": slack_text(output)}), base
        )
    body = pagerduty_event(target, output, secrets[target.routing_key_env])
    if body is None:
        return None
    mark = f"trigger:{name}:{body['dedup_key']}"
    if body["event_action"] == "trigger":
        return Request(name, key, target.url, _json(body), base, marks=mark)
    return Request(name, key, target.url, _json(body), base, after=mark)


# --- PagerDuty ---------------------------------------------------------------------------


def dedup_key(output: Mapping[str, Any]) -> str:
    key = f"{output.get('ticket_id')}/{output.get('metric')}/{output.get('cycle')}"
    group = output.get("group")  # a group metric's cycles are numbered per group
    return key if group is None else f"{key}/{group}"


def ended_breached(output: Mapping[str, Any]) -> bool:
    """The output ends a breached cycle (its incident is resolved): a late completion, or a
    cancellation of a cycle that had breached."""
    kind = output.get("type")
    if kind == "sla.completed":
        return output.get("outcome") == "breached"
    return kind == "sla.cancelled" and output.get("breached") is True


def pagerduty_event(
    target: PagerDutyTarget, output: Mapping[str, Any], routing_key: str
) -> dict[str, Any] | None:
    kind = output.get("type")
    if ended_breached(output):
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(output),
        }
    if kind != "sla.breach":
        return None
    priority = str(output.get("priority"))
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(output),
        "payload": {
            "summary": slack_text(output)[:1024],
            "source": target.source,
            "severity": target.severity.get(priority, "error"),
            "timestamp": output.get("decided_at") or output.get("at"),
            "component": str(output.get("metric")),
            "group": str(output.get("customer_id")),
            "class": "sla.breach",
            "custom_details": dict(output),
        },
    }


# --- readable text -----------------------------------------------------------------------


def duration(seconds: float) -> str:
    """`3h 05m`, `4m 10s`, `12s`; a negative duration keeps its sign."""
    sign = "-" if seconds < 0 else ""
    total = round(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours:02d}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def overrun_seconds(output: Mapping[str, Any]) -> float | None:
    """How far past the target: decided_at - deadline for a breach, elapsed - target for a
    breached completion; None otherwise."""
    if output.get("type") == "sla.breach":
        deadline, decided = _instant(output.get("deadline")), _instant(output.get("decided_at"))
        if deadline is not None and decided is not None:
            return (decided - deadline).total_seconds()
    if output.get("type") == "sla.completed" and output.get("outcome") == "breached":
        elapsed, target = output.get("elapsed_seconds"), output.get("target_seconds")
        if isinstance(elapsed, int | float) and isinstance(target, int | float):
            return float(elapsed - target)
    return None


_CANCEL_REASONS = {
    "solved": "ticket solved",
    "closed": "ticket closed",
    "no_target": "no target for its priority",
    "hold_ended": "hold ended",
}


def slack_text(output: Mapping[str, Any]) -> str:
    kind = output.get("type")
    who = f"{output.get('customer_id')}, {output.get('tier')}"
    if output.get("priority") is not None:
        who += f", {output.get('priority')}"
    ticket = f"Ticket *{output.get('ticket_id')}* ({who})"
    metric = str(output.get("metric", "")).replace("_", " ")
    target = output.get("target_seconds")
    target_text = f"target {duration(target)}" if isinstance(target, int | float) else ""
    if kind == "sla.warning":
        threshold = output.get("threshold")
        share = f"{round(threshold * 100)}%" if isinstance(threshold, int | float) else "?"
        return (
            f":warning: {ticket}: {metric} at {share} of its {target_text}, "
            f"deadline {output.get('deadline')}"
        )
    if kind == "sla.breach":
        over = overrun_seconds(output)
        overrun = f", overrun {duration(over)} when decided" if over and over >= 1 else ""
        return (
            f":rotating_light: {ticket}: {metric} *breached* its {target_text}, "
            f"deadline {output.get('deadline')}{overrun}"
        )
    if kind == "sla.completed":
        elapsed = output.get("elapsed_seconds")
        took = f"took {duration(elapsed)}" if isinstance(elapsed, int | float) else ""
        if output.get("outcome") == "breached":
            over = overrun_seconds(output)
            overrun = f", overrun {duration(over)}" if over is not None else ""
            return f":x: {ticket}: {metric} completed late, {took} of {target_text}{overrun}"
        return f":white_check_mark: {ticket}: {metric} met, {took} of {target_text}"
    if kind == "sla.cancelled":
        elapsed = output.get("elapsed_seconds")
        after = f" after {duration(elapsed)}" if isinstance(elapsed, int | float) else ""
        why = _CANCEL_REASONS.get(str(output.get("reason")), str(output.get("reason")))
        late = ", it had breached" if output.get("breached") is True else ""
        return (
            f":heavy_minus_sign: {ticket}: {metric} ended without an outcome ({why}){after}{late}"
        )
    if kind == "sla.credit":
        return (
            f":moneybag: Credit for *{output.get('customer_id')}* ({output.get('tier')}): "
            f"{output.get('amount')} {output.get('currency')} ({output.get('percent')}%) "
            f"for {output.get('period')}, period total {output.get('period_total')}"
            + (" (capped)" if output.get("capped") else "")
        )
    if kind in ("sla.availability_warning", "sla.availability_breach"):
        service = f"Service *{output.get('service_id')}*"
        budget = output.get("budget_seconds")
        budget_text = (
            f"downtime budget {duration(budget)}" if isinstance(budget, int | float) else ""
        )
        if kind == "sla.availability_warning":
            threshold = output.get("threshold")
            share = f"{round(threshold * 100)}%" if isinstance(threshold, int | float) else "?"
            return (
                f":warning: {service}: {share} of its {budget_text} used in "
                f"{output.get('period')} (target {output.get('target_percent')}%)"
            )
        return (
            f":rotating_light: {service}: {budget_text} *exceeded* in {output.get('period')} "
            f"(target {output.get('target_percent')}%), at {output.get('at')}"
        )
    fields = ", ".join(
        f"{name} {output[name]}"
        for name in ("customer_id", "service_id", "ticket_id", "period", "at")
        if output.get(name) is not None
    )
    return f":information_source: {kind}: {fields}"
