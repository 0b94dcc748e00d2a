"""The pure parts of notifications: routing, rendering, signatures, retry decisions."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slaclock.processors.notify.config import NotifyConfig, NotifyConfigError, parse_notify_config
from slaclock.processors.notify.render import (
    dedup_key,
    overrun_seconds,
    render,
    signature,
    signed_headers,
    slack_text,
)
from slaclock.processors.notify.retry import (
    SECOND,
    Attempt,
    DeadLetter,
    Delivered,
    RetryAt,
    RetryPolicy,
    backoff_us,
    decide,
    expired,
    parse_retry_after,
    still_remembered,
)
from slaclock.processors.notify.routing import route
from tests.notify.harness import credit_output, ticket_output

ENV = {"HOOK_SECRET": "k3y", "SLACK_URL": "https://hooks.slack.test/T/B/X", "PD_KEY": "pd"}
BASE = """\
targets:
  hook: {kind: webhook, url: 'https://hook.test/in', secret_env: HOOK_SECRET}
  chat: {kind: slack, url_env: SLACK_URL}
  pager: {kind: pagerduty, routing_key_env: PD_KEY}
routes:
"""


def config(routes: str, env: dict[str, str] | None = None) -> NotifyConfig:
    return parse_notify_config(BASE + routes, "n.yaml", ENV if env is None else env)


POLICY = RetryPolicy(
    initial_backoff_us=1 * SECOND,
    max_backoff_us=60 * SECOND,
    multiplier=2.0,
    jitter=0.2,
    max_age_us=3600 * SECOND,
)
T0 = 1_800_000_000 * SECOND  # a named instant: the output was written


# --- routing ------------------------------------------------------------------------------


def test_a_route_matches_when_every_named_field_agrees() -> None:
    cfg = config(
        "  - {match: {type: sla.breach, priority: [urgent, high], tier: enterprise}, "
        "targets: [pager]}\n  - {match: {type: sla.warning}, targets: [chat, hook]}\n"
    )
    assert route(cfg, ticket_output("sla.breach", "T1", priority="high")) == ["pager"]
    assert route(cfg, ticket_output("sla.breach", "T1", priority="low")) == []
    assert route(cfg, ticket_output("sla.breach", "T1", tier="basic")) == []
    assert route(cfg, ticket_output("sla.completed", "T1")) == []


def test_a_target_named_by_several_routes_gets_the_output_once() -> None:
    cfg = config(
        "  - {match: {type: sla.warning}, targets: [chat, hook]}\n"
        "  - {match: {customer: acme}, targets: [hook, pager]}\n"
    )
    assert route(cfg, ticket_output("sla.warning", "T1")) == ["chat", "hook", "pager"]


def test_threshold_at_least_matches_only_outputs_with_a_high_enough_threshold() -> None:
    cfg = config(
        "  - {match: {threshold_at_least: 0.75}, targets: [chat]}\n"
        "  - {match: {type: never}, targets: [hook, pager]}\n"
    )
    assert route(cfg, ticket_output("sla.warning", "T1", threshold=0.75)) == ["chat"]
    assert route(cfg, ticket_output("sla.warning", "T1", threshold=0.5)) == []
    assert route(cfg, ticket_output("sla.breach", "T1")) == []  # no threshold at all


def test_new_output_types_are_routed_on_their_fields() -> None:
    cfg = config(
        "  - {match: {type: sla.availability_breach, service: portal}, targets: [hook]}\n"
        "  - {match: {type: sla.statement}, targets: [chat, pager]}\n"
    )
    availability = {"event_id": "a1", "type": "sla.availability_breach", "service_id": "portal"}
    assert route(cfg, availability) == ["hook"]
    assert route(cfg, {**availability, "service_id": "api"}) == []


# --- rendering ----------------------------------------------------------------------------


def test_webhook_body_is_the_output_with_an_idempotency_key_per_target() -> None:
    cfg = config("  - {targets: [hook, chat, pager]}\n")
    output = ticket_output("sla.warning", "T1")
    request = render("hook", cfg.targets["hook"], output, cfg.secrets)
    assert request is not None
    assert json.loads(request.body) == output
    headers = dict(request.headers)
    assert headers["Idempotency-Key"] == f"{output['event_id']}:hook"
    assert request.url == "https://hook.test/in"


def test_the_signature_is_an_hmac_of_timestamp_and_body_that_a_receiver_can_check() -> None:
    cfg = config("  - {targets: [hook, chat, pager]}\n")
    request = render("hook", cfg.targets["hook"], ticket_output("sla.breach", "T1"), cfg.secrets)
    assert request is not None
    header = signed_headers(request, 1_800_000_123)["X-Slaclock-Signature"]
    t, v1 = (part.split("=", 1)[1] for part in header.split(","))
    assert t == "1800000123"
    expected = hmac.new(b"k3y", b"1800000123." + request.body, hashlib.sha256).hexdigest()
    assert v1 == expected
    assert signature("k3y", 1_800_000_124, request.body) != header  # the time is signed too


def test_slack_gets_a_readable_line_with_ticket_metric_deadline_and_overrun() -> None:
    breach = ticket_output(
        "sla.breach", "T-42", deadline="2026-11-30T10:00:00Z", decided_at="2026-11-30T10:01:05Z"
    )
    text = slack_text(breach)
    assert "T-42" in text and "first response" in text
    assert "2026-11-30T10:00:00Z" in text and "overrun 1m 05s" in text
    late = ticket_output("sla.completed", "T-42", elapsed_seconds=3600 + 125)
    assert "overrun 2m 05s" in slack_text(late)
    assert overrun_seconds(ticket_output("sla.warning", "T-42")) is None
    assert "50.00 EUR" in slack_text(credit_output("acme"))


def test_pagerduty_triggers_on_a_breach_and_resolves_when_its_cycle_completes() -> None:
    cfg = config("  - {targets: [hook, chat, pager]}\n")
    pager = cfg.targets["pager"]
    breach = ticket_output("sla.breach", "T1", metric="resolution", cycle=2, priority="high")
    trigger = render("pager", pager, breach, cfg.secrets)
    assert trigger is not None
    body = json.loads(trigger.body)
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "T1/resolution/2" == dedup_key(breach)
    assert body["payload"]["severity"] == "error"
    assert body["routing_key"] == "pd"
    assert {"summary", "source", "severity"} <= set(body["payload"])
    done = ticket_output("sla.completed", "T1", metric="resolution", cycle=2, outcome="breached")
    resolve = render("pager", pager, done, cfg.secrets)
    assert resolve is not None
    assert json.loads(resolve.body) == {
        "routing_key": "pd",
        "event_action": "resolve",
        "dedup_key": "T1/resolution/2",
    }
    # read from another topic, the resolve may come first: it waits for the trigger's mark
    assert trigger.marks == resolve.after == "trigger:pager:T1/resolution/2"
    assert trigger.after is None and resolve.marks is None


def test_pagerduty_resolves_a_breached_cycle_that_was_cancelled() -> None:
    cfg = config("  - {targets: [hook, chat, pager]}\n")
    pager = cfg.targets["pager"]
    cancelled = ticket_output("sla.cancelled", "T1", metric="next_response", cycle=3)
    resolve = render("pager", pager, cancelled, cfg.secrets)
    assert resolve is not None
    assert json.loads(resolve.body) == {
        "routing_key": "pd",
        "event_action": "resolve",
        "dedup_key": "T1/next_response/3",
    }
    assert resolve.after == "trigger:pager:T1/next_response/3"
    quiet = ticket_output("sla.cancelled", "T1", breached=False)  # no incident was opened
    assert render("pager", pager, quiet, cfg.secrets) is None


def test_a_route_naming_completions_takes_cancellations_too() -> None:
    cfg = config(
        "  - {match: {type: [sla.breach, sla.completed], priority: urgent}, targets: [pager]}\n"
        "  - {match: {type: sla.cancelled}, targets: [hook]}\n"
        "  - {match: {type: sla.credit}, targets: [chat]}\n"
    )
    assert route(cfg, ticket_output("sla.cancelled", "T1")) == ["pager", "hook"]
    assert route(cfg, ticket_output("sla.cancelled", "T1", priority="low")) == ["hook"]
    assert route(cfg, ticket_output("sla.warning", "T1")) == []


def test_slack_says_why_a_cycle_ended_without_an_outcome() -> None:
    cancelled = ticket_output("sla.cancelled", "T9", metric="next_response", reason="closed")
    text = slack_text(cancelled)
    assert "T9" in text and "next response" in text
    assert "ticket closed" in text and "1h 01m" in text and "it had breached" in text


def test_pagerduty_has_nothing_to_send_for_a_met_cycle_or_a_warning() -> None:
    cfg = config("  - {targets: [hook, chat, pager]}\n")
    met = ticket_output("sla.completed", "T1", outcome="met")
    assert render("pager", cfg.targets["pager"], met, cfg.secrets) is None
    warning = ticket_output("sla.warning", "T1")
    assert render("pager", cfg.targets["pager"], warning, cfg.secrets) is None


def test_secrets_stay_out_of_reprs() -> None:
    cfg = config("  - {targets: [hook, chat, pager]}\n")
    request = render("chat", cfg.targets["chat"], ticket_output("sla.breach", "T1"), cfg.secrets)
    assert "hooks.slack.test" not in repr(request)
    assert "k3y" not in repr(cfg) and "hooks.slack.test" not in repr(cfg)


def test_config_refuses_unset_secret_variables_and_unknown_targets() -> None:
    with pytest.raises(NotifyConfigError) as error:
        config("  - {targets: [hook, chat, pager, nobody]}\n", env={"PD_KEY": "x"})
    problems = [str(p) for p in error.value.problems]
    assert problems == [
        "n.yaml: routes[0].targets[3]: unknown target 'nobody' (targets: chat, hook, pager)",
        "n.yaml: targets.hook.secret_env: environment variable HOOK_SECRET is not set "
        "(it holds the secret; or set HOOK_SECRET_FILE to a file holding it)",
        "n.yaml: targets.chat.url_env: environment variable SLACK_URL is not set "
        "(it holds the secret; or set SLACK_URL_FILE to a file holding it)",
    ]


# --- retry decisions ----------------------------------------------------------------------


def test_a_2xx_answer_is_delivered() -> None:
    assert decide(POLICY, Attempt(202), 1, T0, T0, 0.5) == Delivered()


def test_a_500_is_retried_after_an_exponential_backoff() -> None:
    first = decide(POLICY, Attempt(500), 1, T0, T0, 1.0)
    third = decide(POLICY, Attempt(500), 3, T0, T0, 1.0)
    assert first == RetryAt(T0 + 1 * SECOND, "HTTP 500")
    assert third == RetryAt(T0 + 4 * SECOND, "HTTP 500")


def test_retry_after_is_honoured_on_429_and_503_when_longer_than_the_backoff() -> None:
    asked = decide(POLICY, Attempt(429, retry_after="7"), 1, T0, T0, 0.0)
    assert asked == RetryAt(T0 + 7 * SECOND, "HTTP 429")
    shorter = decide(POLICY, Attempt(503, retry_after="0"), 3, T0, T0, 1.0)
    assert shorter == RetryAt(T0 + 4 * SECOND, "HTTP 503")
    ignored_on_500 = decide(POLICY, Attempt(500, retry_after="30"), 1, T0, T0, 1.0)
    assert ignored_on_500 == RetryAt(T0 + 1 * SECOND, "HTTP 500")


def test_retry_after_as_an_http_date() -> None:
    # T0 = 2027-01-15T08:00:00Z
    assert parse_retry_after("Fri, 15 Jan 2027 08:00:09 GMT", T0) == 9 * SECOND
    assert parse_retry_after("in a while", T0) is None
    assert parse_retry_after(None, T0) is None


def test_a_refusal_that_will_not_change_is_dead_lettered_at_once() -> None:
    decision = decide(POLICY, Attempt(400, "invalid event"), 1, T0, T0, 0.5)
    assert decision == DeadLetter("refused: HTTP 400: invalid event (not retried)")
    assert isinstance(decide(POLICY, Attempt(408), 1, T0, T0, 0.5), RetryAt)


def test_a_retry_past_the_maximum_age_is_a_dead_letter_with_the_last_error() -> None:
    now = T0 + 3599 * SECOND
    decision = decide(POLICY, Attempt(None, "ClientConnectorError: refused"), 12, T0, now, 0.0)
    assert decision == DeadLetter(
        "max age 3600 s reached after 12 attempts; last: ClientConnectorError: refused"
    )
    assert expired(POLICY, T0, T0 + 3600 * SECOND + 1)
    assert not expired(POLICY, T0, T0 + 3600 * SECOND)


@given(attempts=st.integers(1, 60), rand=st.floats(0, 1, exclude_max=True))
def test_backoff_grows_is_capped_and_keeps_its_jitter_in_bounds(attempts: int, rand: float) -> None:
    delay = backoff_us(POLICY, attempts, rand)
    base = min(60 * SECOND, SECOND * 2 ** (attempts - 1))
    assert round(base * 0.8) <= delay <= base
    assert backoff_us(POLICY, attempts + 1, rand) >= delay


def test_an_acknowledged_key_is_remembered_for_its_ttl_and_then_forgotten() -> None:
    ttl = 7 * 86400 * SECOND
    assert still_remembered(T0, T0 + ttl, ttl)
    assert not still_remembered(T0, T0 + ttl + 1, ttl)


def test_availability_alerts_read_well_in_slack() -> None:
    warning = {
        "type": "sla.availability_warning",
        "service_id": "portal",
        "period": "2026-11",
        "threshold": 0.5,
        "budget_seconds": 12960,
        "target_percent": "99.5",
    }
    assert slack_text(warning) == (
        ":warning: Service *portal*: 50% of its downtime budget 3h 36m used in 2026-11 "
        "(target 99.5%)"
    )
    breach = {**warning, "type": "sla.availability_breach", "at": "2026-11-20T03:00:00Z"}
    assert "*exceeded* in 2026-11" in slack_text(breach)
