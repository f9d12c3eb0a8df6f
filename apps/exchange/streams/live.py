"""The private streams' live fragments: balances, orders and fills, sent after commit to the
members of the account's organization whose role may view them (Capability.VIEW), each
through their own per-organization member group (apps.core.realtime). Never to another
organization's members, whatever they have open. Who receives them is decided here.
"""

from __future__ import annotations

from django.template.loader import render_to_string

from apps.core.realtime import member_event_on_commit
from apps.exchange.balances import asset_balance
from apps.exchange.models import AccountBalance, ExchangeFill, ExchangeOrder
from apps.exchange.streams.records import Applied
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability, role_can

TEMPLATE = "exchange/streams.html"


def audience(org_id: int) -> list[int]:
    """User ids of the organization's current members who may view balances and orders."""
    return sorted(
        {
            user_id
            for user_id, role in Membership.objects.filter(org_id=org_id).values_list(
                "user_id", "role"
            )
            if role_can(role, Capability.VIEW)
        }
    )


def parts_for(account: KrakenAccount, applied: Applied) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    assets = sorted(
        set(AccountBalance.objects.filter(pk__in=applied.balances).values_list("asset", flat=True))
    )
    for asset in assets:
        balance = asset_balance(account=account, asset=asset)
        element = f"exchange-balance-{account.pk}-{asset}"
        parts.append(
            (
                element,
                render_to_string(
                    f"{TEMPLATE}#balance-row", {"balance": balance, "account_id": account.pk}
                ),
            )
        )
    orders = ExchangeOrder.objects.filter(pk__in=applied.orders).order_by("pk")
    parts.extend(
        (
            f"exchange-order-{order.pk}",
            render_to_string(
                f"{TEMPLATE}#order-row", {"order": order, "new": order.pk in applied.new_orders}
            ),
        )
        for order in orders
    )
    fills = ExchangeFill.objects.filter(pk__in=applied.fills).order_by("executed_at", "pk")
    parts.extend(
        (f"exchange-fill-{fill.pk}", render_to_string(f"{TEMPLATE}#fill-row", {"fill": fill}))
        for fill in fills
    )
    return parts


def publish(account: KrakenAccount, applied: Applied) -> None:
    """Send what changed to the account's organization (call after the records committed)."""
    if not applied:
        return
    parts = parts_for(account, applied)
    if parts:
        member_event_on_commit(
            org_id=account.org_id, user_ids=audience(account.org_id), parts=parts
        )
