"""What happens after a delivery attempt: delivered, retry at some instant, or dead letter.

Pure: the caller passes the instants (integer microseconds UTC) and a random number in
[0, 1) for the jitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from slaclock.processors.notify.config import Delivery

SECOND = 1_000_000

# 4xx answers worth retrying: timeout, too early, too many requests.
_RETRYABLE_4XX = frozenset({408, 425, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_backoff_us: int
    max_backoff_us: int
    multiplier: float
    jitter: float
    max_age_us: int

    @classmethod
    def from_config(cls, delivery: Delivery) -> RetryPolicy:
        return cls(
            initial_backoff_us=round(delivery.initial_backoff_seconds * SECOND),
            max_backoff_us=round(delivery.max_backoff_seconds * SECOND),
            multiplier=delivery.multiplier,
            jitter=delivery.jitter,
            max_age_us=round(delivery.max_age_seconds * SECOND),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one HTTP attempt gave: a status (None when no answer) and an error text."""

    status: int | None
    error: str | None = None
    retry_after: str | None = None  # the Retry-After header as received


@dataclass(frozen=True, slots=True)
class Delivered:
    pass


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: int
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str


Decision = Delivered | RetryAt | DeadLetter


def describe(attempt: Attempt) -> str:
    if attempt.status is None:
        return attempt.error or "no answer"
    return f"HTTP {attempt.status}" + (f": {attempt.error}" if attempt.error else "")


def backoff_us(policy: RetryPolicy, attempts: int, rand: float) -> int:
    """Delay after the `attempts`-th failed attempt: exponential, capped, with jitter.

    The last `jitter` fraction of the delay is random, so concurrent retries spread out.
    """
    base = min(
        float(policy.max_backoff_us),
        policy.initial_backoff_us * policy.multiplier ** max(attempts - 1, 0),
    )
    return round(base * (1.0 - policy.jitter) + base * policy.jitter * rand)


def parse_retry_after(value: str | None, now: int) -> int | None:
    """Retry-After (delay seconds or an HTTP date) as a delay in microseconds; None if absent."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text) * SECOND
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    at = round(when.timestamp() * SECOND)
    return max(at - now, 0)


def decide(
    policy: RetryPolicy,
    attempt: Attempt,
    attempts: int,
    born: int,
    now: int,
    rand: float,
) -> Decision:
    """The decision after the `attempts`-th attempt (1-based) of a notification born at `born`.

    2xx: delivered. A 4xx other than 408/425/429 will not get better: dead letter now.
    Otherwise retry after the backoff, or after Retry-After (429/503) when that is longer;
    a retry that would start past born + max age is a dead letter instead.
    """
    status = attempt.status
    if status is not None and 200 <= status < 300:
        return Delivered()
    reason = describe(attempt)
    if status is not None and 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return DeadLetter(f"refused: {reason} (not retried)")
    delay = backoff_us(policy, attempts, rand)
    if status in _RETRY_AFTER_STATUSES:
        asked = parse_retry_after(attempt.retry_after, now)
        if asked is not None:
            delay = max(delay, asked)
    at = now + delay
    if at - born > policy.max_age_us:
        return DeadLetter(
            f"max age {policy.max_age_us / SECOND:g} s reached after {attempts} "
            f"attempt{'s' if attempts != 1 else ''}; last: {reason}"
        )
    return RetryAt(at=at, reason=reason)


def expired(policy: RetryPolicy, born: int, now: int) -> bool:
    """True when a notification is already past its maximum age (e.g. read long after)."""
    return now - born > policy.max_age_us


def still_remembered(delivered_at: int, now: int, ttl: int) -> bool:
    """An acknowledged key delivered at `delivered_at` still prevents a resend at `now`."""
    return now - delivered_at <= ttl
