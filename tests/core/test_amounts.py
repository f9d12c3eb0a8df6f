"""The amounts module: exact in, rounded only at the edges, formatted by the pair's decimals."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.core import amounts
from apps.core.amounts import PairDecimals

# Amounts as Kraken sends them: up to 10 decimals, up to a trillion.
AMOUNTS = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=10, allow_nan=False
)
POSITIVE = st.decimals(
    min_value=Decimal("0.0000000001"), max_value=Decimal("1e12"), places=10, allow_nan=False
)
PLACES = st.integers(min_value=0, max_value=10)

USDT_USD = PairDecimals(
    base="USDT",
    quote="USD",
    price_decimals=4,
    lot_decimals=8,
    base_decimals=8,
    base_display_decimals=4,
)
ADA_USD = PairDecimals(
    base="ADA",
    quote="USD",
    price_decimals=6,
    lot_decimals=8,
    base_decimals=8,
    base_display_decimals=6,
)
EUR_USD = PairDecimals(
    base="EUR",
    quote="USD",
    price_decimals=5,
    lot_decimals=8,
    base_decimals=4,
    base_display_decimals=2,
)
BTC_USD = PairDecimals(
    base="BTC",
    quote="USD",
    price_decimals=1,
    lot_decimals=8,
    base_decimals=10,
    base_display_decimals=5,
)


@pytest.mark.parametrize("value", [0.1, 1.0, float("nan"), True])
def test_a_float_or_bool_is_refused_with_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        amounts.to_decimal(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        amounts.format_number(value, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-inf", "abc", ""])
def test_text_that_is_not_a_finite_number_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"number|finite|Not"):
        amounts.to_decimal(value)


@given(AMOUNTS)
def test_strings_and_decimals_arrive_exactly(value: Decimal) -> None:
    assert amounts.to_decimal(value) == value
    assert amounts.to_decimal(format(value, "f")) == value


@given(AMOUNTS, PLACES)
def test_quantize_is_within_half_a_step_and_has_exactly_the_places(
    value: Decimal, places: int
) -> None:
    result = amounts.quantize(value, places)
    assert abs(result - value) <= amounts.step(places) / 2
    assert result.as_tuple().exponent == -places


@given(AMOUNTS, PLACES)
def test_round_down_never_moves_away_from_zero(value: Decimal, places: int) -> None:
    result = amounts.round_down(value, places)
    assert abs(result) <= abs(value)
    assert abs(value - result) < amounts.step(places)


@given(POSITIVE, POSITIVE, st.integers(min_value=0, max_value=8))
def test_quote_to_base_never_costs_more_than_the_quote_amount(
    quote_amount: Decimal, price: Decimal, lot_decimals: int
) -> None:
    base = amounts.quote_to_base(quote_amount=quote_amount, price=price, lot_decimals=lot_decimals)
    assert base * price <= quote_amount
    # ...and it is the largest such lot: one more step would cost more.
    assert (base + amounts.step(lot_decimals)) * price > quote_amount


def test_quote_to_base_rounds_down_where_rounding_to_nearest_would_overspend() -> None:
    # 100 / 3 = 33.333…; 2 / 3 = 0.666… would round up to 0.67 and cost 2.01.
    assert amounts.quote_to_base(quote_amount="2", price="3", lot_decimals=2) == Decimal("0.66")
    assert amounts.quote_to_base(quote_amount="100", price="3", lot_decimals=8) == Decimal(
        "33.33333333"
    )
    with pytest.raises(ValueError, match="positive"):
        amounts.quote_to_base(quote_amount="1", price="0", lot_decimals=2)


@given(AMOUNTS, PLACES)
def test_formatted_numbers_read_back_to_the_quantized_value(value: Decimal, places: int) -> None:
    text = amounts.format_number(value, places)
    assert Decimal(text.replace(",", "")) == amounts.quantize(value, places)
    integer = text.lstrip("-").split(".")[0]
    # Thousands separators every three digits from the right.
    groups = integer.split(",")
    assert all(len(group) == 3 for group in groups[1:])
    assert 1 <= len(groups[0]) <= 3


@given(AMOUNTS, PLACES)
def test_the_wire_format_is_plain_fixed_point(value: Decimal, places: int) -> None:
    text = amounts.to_wire(value, places, rounding=ROUND_DOWN)
    assert "," not in text
    assert "E" not in text.upper()
    assert Decimal(text) == amounts.round_down(value, places)


def test_no_negative_zero_is_ever_shown() -> None:
    assert amounts.format_number(Decimal("-0.0001"), 2) == "0.00"
    assert amounts.format_number("-0", 0) == "0"


def test_prices_use_the_pairs_tick_decimals() -> None:
    assert amounts.format_price(Decimal("1.0001"), USDT_USD) == "1.0001"
    assert amounts.format_price("0.447916", ADA_USD) == "0.447916"
    assert amounts.format_price("65432.15", BTC_USD) == "65,432.2"
    assert amounts.format_price(None, BTC_USD) == amounts.MISSING


def test_sizes_use_the_lot_decimals_but_no_finer_than_the_base_asset() -> None:
    assert amounts.format_size("1234.5", BTC_USD) == "1,234.50000000"
    # EUR keeps four decimals: no eight-decimal EUR sizes.
    assert amounts.format_size("1500.123456", EUR_USD) == "1,500.1235"


def test_amounts_carry_their_currency_and_separators() -> None:
    assert amounts.format_quote(Decimal("1234567.891"), BTC_USD) == "1,234,567.89 USD"
    assert amounts.format_base("12.5", BTC_USD) == "12.50000 BTC"
    assert amounts.format_amount(None, asset="USD", decimals=2) == amounts.MISSING
    assert amounts.format_percent("1.234") == "+1.23%"
    assert amounts.format_percent("-0.5") == "-0.50%"


def test_pair_decimals_read_a_stored_pair_and_fall_back_to_the_lot() -> None:
    stored = {"symbol": "ADA/USD", "price_decimals": 6, "qty_decimals": 8}
    pair = PairDecimals.from_mapping(stored)
    assert (pair.base, pair.quote, pair.price_decimals, pair.size_decimals) == (
        "ADA",
        "USD",
        6,
        8,
    )
    assert pair.price_step == Decimal("0.000001")


def test_basis_points_of_a_spread() -> None:
    assert amounts.ratio_bps("1", "10000") == Decimal(1)
    assert amounts.ratio_bps("1", "0") is None


def test_the_amounts_module_imports_no_app_and_no_django() -> None:
    import ast
    from pathlib import Path

    source = Path(amounts.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name.startswith(("apps", "django", "kraken"))}


# -- Fees as lists of (asset, quantity) -------------------------------------------------------


def test_fees_in_several_assets_read_as_a_sum_of_amounts_never_added_together() -> None:
    fees = amounts.Fees.of([("USD", "0.26"), ("XBT", "0.0001"), ("USD", "0.04")])

    assert fees.assets == ("USD", "XBT")
    assert fees.quantity("USD") == Decimal("0.30")
    assert fees.quantity("XBT") == Decimal("0.0001")
    assert fees.quantity("ETH") == 0
    assert amounts.format_fees(fees) == "0.30 USD + 0.0001 XBT"
    assert amounts.format_fees(fees, decimals={"USD": 2, "XBT": 8}) == "0.30 USD + 0.00010000 XBT"
    assert amounts.format_fees(fees, decimals=lambda asset: 4 if asset == "USD" else None) == (
        "0.3000 USD + 0.0001 XBT"
    )


def test_no_fee_and_zero_fees_read_as_no_fee() -> None:
    assert not amounts.Fees()
    assert amounts.format_fees(amounts.Fees.of([("USD", "0")])) == amounts.NO_FEE
    assert amounts.Fees.from_json([]) == amounts.Fees()


def test_fees_round_trip_through_krakens_json_shape_without_losing_a_digit() -> None:
    # The executions channel's shape, which ExchangeFill.fees stores.
    stored = [{"asset": "USD", "qty": "0.123456789012345678"}, {"asset": "XBT", "qty": "1E-8"}]

    fees = amounts.Fees.from_json(stored)

    assert fees.to_json() == [
        {"asset": "USD", "qty": "0.123456789012345678"},
        {"asset": "XBT", "qty": "0.00000001"},
    ]
    assert amounts.Fees.from_json(fees.to_json()) == fees
    assert fees + amounts.Fees.of([("XBT", "0.00000001")]) == amounts.Fees.of(
        [("USD", "0.123456789012345678"), ("XBT", "0.00000002")]
    )


@pytest.mark.parametrize(
    "entry",
    [{"asset": "USD", "qty": 0.26}, {"asset": "", "qty": "1"}, {"qty": "1"}, {"asset": "USD"}],
)
def test_a_fee_entry_without_an_asset_or_an_exact_quantity_is_refused(entry: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        amounts.Fees.from_json([entry])  # type: ignore[list-item]


# -- Storage precision ------------------------------------------------------------------------


def test_a_derived_value_is_stored_at_the_columns_precision_half_even() -> None:
    assert amounts.to_storage("0.0000000000000000005") == Decimal("0E-18")  # half to even: 0
    assert amounts.to_storage("0.0000000000000000015") == Decimal("0.000000000000000002")
    assert amounts.to_storage(Decimal("12345678901234567890.123")) == Decimal(
        "12345678901234567890.123000000000000000"
    )
    assert amounts.to_storage("-0.0000000000000000001") == Decimal("0E-18")  # never "-0"
    with pytest.raises(TypeError):
        amounts.to_storage(0.1)  # type: ignore[arg-type]
