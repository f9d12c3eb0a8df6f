"""Writes of the market app: a person's watchlist."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.market.models import MarketPreference, WatchlistItem


@transaction.atomic
def watchlist_add(*, user: Any, symbol: str) -> WatchlistItem:
    """Follow `symbol` (idempotent: adding twice keeps one entry)."""
    item, _ = WatchlistItem.objects.get_or_create(user=user, symbol=symbol)
    return item


@transaction.atomic
def watchlist_remove(*, user: Any, symbol: str) -> None:
    WatchlistItem.objects.filter(user=user, symbol=symbol).delete()


UNKNOWN_LAYOUT = "Choose tiles or table."


@transaction.atomic
def market_layout_set(*, user: Any, layout: str) -> MarketPreference:
    """Remember how `user` wants the markets overview laid out (tiles or table)."""
    if layout not in MarketPreference.Layout.values:
        raise ValidationError(UNKNOWN_LAYOUT)
    preference, _ = MarketPreference.objects.update_or_create(
        user=user, defaults={"layout": layout}
    )
    return preference
