"""The desk, from the platform's private streams (issue 11 §3-§4): an order's state, fills and
average price as Kraken reports them, orders placed outside the portal on the same account
(marked external), and the dead man's switch refreshed by the streams process.

Registered in apps.py with apps.exchange.streams.hooks; each hook runs after exchange's rows
have committed, in its own transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.trail import audit_record
from apps.exchange.deadman import cancel_all_orders_after
from apps.exchange.models import AccountBalance, ExchangeFill, ExchangeOrder
from apps.kraken.naming import pair_symbol
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.trading import live
from apps.trading.models import (
    DeadMansSwitch,
    Order,
    OrderEvent,
    OrderState,
    OrderType,
    Side,
)
from apps.trading.outcomes import order_apply_exchange_status
from apps.vault.models import Use
from apps.vault.selectors import NoCredential, designated_credential

logger = logging.getLogger(__name__)

DMS_TOO_SHORT = (
    "The timeout must be at least {minimum} seconds: longer than a standby streams process "
    "takes to take over, so a failover never cancels the account's orders."
)
DMS_TOO_LONG = "The timeout must be below a day (86,399 seconds)."
DMS_NOT_A_TRADER = "Your role does not allow trading."
DMS_NO_KEY = "{account} has no designated trading key: the dead man's switch uses it."


# What a standby needs after the lease has passed to it: a WebSocket token, the connection,
# the subscriptions and their snapshots. Generous: the switch's timeout is built on it.
CONNECT_ALLOWANCE = 15


def takeover_seconds() -> int:
    """How long a standby streams process may take to take over the account's connection:
    the active one's lease running out, the standby's next look at it, and connecting."""
    ttl = float(getattr(settings, "STREAMS_LEASE_TTL", 5))
    poll = float(getattr(settings, "STREAMS_LEASE_POLL", 1))
    return int(ttl + poll) + CONNECT_ALLOWANCE


def minimum_timeout() -> int:
    """Longer than a takeover plus two refresh intervals and a margin."""
    tick = int(getattr(settings, "STREAMS_TICK_SECONDS", 5))
    return takeover_seconds() + 2 * tick + 30


def _symbol(pair: str) -> str:
    try:
        return pair_symbol(pair)
    except ValueError:
        return pair[:32]


def on_exchange_order(exchange_order: ExchangeOrder, placed_by_portal: bool) -> None:
    """Kraken reported an order's state: bring ours in line, or (an order placed outside the
    portal on the account) record it as external."""
    order = (
        Order.objects.select_for_update()
        .filter(account_id=exchange_order.account_id, txid=exchange_order.txid)
        .first()
    )
    if order is None and exchange_order.operation_id is not None:
        order = (
            Order.objects.select_for_update()
            .filter(operation_id=exchange_order.operation_id)
            .first()
        )
    if order is None and exchange_order.cl_ord_id:
        order = (
            Order.objects.select_for_update()
            .filter(account_id=exchange_order.account_id, cl_ord_id=exchange_order.cl_ord_id)
            .first()
        )
    if order is None:
        if placed_by_portal:
            return  # ours, but its AddOrder's hook has not linked it yet: that hook will
        order = _external_order(exchange_order)
        if order is None:
            return
    before = order.state
    if order.exchange_order_id is None or not order.txid:
        order.exchange_order = exchange_order
        order.txid = exchange_order.txid
        order.save(update_fields=["exchange_order", "txid", "updated_at"])
    changed = order_apply_exchange_status(order, exchange_order)
    if changed and order.state != before:
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.STATUS,
            message=f"Kraken: {exchange_order.status}",
            detail={"status": exchange_order.status, "vol_exec": f"{exchange_order.vol_exec}"},
        )
    if changed:
        live.order_changed_on_commit(order)


def _external_order(exchange_order: ExchangeOrder) -> Order | None:
    account = KrakenAccount.objects.filter(pk=exchange_order.account_id).first()
    if account is None:
        return None
    side = exchange_order.side if exchange_order.side in Side.values else Side.BUY
    order_type = (
        exchange_order.order_type
        if exchange_order.order_type in OrderType.values
        else OrderType.LIMIT
    )
    order = Order.objects.create(
        org_id=account.org_id,
        account=account,
        external=True,
        pair=_symbol(exchange_order.pair),
        side=side,
        order_type=order_type,
        volume=exchange_order.vol,
        price=exchange_order.price,
        cl_ord_id=exchange_order.cl_ord_id,
        userref=exchange_order.userref,
        txid=exchange_order.txid,
        exchange_order=exchange_order,
        notional=(exchange_order.vol or Decimal(0)) * (exchange_order.price or Decimal(0)),
        state=OrderState.OPEN,
    )
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.EXTERNAL,
        message="Seen on Kraken: placed outside the portal",
        detail={"txid": exchange_order.txid},
    )
    return order


def on_exchange_fill(fill: ExchangeFill, placed_by_portal: bool) -> None:
    """A fill: the order's filled volume and average come with its order update; here the
    fill joins the order's history and the desk is told."""
    order = Order.objects.filter(account_id=fill.account_id, txid=fill.order_txid).first()
    if order is None:
        return
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.FILL,
        message=f"Filled {fill.qty.normalize():f} at {fill.price.normalize():f}"
        + (" (maker)" if fill.liquidity == "m" else " (taker)" if fill.liquidity == "t" else ""),
        detail={"trade_id": fill.trade_id, "fees": fill.fees},
    )
    live.order_changed_on_commit(order)


def on_balance(balance: AccountBalance) -> None:
    """A wallet's balance or hold changed: the desk's balances of that account, live."""
    live.balances_changed_on_commit(balance.account_id)


# --- Dead man's switch ------------------------------------------------------------------


def dead_mans_switch_arm(
    *, membership: Membership, account: KrakenAccount, timeout: int, request: object = None
) -> DeadMansSwitch:
    """Arm (or re-arm with a new timeout) the account's dead man's switch. It is refreshed by
    the streams process while armed, never by a browser tab."""
    if not membership.can(Capability.TRADE):
        raise PermissionDenied(DMS_NOT_A_TRADER)
    if account.org_id != membership.org_id:
        raise PermissionDenied(DMS_NOT_A_TRADER)
    if timeout < minimum_timeout():
        raise ValidationError(DMS_TOO_SHORT.format(minimum=minimum_timeout()))
    if timeout > 86399:
        raise ValidationError(DMS_TOO_LONG)
    try:
        designated_credential(account=account, use=Use.TRADING)
    except NoCredential:
        raise ValidationError(DMS_NO_KEY.format(account=account.label)) from None
    with transaction.atomic(durable=True):
        switch, _ = DeadMansSwitch.objects.select_for_update().get_or_create(account=account)
        switch.armed = True
        switch.timeout_seconds = timeout
        switch.armed_by = membership
        switch.armed_at = timezone.now()
        switch.last_error = ""
        switch.save()
        audit_record(
            action="trading.dead_mans_switch.armed",
            actor=membership,
            org=membership.org,
            target=account,
            detail={"timeout": timeout},
        )
    dead_mans_switch_refresh(account)
    switch.refresh_from_db()
    return switch


def dead_mans_switch_disarm(*, membership: Membership, account: KrakenAccount) -> DeadMansSwitch:
    if not membership.can(Capability.TRADE) or account.org_id != membership.org_id:
        raise PermissionDenied(DMS_NOT_A_TRADER)
    with transaction.atomic(durable=True):
        switch, _ = DeadMansSwitch.objects.select_for_update().get_or_create(account=account)
        switch.armed = False
        switch.save(update_fields=["armed"])
        audit_record(
            action="trading.dead_mans_switch.disarmed",
            actor=membership,
            org=membership.org,
            target=account,
        )
    try:
        credential = designated_credential(account=account, use=Use.TRADING)
        cancel_all_orders_after(credential=credential, timeout=0)
        DeadMansSwitch.objects.filter(pk=account.pk).update(trigger_at=None, last_error="")
    except Exception as error:  # the timer then runs out once, cancelling; say so
        logger.warning("trading: disarming the switch of account %s failed: %s", account.pk, error)
        DeadMansSwitch.objects.filter(pk=account.pk).update(last_error=str(error)[:300])
    switch.refresh_from_db()
    return switch


def _parse(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def dead_mans_switch_refresh(account: KrakenAccount) -> None:
    """The streams process's tick: while the switch is armed, push Kraken's timer out again.
    A failed refresh is recorded (the page shows it); the next tick tries again."""
    switch = DeadMansSwitch.objects.filter(account_id=account.pk, armed=True).first()
    if switch is None:
        return
    try:
        credential = designated_credential(account=account, use=Use.TRADING)
        result = cancel_all_orders_after(credential=credential, timeout=switch.timeout_seconds)
    except Exception as error:
        logger.warning("trading: dead man's switch refresh failed for %s: %s", account.pk, error)
        DeadMansSwitch.objects.filter(pk=switch.pk).update(last_error=str(error)[:300])
        return
    now = timezone.now()
    trigger = _parse(result.get("triggerTime")) or now + timedelta(seconds=switch.timeout_seconds)
    DeadMansSwitch.objects.filter(pk=switch.pk, armed=True).update(
        last_refreshed_at=now, trigger_at=trigger, last_error=""
    )
