"""Reference data: Kraken's assets and pairs cached in the database from the sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.kraken import naming, selectors
from apps.kraken.client import kraken_public
from apps.kraken.models import Asset, AssetPair
from apps.kraken.services import reference_data_refresh
from apps.kraken.tasks import refresh_reference_data

pytestmark = pytest.mark.django_db


def test_a_refresh_stores_every_pair_with_its_decimals_and_minimums(kraken_sandbox: Any) -> None:
    summary = reference_data_refresh()
    raw = kraken_public("AssetPairs")
    assert summary.pairs == len(raw) >= 12
    assert AssetPair.objects.count() == summary.pairs
    for kraken_id, data in raw.items():
        pair = AssetPair.objects.get(kraken_id=kraken_id)
        assert pair.pair_decimals == data["pair_decimals"]
        assert pair.lot_decimals == data["lot_decimals"]
        assert pair.cost_decimals == data["cost_decimals"]
        assert pair.ordermin == Decimal(data["ordermin"])
        assert pair.tick_size == Decimal(data["tick_size"])
        assert pair.symbol == naming.pair_symbol_from_parts(data["base"], data["quote"])
        assert pair.fees
        assert all(len(step) == 2 for step in pair.fees)


def test_pairs_and_assets_are_found_by_any_spelling(kraken_sandbox: Any) -> None:
    reference_data_refresh()
    for name in ("BTC/USD", "XBTUSD", "XXBTZUSD", "XBT/USD", "btc/usd"):
        assert selectors.asset_pair_get(name=name).symbol == "BTC/USD"
    for name in ("BTC", "XBT", "XXBT", "XBT.F"):
        assert selectors.asset_get(name=name).symbol == "BTC"
    assert selectors.asset_get(name="ZUSD").decimals == 4
    with pytest.raises(AssetPair.DoesNotExist):
        selectors.asset_pair_get(name="NOPE/COIN")


def test_a_second_refresh_updates_in_place_and_marks_vanished_pairs_delisted(
    kraken_sandbox: Any,
) -> None:
    first = reference_data_refresh()
    AssetPair.objects.create(
        kraken_id="OLDCOINZUSD",
        altname="OLDCOINUSD",
        symbol="OLDCOIN/USD",
        base="OLDCOIN",
        quote="USD",
        base_kraken_id="OLDCOIN",
        quote_kraken_id="ZUSD",
        pair_decimals=2,
        lot_decimals=8,
        cost_decimals=4,
    )
    second = reference_data_refresh()
    assert second.pairs == first.pairs
    assert second.delisted == 1
    assert AssetPair.objects.get(kraken_id="OLDCOINZUSD").status == AssetPair.STATUS_DELISTED
    assert Asset.objects.count() == first.assets
    assert not selectors.asset_pair_list(tradable_only=True).filter(symbol="OLDCOIN/USD")


def test_the_hourly_task_runs_the_refresh(kraken_sandbox: Any) -> None:
    result = refresh_reference_data.apply().get()
    assert result["pairs"] >= 12
    assert AssetPair.objects.filter(symbol="ETH/USD").exists()


def test_stored_pairs_quantise_prices_and_volumes(kraken_sandbox: Any) -> None:
    reference_data_refresh()
    pair = selectors.asset_pair_get(name="BTC/USD")
    price = naming.quantize_price(pair, "65000.123456")
    assert price.as_tuple().exponent == -pair.pair_decimals
    assert pair.tick_size is not None
    assert price % pair.tick_size == 0
    volume = naming.quantize_volume(pair, "0.123456789123")
    assert volume <= Decimal("0.123456789123")
    assert -volume.as_tuple().exponent == pair.lot_decimals  # type: ignore[operator]
