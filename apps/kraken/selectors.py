"""Reads for Kraken reference data. Any spelling of a pair or asset is accepted."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.kraken import naming
from apps.kraken.models import Asset, AssetPair


def asset_pair_get(*, name: str) -> AssetPair:
    """The pair for ``BTC/USD``, ``XBTUSD``, ``XXBTZUSD`` or ``XBT/USD``.

    Raises AssetPair.DoesNotExist when Kraken has no such pair (or it was never refreshed).
    """
    raw = name.strip()
    pair = (
        AssetPair.objects.filter(
            Q(kraken_id__iexact=raw) | Q(altname__iexact=raw) | Q(wsname__iexact=raw)
        )
        .order_by("status")
        .first()
    )
    if pair is not None:
        return pair
    try:
        symbol = naming.pair_symbol(raw)
    except ValueError:
        raise AssetPair.DoesNotExist(f"No Kraken pair named {name!r}") from None
    return AssetPair.objects.get(symbol=symbol)


def asset_pair_list(*, tradable_only: bool = False) -> QuerySet[AssetPair]:
    pairs = AssetPair.objects.all()
    if tradable_only:
        pairs = pairs.filter(status="online")
    return pairs.order_by("symbol")


def asset_get(*, name: str) -> Asset:
    """The asset for ``BTC``, ``XBT`` or ``XXBT`` (a balance suffix such as ``.F`` is ignored)."""
    raw = name.strip()
    asset = Asset.objects.filter(Q(kraken_id__iexact=raw) | Q(altname__iexact=raw)).first()
    if asset is not None:
        return asset
    return Asset.objects.get(symbol=naming.normalize_asset(raw))
