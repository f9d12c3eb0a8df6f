"""Writes for Kraken reference data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from apps.kraken import naming
from apps.kraken.client import kraken_public
from apps.kraken.models import Asset, AssetPair

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshSummary:
    assets: int
    pairs: int
    delisted: int


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _fee_schedule(value: object) -> list[list[str]]:
    """``[[0, 0.26], [50000, 0.24]]`` → ``[["0", "0.26"], ["50000", "0.24"]]`` (exact)."""
    if not isinstance(value, list):
        return []
    schedule = []
    for entry in value:
        if isinstance(entry, list | tuple) and len(entry) == 2:
            volume, percent = (_decimal(v) for v in entry)
            if volume is not None and percent is not None:
                schedule.append([str(volume), str(percent)])
    return schedule


def _asset_fields(kraken_id: str, data: dict[str, Any]) -> dict[str, Any]:
    altname = str(data.get("altname") or kraken_id)
    return {
        "altname": altname,
        "symbol": naming.normalize_asset(kraken_id),
        "aclass": str(data.get("aclass") or "currency"),
        "decimals": int(data.get("decimals") or 0),
        "display_decimals": int(data.get("display_decimals") or 0),
        "collateral_value": _decimal(data.get("collateral_value")),
        "status": str(data.get("status") or "enabled"),
    }


def _pair_fields(kraken_id: str, data: dict[str, Any]) -> dict[str, Any]:
    base_id = str(data.get("base") or "")
    quote_id = str(data.get("quote") or "")
    if base_id and quote_id:
        symbol = naming.pair_symbol_from_parts(base_id, quote_id)
    else:
        symbol = naming.pair_symbol(str(data.get("wsname") or data.get("altname") or kraken_id))
    base, _, quote = symbol.partition("/")
    return {
        "altname": str(data.get("altname") or kraken_id),
        "wsname": str(data.get("wsname") or ""),
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "base_kraken_id": base_id,
        "quote_kraken_id": quote_id,
        "aclass_base": str(data.get("aclass_base") or "currency"),
        "pair_decimals": int(data.get("pair_decimals") or 0),
        "lot_decimals": int(data.get("lot_decimals") or 0),
        "cost_decimals": int(data.get("cost_decimals") or 0),
        "lot_multiplier": int(data.get("lot_multiplier") or 1),
        "ordermin": _decimal(data.get("ordermin")) or Decimal(0),
        "costmin": _decimal(data.get("costmin")),
        "tick_size": _decimal(data.get("tick_size")),
        "status": str(data.get("status") or "online"),
        "fees": _fee_schedule(data.get("fees")),
        "fees_maker": _fee_schedule(data.get("fees_maker")),
        "fee_volume_currency": naming.normalize_asset(str(data.get("fee_volume_currency") or ""))
        if data.get("fee_volume_currency")
        else "",
    }


def reference_data_refresh() -> RefreshSummary:
    """Fetch Kraken's Assets and AssetPairs and upsert them.

    The network calls happen before the transaction; the database is then updated in one
    transaction, so readers never see half a refresh. Pairs missing from Kraken's answer are
    marked ``delisted``, not deleted.
    """
    assets: dict[str, Any] = kraken_public("Assets") or {}
    pairs: dict[str, Any] = kraken_public("AssetPairs") or {}
    return _store(assets=assets, pairs=pairs)


@transaction.atomic
def _store(*, assets: dict[str, Any], pairs: dict[str, Any]) -> RefreshSummary:
    seen_assets: set[str] = set()
    for kraken_id, data in sorted(assets.items()):
        if not isinstance(data, dict):
            continue
        fields = _asset_fields(kraken_id, data)
        if fields["symbol"] in seen_assets:
            # Two ids normalising to one symbol: keep the first (sorted) and say so.
            logger.warning("Kraken asset %s duplicates symbol %s", kraken_id, fields["symbol"])
            continue
        seen_assets.add(fields["symbol"])
        # A symbol may move between Kraken ids (renames); free it before the upsert.
        for old in Asset.objects.filter(symbol=fields["symbol"]).exclude(kraken_id=kraken_id):
            old.symbol = f"{old.symbol}#{old.kraken_id}"[:32]
            old.save(update_fields=["symbol", "updated_at"])
        Asset.objects.update_or_create(kraken_id=kraken_id, defaults=fields)

    seen_pairs: set[str] = set()
    for kraken_id, data in sorted(pairs.items()):
        if not isinstance(data, dict) or kraken_id.endswith(".d"):
            continue  # legacy dark-pool duplicates
        try:
            fields = _pair_fields(kraken_id, data)
        except ValueError:
            logger.warning("Kraken pair %s has an unreadable name; skipped", kraken_id)
            continue
        if fields["symbol"] in seen_pairs:
            logger.warning("Kraken pair %s duplicates symbol %s", kraken_id, fields["symbol"])
            continue
        seen_pairs.add(fields["symbol"])
        AssetPair.objects.filter(symbol=fields["symbol"]).exclude(kraken_id=kraken_id).update(
            symbol=f"{fields['symbol']}#{kraken_id}", status=AssetPair.STATUS_DELISTED
        )
        AssetPair.objects.update_or_create(kraken_id=kraken_id, defaults=fields)

    delisted = (
        AssetPair.objects.exclude(kraken_id__in=list(pairs))
        .exclude(status=AssetPair.STATUS_DELISTED)
        .update(status=AssetPair.STATUS_DELISTED)
    )
    return RefreshSummary(assets=len(seen_assets), pairs=len(seen_pairs), delisted=delisted)
