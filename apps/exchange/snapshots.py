"""Balance snapshots: each wallet's quantity with the price used then (beat, hourly).

Quantities and prices, never totals (issue 10 §2): a snapshot taken while the organization
reported in USD can be valued in EUR later. The price is the conversion service's rate of one
unit of the asset in the organization's reporting currency at that moment
(apps.market.conversion.value_in); when no live price values it (no route, stale), the price
is left empty rather than guessed.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.core import amounts
from apps.exchange.models import AccountBalance, BalanceSnapshot
from apps.market.conversion import ConversionError, value_in


def balance_snapshots_take() -> int:
    """One BalanceSnapshot per non-empty wallet of every active account. Returns the count."""
    taken_at = timezone.now()
    rates: dict[tuple[str, str], Decimal | None] = {}
    snapshots: list[BalanceSnapshot] = []
    rows = (
        AccountBalance.objects.filter(account__archived_at__isnull=True)
        .exclude(balance=0)
        .select_related("account__org")
    )
    for row in rows:
        currency = row.account.org.reporting_currency
        key = (row.asset, currency)
        if key not in rates:
            try:
                rate = value_in(asset=row.asset, quantity=Decimal(1), currency=currency).rate
                rates[key] = amounts.to_storage(rate)
            except ConversionError:
                rates[key] = None
        price = rates[key]
        snapshots.append(
            BalanceSnapshot(
                account_id=row.account_id,
                asset=row.asset,
                wallet_type=row.wallet_type,
                wallet_id=row.wallet_id,
                quantity=row.balance,
                price=price,
                price_currency=currency if price is not None else "",
                taken_at=taken_at,
            )
        )
    with transaction.atomic():
        BalanceSnapshot.objects.bulk_create(snapshots)
    return len(snapshots)
