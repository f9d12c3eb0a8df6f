"""The desk, live: an order's row and the kill switch's banner, rendered once after commit and
sent to the members who may see them (every member of the organization may view its orders;
no one outside it), through each one's per-organization member group."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.template.loader import render_to_string

from apps.core.realtime import member_event_on_commit
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Capability, role_can
from apps.trading.models import KillSwitch, Order


def order_element(order_id: int) -> str:
    return f"desk-order-{order_id}"


HALT_ELEMENT = "desk-halt"


def audience(org_id: int) -> list[int]:
    """User ids of the organization's current members whose role may view orders."""
    return sorted(
        user_id
        for user_id, role in Membership.objects.filter(org_id=org_id).values_list("user_id", "role")
        if role_can(role, Capability.VIEW)
    )


def render_order(order: Order, viewer_id: int | None) -> str:
    return render_to_string(
        "trading/_order.html#order-row", {"order": order, "viewer_id": viewer_id, "oob": True}
    )


def render_open_orders(order: Order) -> str:
    from apps.trading.selectors import open_orders

    return render_to_string(
        "trading/_order.html#open-orders",
        {
            "account": order.account,
            "open_orders": open_orders(org=order.org, account=order.account),
            "oob": True,
        },
    )


def render_halt(org: Organization) -> str:
    halt = KillSwitch.objects.filter(org=org, released_at__isnull=True).first()
    return render_to_string("trading/_halt.html#halt-banner", {"halt": halt, "oob": True})


def _publish_order(order_id: int) -> None:
    order = (
        Order.objects.select_related("placed_by__user", "credential", "account", "org")
        .filter(pk=order_id)
        .first()
    )
    if order is None:
        return
    # The placer's rows carry their actions (cancel, submit again): one rendering for them,
    # one for everyone else who may see the organization's orders.
    placer = order.placed_by.user_id if order.placed_by is not None else None
    viewers = audience(order.org_id)
    open_list = (f"desk-open-{order.account_id}", render_open_orders(order))
    for viewer_id, user_ids in (
        (placer, [u for u in viewers if u == placer]),
        (None, [u for u in viewers if u != placer]),
    ):
        if not user_ids:
            continue
        member_event_on_commit(
            org_id=order.org_id,
            user_ids=user_ids,
            parts=[
                (order_element(order.pk), render_order(order, viewer_id)),
                open_list,
            ],
        )


def _publish_halt(org_id: int) -> None:
    org = Organization.objects.filter(pk=org_id).first()
    if org is None:
        return
    member_event_on_commit(
        org_id=org.pk, user_ids=audience(org.pk), parts=[(HALT_ELEMENT, render_halt(org))]
    )


def _publish_balances(account_id: int) -> None:
    from apps.exchange.balances import account_balances
    from apps.orgs.models import KrakenAccount

    account = KrakenAccount.objects.filter(pk=account_id).first()
    if account is None:
        return
    html = render_to_string(
        "trading/_balances.html#balances",
        {"account": account, "balances": account_balances(account=account), "oob": True},
    )
    member_event_on_commit(
        org_id=account.org_id,
        user_ids=audience(account.org_id),
        parts=[(f"desk-balances-{account.pk}", html)],
    )


def balances_changed_on_commit(account_id: int) -> None:
    transaction.on_commit(partial(_publish_balances, account_id), robust=True)


def order_changed_on_commit(order: Order) -> None:
    transaction.on_commit(partial(_publish_order, order.pk), robust=True)


def halt_changed_on_commit(org: Organization) -> None:
    transaction.on_commit(partial(_publish_halt, org.pk), robust=True)
