"""Amounts: the one module that decides how money is stored, rounded, sent and shown.

Pure functions over `Decimal`; no Django models and no imports from any app, so every layer
(the feeder, the market pages, the exchange's wire format, reports) can use it. The rules:

- Decimal end to end. A float has already lost the amount (`0.1` is 0.1000000000000000055…),
  so every function here refuses one with `TypeError` instead of guessing what was meant.
  Strings and ints are exact and accepted; NaN and infinities are refused with `ValueError`.
- Storage keeps every digit Kraken can send: `STORAGE_MAX_DIGITS`/`STORAGE_DECIMAL_PLACES` are
  what a model's DecimalField uses. Nothing Kraken sends is rounded on the way in.
- A value the portal derives (a quantity times a conversion rate) can have more decimals than a
  column keeps; `to_storage` rounds it once, half-even, to the storage places, as the last step
  before it is stored. It is the only rounding allowed between the edges.
- Otherwise quantize only at the edges: for display (`format_*`) and for the wire (`to_wire`),
  through `quantize`. Sums, totals and conversions in between keep full precision, so rounding
  errors never accumulate.
- Converting a quote amount to base rounds down (`quote_to_base`): "buy 100 USD of BTC" must
  never become an order that costs more than 100 USD.
- Fees are lists of (asset, quantity) (`Fees`): a fill may be charged in the quote, the base or
  another asset, and quantities of different assets are never added together.
- Display follows the pair: prices at its tick decimals (`pair_decimals`), sizes at its lot
  decimals (never finer than the base asset keeps, so a EUR size has no eight decimals), and
  amounts of an asset at that asset's display decimals, followed by its name. Every displayed
  number has thousands separators.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

# Kraken sends up to 10 decimals for assets (BTC, ETH) and 8 for lots; 18 leaves room for
# derived values (average prices, conversion rates) and 38 digits total covers any balance.
STORAGE_MAX_DIGITS = 38
STORAGE_DECIMAL_PLACES = 18
# What a number shows when there is none (no trade yet, an empty book).
MISSING = "—"
# Division keeps this many significant digits before the final quantize, far beyond any
# amount's precision, so the one rounding that matters is the last one.
_DIVISION_PRECISION = 60

NOT_DECIMAL = "Amounts must be Decimal, int or str, not {kind}: a float has already lost digits."
NOT_FINITE = "Amounts must be finite numbers, not {value}."
NOT_A_NUMBER = "Not a number: {value!r}."

type Number = Decimal | int | str


def to_decimal(value: Number) -> Decimal:
    """`value` as an exact, finite Decimal; floats (and bools) raise TypeError."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(NOT_DECIMAL.format(kind=type(value).__name__))
    elif isinstance(value, int):
        number = Decimal(value)
    else:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(NOT_A_NUMBER.format(value=value)) from None
    if not number.is_finite():
        raise ValueError(NOT_FINITE.format(value=number))
    return number


def step(places: int) -> Decimal:
    """The smallest increment at `places` decimals: 2 -> 0.01, 0 -> 1."""
    if places < 0:
        raise ValueError("places must be zero or more")
    return Decimal(1).scaleb(-places)


def _quantize(number: Decimal, places: int, rounding: str) -> Decimal:
    with localcontext() as context:
        # Enough digits for the integer part plus the requested decimals: quantize must never
        # fail on a large amount because the default context holds only 28 digits.
        context.prec = max(_DIVISION_PRECISION, number.adjusted() + places + 2)
        result = number.quantize(step(places), rounding=rounding)
    return result.copy_abs() if result.is_zero() else result  # no "-0.00"


def quantize(value: Number, places: int, *, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """`value` at exactly `places` decimals. Only for display and the wire (storage precision
    is `to_storage`)."""
    return _quantize(to_decimal(value), places, rounding)


def to_storage(value: Number) -> Decimal:
    """A derived value at the storage precision of the portal's amount columns
    (STORAGE_DECIMAL_PLACES, half-even): the one rounding a computed value gets before it is
    stored, so what is stored equals what is read back."""
    return _quantize(to_decimal(value), STORAGE_DECIMAL_PLACES, ROUND_HALF_EVEN)


def round_down(value: Number, places: int) -> Decimal:
    """`value` cut (toward zero) to `places` decimals: what may be spent never grows."""
    return _quantize(to_decimal(value), places, ROUND_DOWN)


def quote_to_base(*, quote_amount: Number, price: Number, lot_decimals: int) -> Decimal:
    """How much base `quote_amount` buys at `price`, rounded down to the pair's lot."""
    amount, unit_price = to_decimal(quote_amount), to_decimal(price)
    if unit_price <= 0:
        raise ValueError("price must be positive")
    with localcontext() as context:
        # Rounding the quotient down too means the digit cut by the context can never carry
        # the result up past the exact value.
        context.prec = _DIVISION_PRECISION
        context.rounding = ROUND_DOWN
        exact = amount / unit_price
    return _quantize(exact, lot_decimals, ROUND_DOWN)


def to_wire(value: Number, places: int, *, rounding: str = ROUND_HALF_EVEN) -> str:
    """The text an API receives: fixed point, `places` decimals, no separators, no exponent."""
    return format(quantize(value, places, rounding=rounding), "f")


def format_number(
    value: Number | None, places: int, *, grouped: bool = True, signed: bool = False
) -> str:
    """`value` at `places` decimals with thousands separators (`1,234.50`); `—` for None."""
    if value is None or value == "":
        return MISSING
    number = quantize(value, places)
    spec = ("+" if signed else "") + ("," if grouped else "") + f".{places}f"
    return format(number, spec)


def format_amount(value: Number | None, *, asset: str, decimals: int) -> str:
    """An amount of an asset with its name: `1,234.56 USD`."""
    text = format_number(value, decimals)
    return text if text == MISSING else f"{text} {asset}"


def format_percent(value: Number | None, places: int = 2, *, signed: bool = True) -> str:
    """A percentage that is already in percent (Kraken's `change_pct`): `+1.25%`."""
    text = format_number(value, places, signed=signed)
    return text if text == MISSING else f"{text}%"


def ratio_bps(part: Number, whole: Number) -> Decimal | None:
    """`part / whole` in basis points (1 bp = 0.01%), None when `whole` is zero."""
    numerator, denominator = to_decimal(part), to_decimal(whole)
    if denominator.is_zero():
        return None
    with localcontext() as context:
        context.prec = _DIVISION_PRECISION
        return numerator / denominator * Decimal(10000)


@dataclass(frozen=True, slots=True)
class PairDecimals:
    """What a pair's numbers are shown with, from Kraken's AssetPairs and Assets.

    `price_decimals` is the pair's `pair_decimals` (its tick), `lot_decimals` its order size
    precision; `base_decimals`/`quote_decimals` are the assets' own record-keeping decimals and
    `*_display_decimals` what Kraken shows amounts of them with.
    """

    base: str
    quote: str
    price_decimals: int
    lot_decimals: int
    base_decimals: int = 10
    quote_decimals: int = 10
    base_display_decimals: int = 8
    quote_display_decimals: int = 2

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> PairDecimals:
        """From a stored pair or state (`symbol`, `price_decimals`, `qty_decimals`, ...)."""
        base, _, quote = str(data.get("symbol", "/")).partition("/")
        lot = int(data.get("qty_decimals", data.get("lot_decimals", 8)))
        return cls(
            base=str(data.get("base") or base),
            quote=str(data.get("quote") or quote),
            price_decimals=int(data["price_decimals"]),
            lot_decimals=lot,
            base_decimals=int(data.get("base_decimals", lot)),
            quote_decimals=int(data.get("quote_decimals", 10)),
            base_display_decimals=int(data.get("base_display_decimals", lot)),
            quote_display_decimals=int(data.get("quote_display_decimals", 2)),
        )

    @property
    def size_decimals(self) -> int:
        """Sizes at the lot decimals, but never finer than the base asset itself keeps."""
        return min(self.lot_decimals, self.base_decimals)

    @property
    def price_step(self) -> Decimal:
        return step(self.price_decimals)


def format_price(value: Number | None, pair: PairDecimals) -> str:
    return format_number(value, pair.price_decimals)


def format_size(value: Number | None, pair: PairDecimals) -> str:
    return format_number(value, pair.size_decimals)


def format_base(value: Number | None, pair: PairDecimals) -> str:
    """An amount of the pair's base asset, with its name: `12.50000 BTC`."""
    return format_amount(value, asset=pair.base, decimals=pair.base_display_decimals)


def format_quote(value: Number | None, pair: PairDecimals) -> str:
    """An amount of the pair's quote asset, with its name: `1,234,567.89 USD`."""
    return format_amount(value, asset=pair.quote, decimals=pair.quote_display_decimals)


# -- Fees: lists of (asset, quantity) ------------------------------------------------------------

NO_FEE = "no fee"
FEE_ENTRY_INVALID = "A fee needs an asset and a quantity: {entry!r}."


@dataclass(frozen=True, slots=True)
class Fee:
    asset: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Fees:
    """What something cost in fees, per asset, in first-seen order: `0.26 USD + 0.0001 XBT`.

    Quantities of one asset are summed, of different assets never; zero quantities are left
    out. Stored as JSON in Kraken's own shape (`[{"asset": "USD", "qty": "0.26"}]`, as the
    executions channel sends it), with the quantity as text so no digit is lost.
    """

    items: tuple[Fee, ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, Number]]) -> Fees:
        totals: dict[str, Decimal] = {}
        for asset, quantity in pairs:
            name = str(asset).strip()
            if not name:
                raise ValueError(FEE_ENTRY_INVALID.format(entry=(asset, quantity)))
            totals[name] = totals.get(name, Decimal(0)) + to_decimal(quantity)
        return cls(tuple(Fee(a, q) for a, q in totals.items() if not q.is_zero()))

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]] | None) -> Fees:
        """From stored or Kraken JSON: entries with `asset` and `qty` (or `quantity`). A float
        quantity is refused like everywhere else in this module."""
        pairs: list[tuple[str, Number]] = []
        for entry in data or ():
            quantity = entry.get("qty", entry.get("quantity"))
            if (
                not isinstance(entry, Mapping)
                or entry.get("asset") in (None, "")
                or quantity is None
            ):
                raise ValueError(FEE_ENTRY_INVALID.format(entry=entry))
            pairs.append((str(entry["asset"]), quantity))
        return cls.of(pairs)

    def to_json(self) -> list[dict[str, str]]:
        return [{"asset": fee.asset, "qty": format(fee.quantity, "f")} for fee in self.items]

    def __add__(self, other: Fees) -> Fees:
        return Fees.of([(f.asset, f.quantity) for f in (*self.items, *other.items)])

    def __bool__(self) -> bool:
        return bool(self.items)

    def quantity(self, asset: str) -> Decimal:
        """The fees charged in `asset` (zero when none)."""
        return sum((f.quantity for f in self.items if f.asset == asset), Decimal(0))

    @property
    def assets(self) -> tuple[str, ...]:
        return tuple(f.asset for f in self.items)


def format_fees(
    fees: Fees, *, decimals: Mapping[str, int] | Callable[[str], int | None] | None = None
) -> str:
    """`0.26 USD + 0.0001 XBT`: each quantity at its asset's display decimals where `decimals`
    knows them (a mapping or a function of the asset), otherwise with exactly its own digits;
    `no fee` when there is none."""
    if not fees:
        return NO_FEE
    parts = []
    for fee in fees.items:
        places = decimals.get(fee.asset) if isinstance(decimals, Mapping) else None
        if callable(decimals):
            places = decimals(fee.asset)
        if places is None:
            # Finite (to_decimal refused the rest), so the exponent is an int.
            places = max(0, -int(fee.quantity.as_tuple().exponent))
        parts.append(format_amount(fee.quantity, asset=fee.asset, decimals=places))
    return " + ".join(parts)
