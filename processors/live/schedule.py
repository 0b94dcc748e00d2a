"""When the ticker ticks: a pure schedule over wall-clock seconds (no I/O, no clock reads)."""

from __future__ import annotations

from slaclock.processors.engine.instants import US_PER_SECOND


class TickSchedule:
    """When the ticker ticks: every `interval`, and at due timers (pure; seconds of wall time).

    A due timer arms an extra tick at `due + grace + margin`, or `min_gap` after the last
    tick if that instant has passed less than an interval ago; a timer due longer ago is
    the regular ticks' business (its partition is catching up, or lags).
    """

    def __init__(
        self, interval: float, grace: float, start: float, min_gap: float, margin: float
    ) -> None:
        self.interval = interval
        self.grace = grace
        self.min_gap = min_gap
        self.margin = margin
        self.regular_at = start + interval
        self.last_tick = start
        self.armed: float | None = None

    def wait(self, now: float, earliest_due_us: int | None) -> float:
        """Seconds until the next tick, given the earliest due timer (microseconds)."""
        if earliest_due_us is not None:
            at = earliest_due_us / US_PER_SECOND + self.grace + self.margin
            # A timer due less than an interval ago is still pending: the tick at its
            # instant came before its partition had caught up, so tick again (min_gap
            # apart) rather than leave it to the next regular tick.
            if at > now - self.interval:
                at = max(at, self.last_tick + self.min_gap)
                if self.armed is None or at < self.armed:
                    self.armed = at
        wake = self.regular_at if self.armed is None else min(self.regular_at, self.armed)
        return max(0.0, wake - now)

    def should_tick(self, now: float) -> bool:
        """True if a tick is due at `now`; then the next ones are scheduled from it."""
        regular = now >= self.regular_at
        timer = self.armed is not None and now >= self.armed
        if not (regular or timer):
            return False
        if regular:
            self.regular_at += self.interval
            if self.regular_at <= now:  # fell behind: resume the cadence from now
                self.regular_at = now + self.interval
        self.armed = None
        self.last_tick = now
        return True
