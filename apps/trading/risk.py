"""Pre-trade risk limits (issue 11 §2), checked on the server before anything is sent.

Every RiskLimit row that applies to an order is checked: the organization's (no account, no
member), the account's, the member's (on every account, or on one). Each counts within its own
scope: the member's daily notional counts the member's orders, the account's counts the
account's. "Daily" is the organization's business day (apps.orgs.business_day). Amounts are in
the organization's reporting currency; an order whose value cannot be converted (no fresh price)
is refused wherever a notional limit applies, rather than let through unmeasured.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from apps.market.conversion import ConversionError, value_in
from apps.orgs.business_day import business_day_bounds
from apps.orgs.models import KrakenAccount, Membership
from apps.trading.models import FINAL_STATES, LIVE_STATES, Order, OrderState, RiskLimit

PAIR_NOT_ALLOWED = "{pair} is not among the pairs allowed ({scope} limit)."
TYPE_NOT_ALLOWED = "{order_type} orders are not allowed ({scope} limit)."
ORDER_NOTIONAL = (
    "The order is worth {value} {currency}, above the maximum of {limit} {currency} per order "
    "({scope} limit)."
)
DAILY_NOTIONAL = (
    "Today's orders on {pair} would reach {value} {currency}, above the daily maximum of "
    "{limit} {currency} ({scope} limit)."
)
OPEN_EXPOSURE = (
    "Open orders on {pair} would reach {value} {currency}, above the maximum open exposure of "
    "{limit} {currency} ({scope} limit)."
)
OPEN_ORDERS = "{count} orders are open already, the maximum ({scope} limit)."
PRICE_BAND = (
    "The price is {distance}% from the last trade ({last}), outside the band of {band}% "
    "({scope} limit)."
)
NO_PRICE_FOR_BAND = (
    "No recent trade price to check the price band against ({scope} limit); try again when "
    "the market feed is live."
)
NO_VALUE = (
    "The order's value in {currency} cannot be measured right now (no fresh price), and a "
    "notional limit applies ({scope} limit)."
)


def limits_for(*, membership: Membership, account: KrakenAccount) -> QuerySet[RiskLimit]:
    return RiskLimit.objects.filter(org_id=membership.org_id).filter(
        (Q(account__isnull=True) | Q(account=account))
        & (Q(member__isnull=True) | Q(member=membership))
    )


def _scope_orders(limit: RiskLimit) -> QuerySet[Order]:
    orders = Order.objects.filter(org_id=limit.org_id)
    if limit.account_id:
        orders = orders.filter(account_id=limit.account_id)
    if limit.member_id:
        orders = orders.filter(placed_by_id=limit.member_id)
    return orders


def _scope(limit: RiskLimit) -> str:
    if limit.member_id and limit.account_id:
        return "your limit on this account"
    if limit.member_id:
        return "your limit"
    if limit.account_id:
        return "account"
    return "organization"


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def notional_in_reporting(*, quote: str, notional: Decimal, currency: str) -> Decimal | None:
    """An order's quote-currency notional in the organization's reporting currency (what the
    limits are set in and what `notional_reporting` stores), or None when no fresh price can
    convert it. The one conversion used at submit, amend and stream sync."""
    try:
        return value_in(asset=quote, quantity=notional, currency=currency).value
    except (ConversionError, ValueError):
        return None


def risk_check(
    *,
    membership: Membership,
    account: KrakenAccount,
    pair: str,
    order_type: str,
    notional_reporting: Decimal | None,
    price: Decimal | None,
    last: Decimal | None,
    exclude_order_id: int | None = None,
) -> list[tuple[str, str]]:
    """[(field, message)] for every limit the order would break; empty when it passes."""
    refusals: list[tuple[str, str]] = []
    currency = membership.org.reporting_currency
    start, end = business_day_bounds(membership.org, timezone.now())
    for limit in limits_for(membership=membership, account=account):
        scope = _scope(limit)
        orders = _scope_orders(limit)
        if exclude_order_id is not None:
            orders = orders.exclude(pk=exclude_order_id)
        if limit.allowed_pairs and pair not in limit.allowed_pairs:
            refusals.append(("pair", PAIR_NOT_ALLOWED.format(pair=pair, scope=scope)))
        if limit.allowed_order_types and order_type not in limit.allowed_order_types:
            label = order_type.replace("-", " ").capitalize()
            refusals.append(("order_type", TYPE_NOT_ALLOWED.format(order_type=label, scope=scope)))
        if limit.max_open_orders is not None:
            count = orders.filter(state__in=LIVE_STATES).count()
            if count >= limit.max_open_orders:
                refusals.append(("__all__", OPEN_ORDERS.format(count=count, scope=scope)))
        if limit.price_band_pct is not None and price is not None:
            if last is None or last <= 0:
                refusals.append(("price", NO_PRICE_FOR_BAND.format(scope=scope)))
            else:
                distance = abs(price - last) / last * 100
                if distance > limit.price_band_pct:
                    refusals.append(
                        (
                            "price",
                            PRICE_BAND.format(
                                distance=f"{distance:.2f}",
                                last=f"{last:f}",
                                band=f"{limit.price_band_pct.normalize():f}",
                                scope=scope,
                            ),
                        )
                    )
        notional_limits = (
            limit.max_order_notional,
            limit.max_daily_notional,
            limit.max_open_exposure,
        )
        if all(value is None for value in notional_limits):
            continue
        if notional_reporting is None:
            refusals.append(("quantity", NO_VALUE.format(currency=currency, scope=scope)))
            continue
        if limit.max_order_notional is not None and notional_reporting > limit.max_order_notional:
            refusals.append(
                (
                    "quantity",
                    ORDER_NOTIONAL.format(
                        value=_money(notional_reporting),
                        limit=_money(limit.max_order_notional),
                        currency=currency,
                        scope=scope,
                    ),
                )
            )
        if limit.max_daily_notional is not None:
            today = (
                orders.filter(pair=pair, created_at__gte=start, created_at__lt=end)
                .exclude(state__in=[OrderState.REJECTED, OrderState.NOT_PLACED])
                .exclude(external=True)
                .aggregate(total=Sum("notional_reporting"))["total"]
            ) or Decimal(0)
            if today + notional_reporting > limit.max_daily_notional:
                refusals.append(
                    (
                        "quantity",
                        DAILY_NOTIONAL.format(
                            pair=pair,
                            value=_money(today + notional_reporting),
                            limit=_money(limit.max_daily_notional),
                            currency=currency,
                            scope=scope,
                        ),
                    )
                )
        if limit.max_open_exposure is not None:
            open_now = (
                orders.filter(pair=pair, state__in=LIVE_STATES)
                .exclude(state__in=FINAL_STATES)
                .aggregate(total=Sum("notional_reporting"))["total"]
            ) or Decimal(0)
            if open_now + notional_reporting > limit.max_open_exposure:
                refusals.append(
                    (
                        "quantity",
                        OPEN_EXPOSURE.format(
                            pair=pair,
                            value=_money(open_now + notional_reporting),
                            limit=_money(limit.max_open_exposure),
                            currency=currency,
                            scope=scope,
                        ),
                    )
                )
    return refusals
