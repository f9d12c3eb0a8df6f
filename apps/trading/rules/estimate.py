"""Quote to base and the estimate: the ticket's quantity in base (a quote amount converted and
rounded down to the lot), what trades at once against the book, at what average and fee,
the order's notional, and whether the account can spend it."""

from __future__ import annotations

from decimal import ROUND_UP, Decimal

from apps.core.amounts import quote_to_base, round_down
from apps.kraken.models import AssetPair
from apps.kraken.naming import quantize_cost
from apps.trading import market
from apps.trading.models import (
    OrderType,
    Side,
)
from apps.trading.rules.base import (
    MAX_AMOUNT,
    QUANTITY_TOO_LARGE,
    TRAILING,
    TWO_PRICES,
    Check,
    Estimate,
    Ticket,
)
from apps.trading.rules.messages import (
    BELOW_ORDERMIN,
    DISPLAY_RANGE,
    QUANTITY_DECIMALS,
    QUANTITY_REQUIRED,
    QUOTE_NEEDS_PRICE,
    QUOTE_ONLY_MARKET_BUY_VIQC,
    QUOTE_TOO_SMALL,
    SPENDABLE_SHORT,
)


def walk(
    levels: list[tuple[Decimal, Decimal]],
    *,
    volume: Decimal | None = None,
    quote: Decimal | None = None,
    limit: Decimal | None = None,
    side: str = Side.BUY,
) -> tuple[Decimal, Decimal]:
    """(volume, cost) that would trade at once against `levels` (asks for a buy, bids for a
    sell) for `volume` base or `quote` quote, not past `limit`."""
    filled = Decimal(0)
    cost = Decimal(0)
    for price, qty in levels:
        if limit is not None and (price > limit if side == Side.BUY else price < limit):
            break
        take = qty
        if volume is not None:
            take = min(qty, volume - filled)
        elif quote is not None:
            take = min(qty, (quote - cost) / price)
        if take <= 0:
            break
        filled += take
        cost += take * price
        if (volume is not None and filled >= volume) or (quote is not None and cost >= quote):
            break
    return filled, cost


def quantities(
    check: Check, ticket: Ticket, pair: AssetPair, book: market.Book, price: Decimal | None
) -> tuple[Decimal | None, Decimal | None, bool]:
    """(volume in base, quantity in quote, viqc): the ticket's quantity in base, or in quote
    (viqc for a market buy; converted at the order's price or the book's touch and rounded
    down to the pair's lot otherwise), against the pair's ordermin, lot decimals and, for an
    iceberg, its visible part. Refusals go on `check`."""
    order_type, side = ticket.order_type, ticket.side
    quantity = ticket.quantity
    volume: Decimal | None = None
    quote_quantity: Decimal | None = None
    viqc = False
    lot = pair.lot_decimals
    reference_price = price
    if order_type in TRAILING or reference_price is None:
        reference_price = (book.best_ask if side == Side.BUY else book.best_bid) or book.last
    if quantity is None or not quantity.is_finite() or quantity <= 0:
        check.add("quantity", QUANTITY_REQUIRED)
    elif quantity >= MAX_AMOUNT or quantity.as_tuple().exponent < -18:  # type: ignore[operator]
        check.add(
            "quantity",
            QUANTITY_TOO_LARGE
            if quantity >= MAX_AMOUNT
            else QUANTITY_DECIMALS.format(pair=pair.symbol, places=lot, base=pair.base),
        )
    elif ticket.quantity_in == "quote":
        quote_quantity = quantity
        if order_type == OrderType.MARKET and side == Side.BUY:
            viqc = True
        elif order_type == OrderType.MARKET:
            # A market sell of a quote amount: converted at the book's bid, like any other.
            if reference_price is None:
                check.add("quantity", QUOTE_ONLY_MARKET_BUY_VIQC)
            else:
                volume = quote_to_base(
                    quote_amount=quantity, price=reference_price, lot_decimals=lot
                )
        elif reference_price is None:
            check.add("quantity", QUOTE_NEEDS_PRICE.format(quote=pair.quote))
        else:
            volume = quote_to_base(quote_amount=quantity, price=reference_price, lot_decimals=lot)
        if volume is not None and volume <= 0:
            check.add(
                "quantity",
                QUOTE_TOO_SMALL.format(amount=quantity, quote=pair.quote, base=pair.base),
            )
            volume = None
        elif volume is not None:
            check.notes.append(f"{quantity:f} {pair.quote} ≈ {volume:f} {pair.base} (rounded down)")
    elif ticket.quantity_in != "base":
        check.add("quantity_in", "Choose base or quote.")
    else:
        if round_down(quantity, lot) != quantity:
            check.add(
                "quantity",
                QUANTITY_DECIMALS.format(pair=pair.symbol, places=lot, base=pair.base),
            )
        else:
            volume = quantity
    if volume is not None and volume < pair.ordermin:
        check.add(
            "quantity",
            BELOW_ORDERMIN.format(
                pair=pair.symbol, ordermin=pair.ordermin.normalize(), base=pair.base
            ),
        )
    if order_type == OrderType.ICEBERG and ticket.display_volume is not None:
        display = ticket.display_volume
        if (
            not display.is_finite()
            or display <= 0
            or display >= MAX_AMOUNT
            or (volume is not None and display >= volume)
            or round_down(display, lot) != display
        ):
            check.add("display_volume", DISPLAY_RANGE)
    return volume, quote_quantity, viqc


def _spendable_note(check: Check, ticket: Ticket, pair: AssetPair, volume: Decimal | None) -> None:
    """A note (not a refusal: balances may lag) when the order needs more than the account can
    spend (apps.exchange.balances.spendable, the platform's one definition)."""
    from apps.exchange.balances import asset_balance

    if ticket.account is None:
        return
    if ticket.side == Side.BUY:
        asset = pair.quote
        estimate = check.estimate
        needed = (estimate.cost or Decimal(0)) + (estimate.fee or Decimal(0))
        if check.viqc and check.quote_quantity is not None:
            needed = check.quote_quantity
    else:
        asset = pair.base
        needed = volume or Decimal(0)
    if needed <= 0:
        return
    balance = asset_balance(account=ticket.account, asset=asset)
    if balance.updated_at is None:
        return  # nothing reported yet for this asset: say nothing rather than guess
    if balance.spendable < needed:
        check.notes.append(
            SPENDABLE_SHORT.format(
                needed=f"{needed.normalize():f}",
                spendable=f"{balance.spendable.normalize():f}",
                asset=asset,
            )
        )


def _estimate(
    check: Check,
    ticket: Ticket,
    pair: AssetPair,
    book: market.Book,
    volume: Decimal | None,
    quote_quantity: Decimal | None,
    viqc: bool,
    price: Decimal | None,
) -> Estimate:
    estimate = Estimate(volume=volume)
    levels = book.asks if ticket.side == Side.BUY else book.bids
    immediate = ticket.order_type in (OrderType.MARKET, OrderType.LIMIT, OrderType.ICEBERG)
    if volume is None and not viqc:
        return estimate
    if ticket.order_type == OrderType.MARKET or (immediate and not ticket.post_only):
        limit = price if ticket.order_type != OrderType.MARKET else None
        filled, cost = walk(
            levels,
            volume=volume,
            quote=quote_quantity if viqc else None,
            limit=limit,
            side=ticket.side,
        )
    else:
        filled, cost = Decimal(0), Decimal(0)
    estimate.fills_now = filled
    if viqc:
        estimate.volume = round_down(filled, pair.lot_decimals) if filled else None
    rests = (estimate.volume or Decimal(0)) - filled if not viqc else Decimal(0)
    if ticket.order_type == OrderType.MARKET:
        estimate.book_short = bool(
            (volume is not None and filled < volume)
            or (viqc and quote_quantity is not None and cost < quote_quantity)
        )
        estimate.avg_price = (cost / filled) if filled else None
        estimate.cost = quantize_cost(pair, cost) if filled else None
        estimate.liquidity = "taker"
    else:
        at = price
        if at is None:
            at = book.last
        rest_cost = (rests * at) if (at is not None and rests > 0) else Decimal(0)
        total = cost + rest_cost
        total_volume = filled + (rests if rest_cost else Decimal(0))
        estimate.cost = quantize_cost(pair, total) if total_volume else None
        estimate.avg_price = (total / total_volume) if total_volume else None
        estimate.liquidity = "taker" if filled and not rests else ("mixed" if filled else "maker")
    rates = market.fee_rates(credential=check.credential, pair=pair)
    estimate.fee_source = rates.source
    if estimate.cost is not None:
        if estimate.liquidity == "maker":
            fee = estimate.cost * rates.maker_pct / 100
            estimate.fee_pct = rates.maker_pct
        elif estimate.liquidity == "mixed" and estimate.avg_price:
            taker_part = cost * rates.taker_pct / 100
            maker_part = (estimate.cost - cost) * rates.maker_pct / 100
            fee = taker_part + maker_part
            estimate.fee_pct = rates.taker_pct
        else:
            fee = estimate.cost * rates.taker_pct / 100
            estimate.fee_pct = rates.taker_pct
        estimate.fee = quantize_cost(pair, fee, rounding=ROUND_UP)
    if estimate.avg_price is not None:
        estimate.avg_price = estimate.avg_price.quantize(
            Decimal(1).scaleb(-pair.pair_decimals), rounding=ROUND_UP
        )
    return estimate


def _notional(
    order_type: str,
    price: Decimal | None,
    price2: Decimal | None,
    volume: Decimal | None,
    quote_quantity: Decimal | None,
    viqc: bool,
    estimate: Estimate,
    book: market.Book,
) -> Decimal | None:
    """The order's value in its quote currency: what the risk limits count."""
    if viqc:
        return quote_quantity
    if volume is None:
        return None
    at = price2 if order_type in TWO_PRICES and price2 is not None else price
    if at is None:
        if order_type == OrderType.MARKET and estimate.avg_price is not None:
            at = estimate.avg_price
        else:
            at = book.last or book.mid
    return volume * at if at is not None else None
