"""PagerDuty incidents of group metrics (docs/semantics.md: Groups): cycles are numbered per
group, so the group is part of the incident's key; customer metrics keep theirs."""

from __future__ import annotations

from slaclock.processors.notify.render import dedup_key


def test_two_groups_cycle_one_of_a_ticket_are_two_incidents() -> None:
    base = {"ticket_id": "T1", "metric": "group_response", "cycle": 1}
    tier1 = dedup_key({**base, "group": "tier1"})
    engineering = dedup_key({**base, "group": "engineering"})
    assert (tier1, engineering) == ("T1/group_response/1/tier1", "T1/group_response/1/engineering")


def test_a_customer_metrics_incident_key_is_unchanged() -> None:
    output = {"ticket_id": "T1", "metric": "resolution", "cycle": 1, "group": None}
    assert dedup_key(output) == "T1/resolution/1"
