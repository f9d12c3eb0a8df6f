"""The ticket's rules, in one place: the form shows their messages as the trader types, and
`services.order_submit` runs them again on the server before anything is sent.

`ticket_check` turns what the trader entered (a `Ticket`) into either errors per field or
Kraken's AddOrder parameters, with the estimate (cost, fee, average fill against the book) and
the confirmations the order needs (far from the market, large notional). It checks, in order:
the member (role, their own active trading key on the account), the kill switch, Kraken's
system and pair status, the order's shape (type, prices, time in force, flags), the pair's
rules (ordermin, costmin, tick size, lot decimals) and the pre-trade risk limits (risk.py).
It only reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from apps.core.amounts import quote_to_base, round_down
from apps.kraken.models import AssetPair
from apps.kraken.naming import quantize_cost, quantize_price
from apps.market.conversion import ConversionError, value_in
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.trading import market, risk
from apps.trading.models import (
    DeskSettings,
    FeeCurrency,
    KillSwitch,
    OrderType,
    Side,
    TimeInForce,
    Trigger,
)
from apps.vault.models import Credential, Use

# Messages (tests assert on them).
NOT_A_TRADER = "Your role does not allow trading."
NO_ACCOUNT = "Choose one of the organization's active Kraken accounts."
NO_OWN_KEY = (
    "You have no active trading key of your own for {account}. Add one under “API keys”; "
    "the desk never trades with another member's key."
)
KEY_NOT_CHECKED = (
    "Your trading key for {account} has not passed its permission check yet; test it under "
    "“API keys”."
)
HALTED = "Trading is halted for the organization (kill switch, since {since})."
SYSTEM_STATUS = {
    "maintenance": "Kraken is in maintenance: no orders can be placed.",
    "cancel_only": "Kraken accepts only cancellations right now (cancel-only).",
    "post_only": "Kraken accepts only post-only limit orders right now (post-only).",
}
PAIR_STATUS = {
    "maintenance": "{pair} is in maintenance on Kraken: no orders can be placed.",
    "cancel_only": "{pair} accepts only cancellations right now (cancel-only).",
    "post_only": "{pair} accepts only post-only limit orders right now (post-only).",
    "limit_only": "{pair} accepts only limit orders right now (limit-only).",
    "reduce_only": (
        "{pair} accepts only orders that reduce a margin position (reduce-only); the desk "
        "places spot orders only."
    ),
    "delisted": "{pair} is delisted on Kraken.",
    "work_in_progress": "{pair} is not open for trading yet on Kraken.",
}
UNKNOWN_PAIR = "Kraken has no such pair (or its rules are not loaded yet)."
PAIR_OFFLINE = "{pair} is not tradable on Kraken ({status})."
QUANTITY_REQUIRED = "Enter a quantity greater than zero."
QUANTITY_DECIMALS = "{pair} takes at most {places} decimals of {base}."
BELOW_ORDERMIN = "The minimum order for {pair} is {ordermin} {base}."
BELOW_COSTMIN = "The minimum order value for {pair} is {costmin} {quote}."
PRICE_REQUIRED = "This order type needs a price."
PRICE2_REQUIRED = "This order type needs a limit price (second price)."
PRICE_NOT_ALLOWED = "A market order has no price."
PRICE_INVALID = "Enter a price (e.g. 50000), or relative to the last trade: +100, -1.5%."
PRICE_POSITIVE = "The price must be greater than zero."
PRICE_TICK = "{pair} prices move in steps of {tick}."
NO_LAST_TRADE = "No recent trade price to resolve a relative price; enter an absolute price."
TRAILING_OFFSET = "A trailing stop takes an offset from the market: +50 or +1.5%."
TIF_GTD_EXPIRY = "Good-till-date needs an expiry in the future."
TIF_EXPIRY_ONLY_GTD = "An expiry is only for good-till-date orders."
TIF_MARKET = "A market order cannot be good-till-date."
POST_ONLY_TYPES = "Post-only is only for limit and iceberg orders."
POST_ONLY_TIF = "A post-only order must rest: good-till-cancelled or good-till-date."
QUOTE_ONLY_MARKET_BUY_VIQC = (
    "A market sell in the quote currency needs a book to convert it; none is published now."
)
QUOTE_NEEDS_PRICE = "Enter a price first: a quantity in {quote} is converted at it."
QUOTE_TOO_SMALL = "{amount} {quote} buys less than one lot of {base} at this price."
DISPLAY_REQUIRED = "An iceberg order needs a visible quantity."
DISPLAY_RANGE = "The visible quantity must be above zero and below the whole quantity."
DISPLAY_ONLY_ICEBERG = "A visible quantity is only for iceberg orders."
CLOSE_PRICE_REQUIRED = "The conditional close needs a price."
CLOSE_TYPES = "A conditional close is a limit, stop-loss or take-profit order."
CONFIRM_FAR = "The price is {distance}% from the last trade ({last}); confirm to send it."
CONFIRM_LARGE = "The order is worth {value} {currency}; confirm to send it."
CONFIRM_BOTH = "Tick “I confirm” to send this order."
TRIGGER_ONLY_TRIGGERED = "A trigger is only for stop, take-profit and trailing orders."

PRICED = frozenset(
    {
        OrderType.LIMIT,
        OrderType.STOP_LOSS,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.TRAILING_STOP,
        OrderType.TRAILING_STOP_LIMIT,
        OrderType.ICEBERG,
    }
)
TWO_PRICES = frozenset(
    {OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT, OrderType.TRAILING_STOP_LIMIT}
)
TRIGGERED = frozenset(
    {
        OrderType.STOP_LOSS,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.TRAILING_STOP,
        OrderType.TRAILING_STOP_LIMIT,
    }
)
TRAILING = frozenset({OrderType.TRAILING_STOP, OrderType.TRAILING_STOP_LIMIT})
POST_ONLY_OK = frozenset({OrderType.LIMIT, OrderType.ICEBERG})
CLOSE_OK = frozenset(
    {
        OrderType.LIMIT,
        OrderType.STOP_LOSS,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)
LIMIT_PRICED = frozenset({OrderType.LIMIT, OrderType.ICEBERG})

# At most 15 digits before the point and 18 after: every amount Kraken takes, and nothing whose
# arithmetic could leave Decimal's precision.
_DIGITS = r"(\d{1,15}(?:\.\d{1,18})?)"
_RELATIVE = re.compile(r"^\s*([+-])\s*" + _DIGITS + r"\s*(%?)\s*$")
_ABSOLUTE = re.compile(r"^\s*" + _DIGITS + r"\s*$")
_OFFSET = re.compile(r"^\s*\+?\s*" + _DIGITS + r"\s*(%?)\s*$")
MAX_AMOUNT = Decimal("1e15")
QUANTITY_TOO_LARGE = "That quantity is beyond anything Kraken accepts."
MAX_DIGITS = 30  # anything longer is not a price or a quantity anyone means


@dataclass
class Ticket:
    """What the trader entered. Texts stay texts until the rules read them (relative prices)."""

    account: KrakenAccount | None = None
    pair: str = ""
    side: str = Side.BUY
    order_type: str = OrderType.LIMIT
    quantity: Decimal | None = None
    quantity_in: str = "base"  # or "quote"
    price: str = ""
    price2: str = ""
    trigger: str = ""
    time_in_force: str = TimeInForce.GTC
    expires_at: datetime | None = None
    post_only: bool = False
    fee_currency: str = FeeCurrency.DEFAULT
    display_volume: Decimal | None = None
    close_order_type: str = ""
    close_price: str = ""
    close_price2: str = ""
    confirmed: bool = False


@dataclass
class Estimate:
    volume: Decimal | None = None  # base
    avg_price: Decimal | None = None
    cost: Decimal | None = None  # quote
    fee: Decimal | None = None  # quote
    fee_pct: Decimal | None = None
    fee_source: str = ""
    liquidity: str = ""  # "taker", "maker", "mixed"
    fills_now: Decimal | None = None  # how much would trade at once against the book
    book_short: bool = False  # the book is thinner than the order


@dataclass
class Check:
    errors: dict[str, list[str]] = field(default_factory=dict)
    confirmations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] | None = None
    credential: Credential | None = None
    pair: AssetPair | None = None
    volume: Decimal | None = None
    quote_quantity: Decimal | None = None
    viqc: bool = False
    price: Decimal | None = None
    price2: Decimal | None = None
    notional: Decimal | None = None  # quote
    notional_reporting: Decimal | None = None
    reporting_currency: str = ""
    estimate: Estimate = field(default_factory=Estimate)
    book: market.Book = market.EMPTY_BOOK
    halted: bool = False
    # What the ticket offers, so the page shows only what is allowed (and says why not).
    allowed_types: list[str] = field(default_factory=list)
    allowed_tifs: list[str] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        messages = self.errors.setdefault(name, [])
        if message not in messages:
            messages.append(message)

    @property
    def ok(self) -> bool:
        return not self.errors and self.params is not None

    @property
    def needs_confirmation(self) -> bool:
        return bool(self.confirmations)

    @property
    def refusal_errors(self) -> dict[str, list[str]]:
        """The errors that are refusals (everything but an unticked confirmation)."""
        return {k: v for k, v in self.errors.items() if k != "confirmed"}


def own_trading_key(*, membership: Membership, account: KrakenAccount) -> Credential | None:
    """The member's own active trading key on `account` (personal first, then a designated key
    they stored themselves): never another member's."""
    return (
        Credential.objects.filter(
            owner=membership,
            org_id=membership.org_id,
            account=account,
            use=Use.TRADING,
            status=Credential.Status.ACTIVE,
        )
        .select_related("account")
        .order_by("designated", "-created_at")
        .first()
    )


def active_halt(org_id: int) -> KillSwitch | None:
    return KillSwitch.objects.filter(org_id=org_id, released_at__isnull=True).first()


def _number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def resolve_price(
    text: str, *, last: Decimal | None, pair: AssetPair, side: str
) -> tuple[Decimal | None, str | None]:
    """(absolute price, error). Absolute text must sit on the tick; a relative one (`+100`,
    `-1.5%`, against the last trade) is rounded to the tick, down for a buy and up for a sell
    (never a worse price than asked)."""
    text = (text or "").strip()
    if len(text) > MAX_DIGITS:
        return None, PRICE_INVALID
    if match := _ABSOLUTE.match(text):
        value = _number(match.group(1))
        if value is None:
            return None, PRICE_INVALID
        if value <= 0:
            return None, PRICE_POSITIVE
        on_tick = quantize_price(pair, value, rounding=ROUND_DOWN)
        if on_tick != value:
            tick = pair.tick_size or Decimal(1).scaleb(-pair.pair_decimals)
            return None, PRICE_TICK.format(pair=pair.symbol, tick=tick.normalize())
        return value, None
    if match := _RELATIVE.match(text):
        if last is None:
            return None, NO_LAST_TRADE
        sign, amount, percent = match.groups()
        delta = _number(amount)
        if delta is None:
            return None, PRICE_INVALID
        if percent:
            delta = last * delta / Decimal(100)
        value = last + delta if sign == "+" else last - delta
        if value <= 0:
            return None, PRICE_POSITIVE
        rounding = ROUND_DOWN if side == Side.BUY else ROUND_UP
        value = quantize_price(pair, value, rounding=rounding)
        if value <= 0:
            return None, PRICE_POSITIVE
        return value, None
    return None, PRICE_INVALID


def trailing_offset(text: str, *, pair: AssetPair) -> tuple[str | None, str | None]:
    """Kraken's trailing offset (`+50`, `+1.5%`) from `50`, `+50`, `1.5%`, or an error."""
    match = _OFFSET.match(text or "") if len(text or "") <= MAX_DIGITS else None
    if not match:
        return None, TRAILING_OFFSET
    amount = _number(match.group(1))
    if amount is None or amount <= 0:
        return None, TRAILING_OFFSET
    if match.group(2):
        return f"+{amount.normalize():f}%", None
    on_tick = quantize_price(pair, amount, rounding=ROUND_DOWN)
    if on_tick != amount:
        tick = pair.tick_size or Decimal(1).scaleb(-pair.pair_decimals)
        return None, PRICE_TICK.format(pair=pair.symbol, tick=tick.normalize())
    return f"+{amount.normalize():f}", None


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


def _choice(value: str, choices: type[Any]) -> bool:
    return value in set(choices.values)


def _status_rules(check: Check, ticket: Ticket, symbol: str) -> None:
    """Kraken's system and pair status, as the feeder last received them. A status nobody has
    received (no feeder) blocks nothing here: Kraken enforces its own status at the door."""
    system = market.system_status().status
    pair_word = market.pair_status(symbol).status if symbol else None
    types = list(OrderType.values)
    tifs = list(TimeInForce.values)
    for word, table, target in (
        (system, SYSTEM_STATUS, "__all__"),
        (pair_word, PAIR_STATUS, "pair"),
    ):
        if not word or word == "online":
            continue
        message = table.get(word)
        if message is None:
            message = PAIR_OFFLINE.format(pair=symbol, status=word) if target == "pair" else ""
            if not message:
                continue
            check.add(target, message)
            types = []
            continue
        message = message.format(pair=symbol)
        if word in ("post_only",):
            types = [t for t in types if t in LIMIT_PRICED]
            tifs = [t for t in tifs if t in (TimeInForce.GTC, TimeInForce.GTD)]
            if ticket.order_type not in LIMIT_PRICED or not ticket.post_only:
                check.add(
                    "order_type" if ticket.order_type not in LIMIT_PRICED else "post_only", message
                )
        elif word == "limit_only":
            types = [t for t in types if t in LIMIT_PRICED]
            if ticket.order_type not in LIMIT_PRICED:
                check.add("order_type", message)
        else:
            types = []
            check.add(target, message)
    check.allowed_types = types
    check.allowed_tifs = tifs


def ticket_check(
    *, membership: Membership, ticket: Ticket, exclude_order_id: int | None = None
) -> Check:
    """Every rule the order must pass, with its messages per field (see the module doc)."""
    check = Check()
    org = membership.org
    check.reporting_currency = org.reporting_currency
    if not membership.can(Capability.TRADE):
        check.add("__all__", NOT_A_TRADER)
    account = ticket.account
    if account is None or account.org_id != org.pk or account.archived_at is not None:
        check.add("account", NO_ACCOUNT)
        account = None
    if account is not None:
        check.credential = own_trading_key(membership=membership, account=account)
        if check.credential is None:
            check.add("account", NO_OWN_KEY.format(account=account.label))
        elif check.credential.probe_status != Credential.ProbeStatus.DONE:
            check.add("account", KEY_NOT_CHECKED.format(account=account.label))
    halt = active_halt(org.pk)
    if halt is not None:
        check.halted = True
        since = timezone.localtime(halt.activated_at).strftime("%Y-%m-%d %H:%M %Z")
        check.add("__all__", HALTED.format(since=since))

    pair = market.pair_rules(ticket.pair)
    check.pair = pair
    if pair is None:
        check.add("pair", UNKNOWN_PAIR)
        _status_rules(check, ticket, "")
        return check
    symbol = pair.symbol
    if pair.status not in ("online", "limit_only", "post_only", "reduce_only", "cancel_only"):
        check.add("pair", PAIR_OFFLINE.format(pair=symbol, status=pair.status))
    _status_rules(check, ticket, symbol)
    book = market.book(symbol)
    check.book = book

    side = ticket.side
    if not _choice(side, Side):
        check.add("side", "Choose buy or sell.")
        return check
    order_type = ticket.order_type
    if not _choice(order_type, OrderType):
        check.add("order_type", "Choose an order type.")
        return check
    tif = ticket.time_in_force
    if not _choice(tif, TimeInForce):
        check.add("time_in_force", "Choose a time in force.")
        return check

    # Prices.
    price: Decimal | None = None
    price2: Decimal | None = None
    price_wire: str | None = None
    price2_wire: str | None = None
    if order_type == OrderType.MARKET:
        if ticket.price.strip() or ticket.price2.strip():
            check.add("price", PRICE_NOT_ALLOWED)
    elif not ticket.price.strip():
        check.add("price", PRICE_REQUIRED)
    elif order_type in TRAILING:
        price_wire, error = trailing_offset(ticket.price, pair=pair)
        if error:
            check.add("price", error)
    else:
        price, error = resolve_price(ticket.price, last=book.last, pair=pair, side=side)
        if error:
            check.add("price", error)
        else:
            price_wire = f"{price:f}"
    if order_type in TWO_PRICES:
        if not ticket.price2.strip():
            check.add("price2", PRICE2_REQUIRED)
        elif order_type in TRAILING:
            price2_wire, error = trailing_offset(ticket.price2, pair=pair)
            if error:
                check.add("price2", error)
        else:
            price2, error = resolve_price(ticket.price2, last=book.last, pair=pair, side=side)
            if error:
                check.add("price2", error)
            else:
                price2_wire = f"{price2:f}"
    elif order_type != OrderType.MARKET and ticket.price2.strip():
        check.add("price2", "This order type has one price.")
    check.price, check.price2 = price, price2
    if ticket.trigger and order_type not in TRIGGERED:
        check.add("trigger", TRIGGER_ONLY_TRIGGERED)
    if ticket.trigger and not _choice(ticket.trigger, Trigger):
        check.add("trigger", "Choose the last trade or the index price.")

    # Time in force and flags.
    now = timezone.now()
    if tif == TimeInForce.GTD:
        if ticket.expires_at is None or ticket.expires_at <= now:
            check.add("expires_at", TIF_GTD_EXPIRY)
        if order_type == OrderType.MARKET:
            check.add("time_in_force", TIF_MARKET)
    elif ticket.expires_at is not None:
        check.add("expires_at", TIF_EXPIRY_ONLY_GTD)
    if ticket.post_only:
        if order_type not in POST_ONLY_OK:
            check.add("post_only", POST_ONLY_TYPES)
        if tif not in (TimeInForce.GTC, TimeInForce.GTD):
            check.add("post_only", POST_ONLY_TIF)
    if not _choice(ticket.fee_currency, FeeCurrency):
        check.add("fee_currency", "Choose the fee currency.")
    if order_type == OrderType.ICEBERG:
        if ticket.display_volume is None:
            check.add("display_volume", DISPLAY_REQUIRED)
    elif ticket.display_volume is not None:
        check.add("display_volume", DISPLAY_ONLY_ICEBERG)

    # Quantity: base, or quote (viqc for a market buy; converted and rounded down otherwise).
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
    check.volume, check.quote_quantity, check.viqc = volume, quote_quantity, viqc

    # Conditional close.
    close: dict[str, str] | None = None
    if ticket.close_order_type:
        if ticket.close_order_type not in CLOSE_OK:
            check.add("close_order_type", CLOSE_TYPES)
        elif not ticket.close_price.strip():
            check.add("close_price", CLOSE_PRICE_REQUIRED)
        else:
            close_side = Side.SELL if side == Side.BUY else Side.BUY
            close_price, error = resolve_price(
                ticket.close_price, last=book.last, pair=pair, side=close_side
            )
            if error:
                check.add("close_price", error)
            else:
                close = {"ordertype": ticket.close_order_type, "price": f"{close_price:f}"}
                if ticket.close_order_type in TWO_PRICES:
                    if not ticket.close_price2.strip():
                        check.add("close_price2", PRICE2_REQUIRED)
                    else:
                        close_price2, error = resolve_price(
                            ticket.close_price2, last=book.last, pair=pair, side=close_side
                        )
                        if error:
                            check.add("close_price2", error)
                        else:
                            close["price2"] = f"{close_price2:f}"

    # The estimate: what trades at once against the book, at what average, and the fee.
    estimate = _estimate(check, ticket, pair, book, volume, quote_quantity, viqc, price)
    check.estimate = estimate
    notional = _notional(order_type, price, price2, volume, quote_quantity, viqc, estimate, book)
    check.notional = notional
    if (
        notional is not None
        and pair.costmin
        and notional < pair.costmin
        and "quantity" not in check.errors
    ):
        check.add(
            "quantity",
            BELOW_COSTMIN.format(
                pair=pair.symbol, costmin=pair.costmin.normalize(), quote=pair.quote
            ),
        )
    if notional is not None:
        try:
            check.notional_reporting = value_in(
                asset=pair.quote, quantity=notional, currency=org.reporting_currency
            ).value
        except (ConversionError, ValueError):
            check.notional_reporting = None

    _spendable_note(check, ticket, pair, volume)
    if check.errors:
        return check

    # Pre-trade risk (limits per organization, account and member).
    if account is None:
        raise RuntimeError("account is set once the checks pass")
    for name, message in risk.risk_check(
        membership=membership,
        account=account,
        pair=symbol,
        order_type=order_type,
        notional_reporting=check.notional_reporting,
        price=price,
        last=book.last,
        exclude_order_id=exclude_order_id,
    ):
        check.add(name, message)
    if check.errors:
        return check

    # Confirmations: far from the market, or large.
    settings_row = DeskSettings.objects.filter(org=org).first()
    band = settings_row.confirm_band_pct if settings_row else Decimal(5)
    threshold = settings_row.confirm_notional if settings_row else None
    if price is not None and book.last and band is not None:
        distance = abs(price - book.last) / book.last * 100
        if distance > band:
            check.confirmations.append(
                CONFIRM_FAR.format(distance=f"{distance:.2f}", last=f"{book.last:f}")
            )
    value = check.notional_reporting
    if threshold is not None and value is not None and value >= threshold:
        check.confirmations.append(
            CONFIRM_LARGE.format(value=f"{value:,.2f}", currency=org.reporting_currency)
        )
    if check.confirmations and not ticket.confirmed:
        check.add("confirmed", CONFIRM_BOTH)

    params: dict[str, Any] = {
        "pair": pair.altname,
        "type": side,
        "ordertype": order_type,
        "volume": f"{(quote_quantity if viqc else volume)}",
    }
    if price_wire is not None:
        params["price"] = price_wire
    if price2_wire is not None:
        params["price2"] = price2_wire
    if ticket.trigger and order_type in TRIGGERED:
        params["trigger"] = ticket.trigger
    oflags = []
    if ticket.post_only:
        oflags.append("post")
    if ticket.fee_currency == FeeCurrency.BASE:
        oflags.append("fcib")
    elif ticket.fee_currency == FeeCurrency.QUOTE:
        oflags.append("fciq")
    if viqc:
        oflags.append("viqc")
    if oflags:
        params["oflags"] = ",".join(oflags)
    if tif != TimeInForce.GTC:
        params["timeinforce"] = tif
    if tif == TimeInForce.GTD and ticket.expires_at is not None:
        params["expiretm"] = str(int(ticket.expires_at.timestamp()))
    if order_type == OrderType.ICEBERG and ticket.display_volume is not None:
        params["displayvol"] = f"{ticket.display_volume:f}"
    if close is not None:
        params["close"] = close
    check.params = params
    return check


SPENDABLE_SHORT = (
    "This needs about {needed} {asset}; the account can spend {spendable} {asset} now "
    "(balances as last reported), so Kraken may refuse it."
)


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
