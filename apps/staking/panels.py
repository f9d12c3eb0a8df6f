"""Staking's panel on each member's home (issue 14 §1): what the organization holds in Earn and
its value, the requests under way (pending at Kraken, bonding, unbonding), the rewards earned
today, and the requests waiting on this member (an approval to decide, or their own request
queued). With an empty state that says what to do next. Registered by the composition layer
(kraken_portal.dashboard) with apps.orgs.dashboard; shown to the roles that may view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from apps.approvals.selectors import approvals_waiting
from apps.core.amounts import MISSING, format_number
from apps.orgs.dashboard import DashboardPanel
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.staking import selectors
from apps.staking.models import RewardSnapshot, StakeRequest
from apps.staking.services.common import KIND_ALLOCATE, KIND_DEALLOCATE

ZERO = Decimal(0)
Status = StakeRequest.Status
CURRENCY_PLACES = {"JPY": 0}


def money(value: Decimal | None, currency: str) -> str:
    if value is None:
        return MISSING
    return f"{format_number(value, CURRENCY_PLACES.get(currency, 2))} {currency}"


@dataclass(frozen=True)
class RewardsToday:
    value: Decimal  # in the reporting currency, of the holdings that could be counted
    since: datetime  # the start of the member's day
    complete: bool  # every holding had a price and a figure from before today


def _day_start() -> datetime:
    now = timezone.localtime()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def rewards_today(overview: selectors.Overview) -> RewardsToday:
    """Rewards so far (Kraken's, now) minus the rewards so far at the start of the member's
    day (the latest snapshot before it), per account and strategy, priced now."""
    since = _day_start()
    keys = {(p.account.pk, p.holding.strategy_id) for p in overview.positions}
    baseline: dict[tuple[int, str], Decimal] = {}
    snaps = (
        RewardSnapshot.objects.filter(account_id__in={k[0] for k in keys}, taken_at__lt=since)
        .order_by("account_id", "strategy_id", "-taken_at", "-id")
        # The latest per account and strategy (PostgreSQL and SQLite alike: no DISTINCT ON).
        .values_list("account_id", "strategy_id", "rewarded")
    )
    for account_id, strategy_id, rewarded in snaps:
        baseline.setdefault((account_id, strategy_id), rewarded)
    total = ZERO
    complete = True
    for position in overview.positions:
        key = (position.account.pk, position.holding.strategy_id)
        earned = position.holding.rewarded - baseline.get(key, ZERO)
        if key not in baseline:
            # Held since before today but never snapshotted then: what it earned today is
            # unknown (its rewards so far would overstate it); a holding new today starts at 0.
            complete = False
            continue
        value = position.value(max(earned, ZERO))
        if value is None:
            complete = False
            continue
        total += value
    return RewardsToday(value=total, since=since, complete=complete)


def staking_panel_context(membership: Membership) -> dict[str, Any]:
    org = membership.org
    base: dict[str, Any] = {
        "org": org,
        "can_request": membership.can(Capability.REQUEST_FUNDING),
        "can_manage_accounts": membership.can(Capability.MANAGE_POLICIES),
    }
    if not selectors.accounts(org=org).exists():
        return {**base, "has_accounts": False}  # one query for an organization not set up
    overview = selectors.overview(org=org)
    # Every count in one query.
    counts = StakeRequest.objects.filter(org=org).aggregate(
        pending=Count("pk", filter=Q(status__in=(Status.SENDING, Status.PENDING))),
        bonding=Count("pk", filter=Q(status=Status.BONDING)),
        unbonding=Count("pk", filter=Q(status=Status.UNBONDING)),
        mine_queued=Count(
            "pk",
            filter=Q(
                requested_by_id=membership.user_id,
                status__in=(Status.QUEUED, Status.AWAITING_APPROVAL),
            ),
        ),
    )
    waiting_approval = 0
    if membership.can(Capability.APPROVE_FUNDING):
        kinds = (KIND_ALLOCATE, KIND_DEALLOCATE)
        waiting_approval = approvals_waiting(membership=membership).filter(kind__in=kinds).count()
    today = rewards_today(overview) if overview.positions else None
    return {
        **base,
        **counts,
        "currency": overview.currency,
        "has_accounts": True,
        "unreadable": [entry for entry in overview.accounts if entry.error],
        "holds": bool(overview.positions),
        "value": money(overview.total_value, overview.currency),
        "value_raw": overview.total_value,
        "rewards_today": today,
        "rewards_today_text": money(today.value, overview.currency) if today else MISSING,
        "waiting_approval": waiting_approval,
        "tz": timezone.get_current_timezone(),
    }


def staking_panel(request: HttpRequest, membership: Membership) -> DashboardPanel | None:
    if not membership.can(Capability.VIEW):
        return None
    return DashboardPanel("staking/_home_panel.html", "Staking", staking_panel_context(membership))
