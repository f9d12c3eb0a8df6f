"""Writes of the market app: a person's watchlist."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.market.models import WatchlistItem


@transaction.atomic
def watchlist_add(*, user: Any, symbol: str) -> WatchlistItem:
    """Follow `symbol` (idempotent: adding twice keeps one entry)."""
    item, _ = WatchlistItem.objects.get_or_create(user=user, symbol=symbol)
    return item


@transaction.atomic
def watchlist_remove(*, user: Any, symbol: str) -> None:
    WatchlistItem.objects.filter(user=user, symbol=symbol).delete()
