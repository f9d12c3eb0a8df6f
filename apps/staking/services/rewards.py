"""Rewards: snapshots of what each account holds in Earn (quantities and prices), and the daily
digest of what Earn paid."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.market.conversion import ConversionError, value_in
from apps.notifications.services import notify
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.staking import earn
from apps.staking.models import RewardSnapshot


def snapshot_account(account: KrakenAccount) -> list[RewardSnapshot]:
    """Record what `account` holds in Earn now, with the price of each asset in the
    organization's reporting currency. Skipped (empty) when Kraken cannot be read."""
    try:
        holdings = earn.allocations(account, fresh=True)
    except earn.EarnUnavailable:
        return []
    currency = account.org.reporting_currency
    now = timezone.now()
    rows = []
    for holding in holdings.values():
        try:
            price: Decimal | None = value_in(
                asset=holding.asset, quantity=Decimal(1), currency=currency
            ).rate
        except ConversionError:
            price = None
        rows.append(
            RewardSnapshot(
                account=account,
                strategy_id=holding.strategy_id,
                asset=holding.asset,
                taken_at=now,
                allocated=holding.allocated,
                in_transit=holding.in_transit,
                rewarded=holding.rewarded,
                price=price.quantize(Decimal(1).scaleb(-18)) if price is not None else None,
                currency=currency if price is not None else "",
            )
        )
    return RewardSnapshot.objects.bulk_create(rows)


def snapshots_take() -> int:
    """Beat: one snapshot per account with an Earn read key."""
    taken = 0
    for account in KrakenAccount.objects.select_related("org").filter(archived_at__isnull=True):
        try:
            earn.read_credential(account)
        except earn.EarnUnavailable:
            continue
        taken += len(snapshot_account(account))
    return taken


def rewards_digest_send(*, hours: int = 24) -> int:
    """Beat, daily: Kraken pays Earn rewards continuously (the sandbox accrues them by the
    second), so members hear once a day what was earned, per asset, instead of per payout."""
    from apps.orgs.models import Organization

    since = timezone.now() - timedelta(hours=hours)
    sent = 0
    for org in Organization.objects.all():
        earned: dict[str, Decimal] = {}
        snapshots = RewardSnapshot.objects.filter(account__org=org, taken_at__gte=since)
        firsts: dict[tuple[int, str], Decimal] = {}
        lasts: dict[tuple[int, str], tuple[str, Decimal]] = {}
        for snap in snapshots.order_by("taken_at", "id"):
            key = (snap.account_id, snap.strategy_id)
            firsts.setdefault(key, snap.rewarded)
            lasts[key] = (snap.asset, snap.rewarded)
        for key, (asset, last) in lasts.items():
            gained = last - firsts[key]
            if gained > 0:
                earned[asset] = earned.get(asset, Decimal(0)) + gained
        if not earned:
            continue
        members = Membership.objects.filter(org=org)
        user_ids = [m.user_id for m in members if m.can(Capability.REQUEST_FUNDING)]
        body = ", ".join(
            f"{amount.normalize():f} {asset}" for asset, amount in sorted(earned.items())
        )
        with transaction.atomic(durable=True):
            notify(
                org=org,
                user_ids=user_ids,
                kind="staking.rewards",
                title=f"Earn rewards in the last {hours} hours",
                body=body,
                link=f"/o/{org.slug}/staking/",
            )
        sent += 1
    return sent
