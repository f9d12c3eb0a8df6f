"""`ticket_check`: every rule, in order (see the package's doc)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.trading import market, risk
from apps.trading.models import (
    FeeCurrency,
    OrderType,
    Side,
    TimeInForce,
    Trigger,
)
from apps.trading.rules.base import (
    CLOSE_OK,
    POST_ONLY_OK,
    TRAILING,
    TRIGGERED,
    TWO_PRICES,
    Check,
    Ticket,
    _choice,
)
from apps.trading.rules.confirmations import confirmations
from apps.trading.rules.estimate import _estimate, _notional, _spendable_note, quantities
from apps.trading.rules.messages import (
    BELOW_COSTMIN,
    CLOSE_PRICE_REQUIRED,
    CLOSE_TYPES,
    DISPLAY_ONLY_ICEBERG,
    DISPLAY_REQUIRED,
    HALTED,
    KEY_NOT_CHECKED,
    NO_ACCOUNT,
    NO_OWN_KEY,
    NOT_A_TRADER,
    PAIR_OFFLINE,
    POST_ONLY_TIF,
    POST_ONLY_TYPES,
    PRICE2_REQUIRED,
    PRICE_NOT_ALLOWED,
    PRICE_REQUIRED,
    TIF_EXPIRY_ONLY_GTD,
    TIF_GTD_EXPIRY,
    TIF_MARKET,
    TRIGGER_ONLY_TRIGGERED,
    UNKNOWN_PAIR,
)
from apps.trading.rules.pairs import resolve_price, trailing_offset
from apps.trading.rules.statuses import _status_rules, active_halt, own_trading_key
from apps.vault.models import Credential


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
    volume, quote_quantity, viqc = quantities(check, ticket, pair, book, price)
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
        check.notional_reporting = risk.notional_in_reporting(
            quote=pair.quote, notional=notional, currency=org.reporting_currency
        )

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
    confirmations(check, ticket, org, price, book)

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
