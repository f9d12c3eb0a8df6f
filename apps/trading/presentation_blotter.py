"""Blotter rows as the page and the CSV show them: every number through apps.core.amounts at
its pair's decimals, every time in the reader's zone, who placed each order (or "External")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from apps.core import amounts
from apps.core.amounts import PairDecimals
from apps.exchange.models import ExchangeFill, ExchangeOrder, Operation
from apps.kraken.naming import normalize_asset, pair_symbol
from apps.market.selectors import market_pairs
from apps.orgs.models import KrakenAccount

EXTERNAL_LABEL = "External"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Reporting currencies that are crypto assets show more decimals than fiat ones.
CURRENCY_DECIMALS = {"BTC": 8, "ETH": 8}


class PairBook:
    """Each pair's decimals, from the market feed's pair list (read once per request); a pair
    the feed does not list is shown at Kraken's widest precision rather than guessed short."""

    def __init__(self, pairs: list[dict[str, Any]] | None = None) -> None:
        listed = market_pairs() if pairs is None else pairs
        self._known: dict[str, PairDecimals] = {}
        for entry in listed:
            try:
                self._known[str(entry["symbol"])] = PairDecimals.from_mapping(entry)
            except (KeyError, TypeError, ValueError):
                # An entry without its decimals (a feed mid-restart, or a partial list) is
                # treated as unlisted below: a page must not fail for it (it did: a 500 on home).
                continue
        self.symbols = sorted(self._known)

    def __getitem__(self, pair: str) -> PairDecimals:
        try:
            symbol = pair_symbol(pair)
        except ValueError:
            symbol = pair or "?/?"
        if symbol not in self._known:
            base, _, quote = symbol.partition("/")
            self._known[symbol] = PairDecimals(
                base=base,
                quote=quote,
                price_decimals=8,
                lot_decimals=8,
                base_display_decimals=8,
                quote_display_decimals=8,
            )
        return self._known[symbol]


def _who(operation: Operation | None) -> tuple[str, str, bool]:
    """(placed by, key, external)."""
    if operation is None:
        return EXTERNAL_LABEL, "", True
    email = operation.requested_by.email if operation.requested_by else "the system"
    return email, operation.credential.label, False


def _time(value: datetime | None, tz: tzinfo) -> tuple[str, str]:
    if value is None:
        return amounts.MISSING, ""
    local = value.astimezone(tz)
    return local.strftime(TIME_FORMAT), local.isoformat()


@dataclass(frozen=True)
class OrderRow:
    order: ExchangeOrder
    time: str
    iso_time: str
    account: str
    pair: str
    qty: str
    filled: str
    price: str
    avg_price: str
    cost: str
    fee: str
    placed_by: str
    key: str
    external: bool


def order_rows(
    orders: list[ExchangeOrder], accounts: dict[int, KrakenAccount], pairs: PairBook, tz: tzinfo
) -> list[OrderRow]:
    rows = []
    for order in orders:
        decimals = pairs[order.pair]
        who, key, external = _who(order.operation)
        shown, iso = _time(order.opened_at, tz)
        rows.append(
            OrderRow(
                order=order,
                time=shown,
                iso_time=iso,
                account=accounts[order.account_id].label,
                pair=f"{decimals.base}/{decimals.quote}",
                qty=amounts.format_size(order.vol, decimals),
                filled=amounts.format_size(order.vol_exec, decimals),
                price=amounts.format_price(order.price, decimals),
                avg_price=amounts.format_price(order.avg_price, decimals),
                cost=amounts.format_quote(order.cost, decimals),
                fee=amounts.format_quote(order.fee, decimals),
                placed_by=who,
                key=key,
                external=external,
            )
        )
    return rows


@dataclass(frozen=True)
class FillRow:
    fill: ExchangeFill
    time: str
    iso_time: str
    account: str
    pair: str
    qty: str
    price: str
    cost: str
    fees: str
    liquidity: str
    placed_by: str
    key: str
    external: bool


def fee_amounts(fees: Any, decimals: PairDecimals, *, precise: bool = False) -> list[str]:
    """A fill's fees, each in its own asset: "0.26 USD", "0.00001000 BTC". `precise` (the
    CSV): at the asset's record-keeping decimals, without separators."""
    shown = []
    for fee in fees if isinstance(fees, list) else []:
        asset = normalize_asset(str(fee.get("asset", "")))
        if asset == decimals.quote:
            places = decimals.quote_decimals if precise else decimals.quote_display_decimals
        elif asset == decimals.base:
            places = decimals.base_decimals if precise else decimals.base_display_decimals
        else:
            places = 10 if precise else 8
        qty = Decimal(str(fee.get("qty", "0")))
        shown.append(f"{amounts.format_number(qty, places, grouped=not precise)} {asset}")
    return shown


def fill_rows(
    fills: list[ExchangeFill], accounts: dict[int, KrakenAccount], pairs: PairBook, tz: tzinfo
) -> list[FillRow]:
    rows = []
    for fill in fills:
        decimals = pairs[fill.pair]
        operation = fill.order.operation if fill.order is not None else None
        who, key, external = _who(operation)
        shown, iso = _time(fill.executed_at, tz)
        rows.append(
            FillRow(
                fill=fill,
                time=shown,
                iso_time=iso,
                account=accounts[fill.account_id].label,
                pair=f"{decimals.base}/{decimals.quote}",
                qty=amounts.format_size(fill.qty, decimals),
                price=amounts.format_price(fill.price, decimals),
                cost=amounts.format_quote(fill.cost, decimals),
                fees=", ".join(fee_amounts(fill.fees, decimals)) or amounts.MISSING,
                liquidity={"m": "Maker", "t": "Taker"}.get(fill.liquidity, ""),
                placed_by=who,
                key=key,
                external=external,
            )
        )
    return rows


# CSV: full pair precision, no thousands separators (a machine reads it), times in ISO form
# in the reader's zone (the header names it).

ORDER_CSV_HEADER = (
    "time",
    "account",
    "txid",
    "pair",
    "side",
    "type",
    "status",
    "quantity",
    "filled",
    "price",
    "average_price",
    "cost",
    "fee",
    "quote",
    "placed_by",
    "key",
    "external",
)
FILL_CSV_HEADER = (
    "time",
    "account",
    "trade_id",
    "order_txid",
    "pair",
    "side",
    "quantity",
    "price",
    "cost",
    "quote",
    "fees",
    "liquidity",
    "placed_by",
    "key",
    "external",
)


def _plain(value: Decimal | None, places: int) -> str:
    return "" if value is None else amounts.format_number(value, places, grouped=False)


def _iso(value: datetime | None, tz: tzinfo) -> str:
    return "" if value is None else value.astimezone(tz).isoformat()


def order_csv_row(
    order: ExchangeOrder, accounts: dict[int, KrakenAccount], pairs: PairBook, tz: tzinfo
) -> list[str]:
    decimals = pairs[order.pair]
    who, key, external = _who(order.operation)
    return [
        _iso(order.opened_at, tz),
        accounts[order.account_id].label,
        order.txid,
        f"{decimals.base}/{decimals.quote}",
        order.side,
        order.order_type,
        order.status,
        _plain(order.vol, decimals.size_decimals),
        _plain(order.vol_exec, decimals.size_decimals),
        _plain(order.price, decimals.price_decimals),
        _plain(order.avg_price, decimals.price_decimals),
        _plain(order.cost, decimals.quote_decimals),
        _plain(order.fee, decimals.quote_decimals),
        decimals.quote,
        who,
        key,
        "yes" if external else "no",
    ]


def fill_csv_row(
    fill: ExchangeFill, accounts: dict[int, KrakenAccount], pairs: PairBook, tz: tzinfo
) -> list[str]:
    decimals = pairs[fill.pair]
    operation = fill.order.operation if fill.order is not None else None
    who, key, external = _who(operation)
    return [
        _iso(fill.executed_at, tz),
        accounts[fill.account_id].label,
        fill.trade_id,
        fill.order_txid,
        f"{decimals.base}/{decimals.quote}",
        fill.side,
        _plain(fill.qty, decimals.size_decimals),
        _plain(fill.price, decimals.price_decimals),
        _plain(fill.cost, decimals.quote_decimals),
        decimals.quote,
        "; ".join(fee_amounts(fill.fees, decimals, precise=True)),
        {"m": "maker", "t": "taker"}.get(fill.liquidity, ""),
        who,
        key,
        "yes" if external else "no",
    ]


def money(value: Decimal | None, currency: str, *, signed: bool = False) -> str:
    places = CURRENCY_DECIMALS.get(currency, 2)
    if value is None:
        return amounts.MISSING
    return f"{amounts.format_number(value, places, signed=signed)} {currency}"
