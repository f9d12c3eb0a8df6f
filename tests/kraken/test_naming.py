"""Asset and pair names, balance suffixes and Decimal quantisation."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from apps.kraken import naming


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("XXBT", "BTC"),
        ("XBT", "BTC"),
        ("BTC", "BTC"),
        ("XDG", "DOGE"),
        ("XXDG", "DOGE"),
        ("ZUSD", "USD"),
        ("ZEUR", "EUR"),
        ("XETH", "ETH"),
        ("usdt", "USDT"),
        ("XTZ", "XTZ"),
        ("ZRX", "ZRX"),
        ("DOT.F", "DOT"),
    ],
)
def test_assets_get_their_common_ticker(raw: str, expected: str) -> None:
    assert naming.normalize_asset(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DOT.F", ("DOT", "earn")),
        ("XXBT", ("BTC", "spot")),
        ("XBT.M", ("BTC", "staked")),
        ("ETH2.S", ("ETH2", "staked")),
        ("USDC.B", ("USDC", "yield")),
        ("AAPLx.T", ("AAPLX", "tokenized")),
        ("ZUSD", ("USD", "spot")),
    ],
)
def test_balance_suffixes_fold_into_the_asset_with_a_wallet_label(
    raw: str, expected: tuple[str, str]
) -> None:
    assert naming.split_balance_key(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("XXBTZUSD", "BTC/USD"),
        ("XBTUSD", "BTC/USD"),
        ("XBT/USD", "BTC/USD"),
        ("btc/usd", "BTC/USD"),
        ("XETHXXBT", "ETH/BTC"),
        ("XBTUSDT", "BTC/USDT"),
        ("USDTZUSD", "USDT/USD"),
        ("USDCUSDT", "USDC/USDT"),
        ("XDGUSD", "DOGE/USD"),
        ("DOTUSD", "DOT/USD"),
        ("XTZUSD", "XTZ/USD"),
        ("SOLEUR", "SOL/EUR"),
        ("XXBTZEUR.d", "BTC/EUR"),
    ],
)
def test_every_spelling_of_a_pair_gets_one_display_symbol(raw: str, expected: str) -> None:
    assert naming.pair_symbol(raw) == expected


@pytest.mark.parametrize("raw", ["", "BTC", "/USD", "BTC/", "A/B/C", "FOOBAR"])
def test_names_that_are_not_pairs_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="Not a currency pair"):
        naming.pair_symbol(raw)


tickers = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=8)


@given(base=tickers, quote=tickers)
def test_a_symbol_is_a_fixed_point_of_normalisation(base: str, quote: str) -> None:
    symbol = naming.pair_symbol(f"{base}/{quote}")
    assert naming.pair_symbol(symbol) == symbol
    assert symbol == f"{naming.normalize_asset(base)}/{naming.normalize_asset(quote)}"


@given(base=tickers, quote=st.sampled_from(["USD", "EUR", "USDT", "USDC", "GBP", "CHF"]))
def test_slashed_and_unslashed_spellings_agree_when_unambiguous(base: str, quote: str) -> None:
    # "ABCZ"+"USD" could also be ABC/ZUSD: without a separator the longest known quote wins,
    # as on Kraken itself. Only unambiguous joins must agree.
    joined = base + quote
    assume(not any(joined.endswith(q) and len(q) > len(quote) for q in naming._QUOTES))
    assert naming.pair_symbol(joined) == naming.pair_symbol(f"{base}/{quote}")


@dataclass
class Pair:
    pair_decimals: int = 1
    lot_decimals: int = 8
    cost_decimals: int = 5
    tick_size: Decimal | None = Decimal("0.5")


@dataclass
class Asset:
    decimals: int = 4


amounts = st.decimals(
    min_value=Decimal("0.000000001"), max_value=Decimal(10**9), allow_nan=False, places=12
)


@given(value=amounts)
def test_volumes_round_down_to_lot_decimals(value: Decimal) -> None:
    q = naming.quantize_volume(Pair(), value)
    assert q <= value
    assert value - q < Decimal("0.00000001")
    assert -q.as_tuple().exponent <= 8  # type: ignore[operator]


@given(value=amounts)
def test_prices_land_on_the_tick(value: Decimal) -> None:
    q = naming.quantize_price(Pair(), value, rounding=ROUND_DOWN)
    assert q % Decimal("0.5") == 0
    assert value - Decimal("0.5") < q <= value


def test_prices_without_a_tick_use_pair_decimals() -> None:
    assert naming.quantize_price(Pair(tick_size=None), "123.456") == Decimal("123.5")


def test_asset_and_cost_amounts_are_quantised() -> None:
    assert naming.quantize_asset(Asset(), "1.23456") == Decimal("1.2345")
    assert naming.quantize_cost(Pair(), Decimal("10.123456")) == Decimal("10.12346")


def test_floats_are_refused_because_money_is_decimal() -> None:
    with pytest.raises(TypeError):
        naming.quantize_volume(Pair(), 0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("0.00000001"), "0.00000001"),
        (Decimal("37500.0"), "37500"),
        (Decimal("1.2500"), "1.25"),
        (Decimal("0"), "0"),
    ],
)
def test_decimals_go_on_the_wire_in_plain_notation(value: Decimal, wire: str) -> None:
    assert naming.decimal_to_wire(value) == wire
