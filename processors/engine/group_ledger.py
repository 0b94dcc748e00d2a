"""Group statements (docs/semantics.md: Groups): one `sla.group_statement` per internal group
per month, in the time zone of the group's calendar.

Part of the ledger stage (`LedgerStage.groups`), driven by the same watermark: a month of
a group is closed at its end E once the least clock of every input partition has reached
E, so live and replay give the same statements. Its inputs are what stage 1 decided for
the group metrics (breaches, first met completions: `output["group"]` set) and the hold
facts stage 1 sends the ledger only (`sla.group_hold`: a hold `begun`, or a hold ended by a
`handoff` to another group), keyed by group so that one ledger task owns each group.

State: per group the months not yet closed (six counters each) and the last month end
closed; small, kept in the ledger's meta record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from slaclock.processors.engine.ids import output_event_id
from slaclock.processors.engine.instants import format_us, parse_instant
from slaclock.processors.engine.periods import Period, next_period, period_bounds, period_of
from slaclock.processors.engine.versions import PolicyBook

Output = dict[str, Any]

GROUP_HOLD = "sla.group_hold"
"""The internal record of a hold fact; it goes to the ledger only, never to a public topic."""
GROUP_METRICS = ("group_response", "group_resolution")

# counter slots of a group month (public: the group view reads the open month)
MET = 0  # + metric index (0: group_response, 1: group_resolution)
BREACHED = 2  # + metric index
HOLDS = 4
HANDOFFS = 5

Figures = Callable[[int, int], dict[str, Any]]


class GroupLedger:
    """The group months one ledger task owns (`owns(group)`)."""

    def __init__(self, versions: PolicyBook, owns: Callable[[str], bool], figures: Figures):
        self.versions = versions
        self.owns = owns
        self.figures = figures
        self.months: dict[str, dict[Period, list[int]]] = {}  # group -> period -> counters
        self.closed: dict[str, int] = {}  # group -> last month end closed
        self.closed_periods: dict[str, Period] = {}  # group -> the month that end closed
        self.dirty = False

    # -- inputs ---------------------------------------------------------------------------

    def zone(self, group: str, instant: int) -> ZoneInfo | None:
        """The time zone of the group's calendar in the version in force at `instant` (else
        in the latest version defining it)."""
        terms = self.versions.in_force(instant).policy.groups.get(group)
        if terms is None:
            for version_id in reversed(self.versions.ids()):
                terms = self.versions.get(version_id).policy.groups.get(group)
                if terms is not None:
                    break
        return None if terms is None else ZoneInfo(terms.calendar.timezone)

    def on_fact(self, output: Output, first_instant: int | None = None) -> None:
        """A group outcome or hold fact of an owned group (`first_instant`: the ledger's
        earliest input instant, where the group's months begin)."""
        group = output["group"]
        if not self.owns(group):
            return
        kind = output["type"]
        if kind == GROUP_HOLD:
            instant = parse_instant(output["at"])
            slot = HOLDS if output["hold"] == "begun" else HANDOFFS
        elif kind == "sla.breach":
            instant = parse_instant(output["decided_at"])
            slot = BREACHED + GROUP_METRICS.index(output["metric"])
        else:  # a first met completion
            instant = parse_instant(output["at"])
            slot = MET + GROUP_METRICS.index(output["metric"])
        # Only a group the version in force at the fact defines: which versions a ledger has
        # read by then (one published early with a later effective_at) must not matter.
        terms = self.versions.in_force(instant).policy.groups.get(group)
        if terms is None:
            return
        period = self.month_of(group, instant, ZoneInfo(terms.calendar.timezone), first_instant)
        counters = self.months.setdefault(group, {}).setdefault(period, [0] * 6)
        counters[slot] += 1
        self.dirty = True

    def month_of(
        self, group: str, instant: int, zone: ZoneInfo, first_instant: int | None = None
    ) -> Period:
        """The group's month that `instant` falls in. The months follow one another from the
        last one closed (else from the one `first_instant` falls in), each in the zone in
        force at its start, as `ends` closes them: a version that changes the group's time
        zone counts in the new zone from the month that follows, and an instant in the hours
        between the old zone's month end and the new one's belongs to one month only. Only
        versions in force at or before `instant` are asked. Without either anchor:
        `period_of` in `zone`, the group's zone in force at `instant`."""
        if group in self.closed:
            period, start = next_period(self.closed_period(group)), self.closed[group]
        elif first_instant is not None and first_instant <= instant:
            period, start = self._next_month(group, first_instant)
        else:
            return period_of(instant, zone)
        while True:
            month_zone = self.zone(group, start)
            end = period_bounds(period, zone if month_zone is None else month_zone)[1]
            if instant < end:
                return period
            period, start = next_period(period), end

    def closed_period(self, group: str) -> Period:
        """The month the group's last closed end closed (derived for a record from before
        months were kept with their ends)."""
        period = self.closed_periods.get(group)
        if period is None:
            end = self.closed[group]
            zone = self.zone(group, end - 1)
            period = period_of(end - 1, ZoneInfo("UTC") if zone is None else zone)
        return period

    # -- month ends -----------------------------------------------------------------------

    def groups(self) -> list[str]:
        """Owned groups any version defines, in name order."""
        names: set[str] = set()
        for version_id in self.versions.ids():
            names.update(self.versions.get(version_id).policy.groups)
        return sorted(g for g in names if self.owns(g))

    def ends(self, group: str, first_instant: int, limit: int | None) -> list[int]:
        """Month ends of `group` not yet closed, at or before `limit` (None: the next one)."""
        period, start = self._next_month(group, first_instant)
        found: list[int] = []
        while True:
            zone = self.zone(group, start)  # each month in the zone in force at its start
            if zone is None:
                return found
            end = period_bounds(period, zone)[1]
            if limit is None:
                return [end]
            if end > limit:
                return found
            found.append(end)
            period, start = next_period(period), end

    def _next_month(self, group: str, first_instant: int) -> tuple[Period, int]:
        """The group's first month not closed yet, and the instant it starts from."""
        closed = self.closed.get(group)
        if closed is not None:
            return next_period(self.closed_period(group)), closed
        zone = self.zone(group, first_instant)
        return period_of(first_instant, ZoneInfo("UTC") if zone is None else zone), first_instant

    def close(self, group: str, end: int, first_instant: int) -> list[Output]:
        """The statement of the group's month ending at `end` (the next of `ends`), if the
        version in force during its last instant defines the group."""
        after_a_month = group in self.closed
        period, begun = self._next_month(group, first_instant)
        self.closed[group] = end
        self.closed_periods[group] = period
        self.dirty = True
        version = self.versions.in_force(end - 1)
        terms = version.policy.groups.get(group)
        zone = self.zone(group, begun)
        if zone is None:
            return []
        # the month begins where the last one ended (after a time zone change, not at the
        # new zone's own first of the month)
        start = begun if after_a_month else period_bounds(period, zone)[0]
        counters = self.months.get(group, {}).pop(period, None) or [0] * 6
        for old in [p for p in self.months.get(group, {}) if p < period]:
            del self.months[group][old]  # facts of a month closed already (a zone change)
        if terms is None:
            return []
        metrics = {
            metric: self.figures(counters[MET + i], counters[BREACHED + i])
            for i, metric in enumerate(GROUP_METRICS)
        }
        overall = self.figures(
            counters[MET] + counters[MET + 1], counters[BREACHED] + counters[BREACHED + 1]
        )
        return [
            {
                "event_id": output_event_id("sla.group_statement", group, period),
                "type": "sla.group_statement",
                "group": group,
                "period": period,
                "at": format_us(end),
                "period_start": format_us(start),
                "metrics": metrics,
                "overall": overall,
                "holds": counters[HOLDS],
                "handoffs": counters[HANDOFFS],
                "policy_version": version.version_id,
            }
        ]

    # -- snapshot -------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        return {"months": self.months, "closed": self.closed, "periods": self.closed_periods}

    def restore(self, record: dict[str, Any]) -> None:
        self.months = {
            str(g): {str(p): [int(n) for n in c] for p, c in months.items()}
            for g, months in record.get("months", {}).items()
        }
        self.closed = {str(g): int(e) for g, e in record.get("closed", {}).items()}
        self.closed_periods = {str(g): str(p) for g, p in record.get("periods", {}).items()}
