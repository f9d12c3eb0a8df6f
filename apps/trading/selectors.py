"""Reads for the desk. Every member whose role may view (Capability.VIEW) sees the
organization's orders; nobody sees another organization's (a 404, not a 403)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from apps.exchange.models import ExchangeFill, Operation
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.trading.models import LIVE_STATES, KillSwitch, Order

ORDER_NOT_FOUND = "No such order."
ACCOUNT_NOT_FOUND = "No such account."


def desk_accounts(*, org: Organization) -> QuerySet[KrakenAccount]:
    return KrakenAccount.objects.filter(org=org, archived_at__isnull=True).order_by(
        "kind", "label", "id"
    )


def desk_account_get(*, org: Organization, pk: int | str | None) -> KrakenAccount | None:
    """The chosen account, or the organization's first; None when it has none."""
    accounts = desk_accounts(org=org)
    if pk not in (None, ""):
        try:
            account = accounts.filter(pk=int(str(pk))).first()
        except ValueError:
            account = None
        if account is None:
            raise Http404(ACCOUNT_NOT_FOUND)
        return account
    return accounts.first()


def _orders(org: Organization) -> QuerySet[Order]:
    return Order.objects.filter(org=org).select_related(
        "org", "placed_by__user", "credential", "account", "operation"
    )


def order_get(*, org: Organization, pk: int) -> Order:
    order = _orders(org).filter(pk=pk).first()
    if order is None:
        raise Http404(ORDER_NOT_FOUND)
    return order


def open_orders(*, org: Organization, account: KrakenAccount | None) -> QuerySet[Order]:
    orders = _orders(org).filter(state__in=LIVE_STATES)
    if account is not None:
        orders = orders.filter(account=account)
    return orders.order_by("-created_at", "-id")[:100]


def recent_orders(*, membership: Membership, limit: int = 20) -> QuerySet[Order]:
    """The member's own latest orders, whatever their state (NOT_PLACED ones included)."""
    return (
        _orders(membership.org).filter(placed_by=membership).order_by("-created_at", "-id")[:limit]
    )


def recent_fills(*, account: KrakenAccount | None, limit: int = 20) -> QuerySet[ExchangeFill]:
    if account is None:
        return ExchangeFill.objects.none()
    return ExchangeFill.objects.filter(account=account).order_by("-executed_at", "-id")[:limit]


def active_halt(*, org: Organization) -> KillSwitch | None:
    return (
        KillSwitch.objects.filter(org=org, released_at__isnull=True)
        .select_related("activated_by__user")
        .first()
    )


def preflight_get(*, membership: Membership, pk: int) -> Operation:
    """A validate-only AddOrder the member asked for (no one else's)."""
    operation = Operation.objects.filter(
        pk=pk, org_id=membership.org_id, requested_by_id=membership.user_id, validate_only=True
    ).first()
    if operation is None:
        raise Http404(ORDER_NOT_FOUND)
    return operation
