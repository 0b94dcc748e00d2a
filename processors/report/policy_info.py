"""What a report takes from a policy file: contract terms, tier calendars and targets."""

from __future__ import annotations

from decimal import Decimal

from slaclock.processors.report.figures import ContractInfo, PolicyInfo, TierInfo
from slaclock.schemas.policy import Policy


def policy_info(policy: Policy) -> PolicyInfo:
    tiers = {
        name: TierInfo(
            calendar=str(tier.calendar),
            pause_on=tuple(sorted(str(s) for s in tier.pause_on)),
            targets={
                str(metric): {str(p): int(seconds) for p, seconds in by_priority.items()}
                for metric, by_priority in tier.targets.items()
            },
        )
        for name, tier in policy.tiers.items()
    }
    contracts = {}
    for customer, contract in policy.customers.items():
        terms = policy.tiers[contract.tier].credits if contract.tier in policy.tiers else None
        earn_back = terms.earn_back if terms is not None else None
        contracts[customer] = ContractInfo(
            tier=contract.tier,
            monthly_fee=Decimal(contract.monthly_fee),
            currency=contract.currency,
            timezone=str(contract.timezone),
            monthly_cap=(
                Decimal(str(terms.monthly_cap))
                if terms is not None and terms.monthly_cap is not None
                else None
            ),
            earn_back_months=earn_back.months if earn_back is not None else None,
            min_compliance=(
                Decimal(str(earn_back.min_compliance)) if earn_back is not None else None
            ),
            services=tuple(str(s) for s in getattr(contract, "services", ()) or ()),
        )
    group_zones = {
        name: str(policy.calendars[group.calendar].timezone)
        for name, group in policy.groups.items()
        if group.calendar in policy.calendars
    }
    return PolicyInfo(contracts=contracts, tiers=tiers, group_zones=group_zones)
