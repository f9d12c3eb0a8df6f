"""Reads for the desk. Every member whose role may view (Capability.VIEW) sees the
organization's orders; nobody sees another organization's (a 404, not a 403)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import Http404

from apps.exchange.models import ExchangeFill, Operation
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.trading.models import LIVE_STATES, KillSwitch, Order, OrderEvent

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


@dataclass(frozen=True)
class InFlight:
    """An order or amend that was already on its way to Kraken when the halt landed."""

    operation: Operation
    order: Order | None


def halt_in_flight(*, switch: KillSwitch) -> list[InFlight]:
    """The halt's in-flight sends, each with its order (the order it placed, or amended)."""
    operations = list(switch.in_flight.order_by("pk"))
    placed = {
        o.operation_id: o
        for o in Order.objects.filter(operation__in=operations).select_related("placed_by__user")
    }
    amended = {
        e.operation_id: e.order
        for e in OrderEvent.objects.filter(operation__in=operations).select_related(
            "order__placed_by__user"
        )
    }
    return [
        InFlight(operation=op, order=placed.get(op.pk) or amended.get(op.pk)) for op in operations
    ]
