"""How an order follows its operations' outcomes (registered with apps.exchange.hooks in
apps.py; each runs after commit, in its own transaction) and Kraken's own record of it, and the
revocation of keys left cancel-only once nothing placed with them is open."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.exchange.models import ExchangeOrder, Operation, State
from apps.trading import live, market, risk
from apps.trading.models import LIVE_STATES, Order, OrderEvent, OrderState, OrderType
from apps.trading.rules.base import TWO_PRICES
from apps.vault.models import Credential, Use

CANCEL_ONLY_REVOKED = (
    "Revoked automatically: the key was left cancel-only by a role change or removal, and "
    "nothing placed with it is open any more."
)


def order_event(
    order: Order,
    kind: str,
    message: str,
    *,
    actor: Any = None,
    operation: Operation | None = None,
    detail: dict[str, Any] | None = None,
) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        message=message[:300],
        actor=actor if getattr(actor, "pk", None) else None,
        operation=operation,
        detail=detail or {},
    )


def _set_state(order: Order, state: str, reason: str = "") -> None:
    order.state = state
    order.state_reason = reason[:300]
    order.save(update_fields=["state", "state_reason", "updated_at"])


@transaction.atomic
def on_add_order_done(operation: Operation) -> None:
    if operation.validate_only:
        return
    order = Order.objects.select_for_update().filter(operation=operation).first()
    if order is None:
        return
    result = operation.result if isinstance(operation.result, dict) else {}
    txids = result.get("txid") or []
    txid = str(txids[0]) if txids else ""
    exchange_order = (
        ExchangeOrder.objects.filter(account_id=order.account_id, txid=txid).first()
        if txid
        else None
    )
    order.txid = txid
    if exchange_order is not None and order.exchange_order_id is None:
        order.exchange_order = exchange_order
    if order.state == OrderState.SUBMITTING:
        order.state = OrderState.OPEN
    order.save(update_fields=["txid", "exchange_order", "state", "updated_at"])
    if exchange_order is not None:
        order_apply_exchange_status(order, exchange_order)
    order_event(
        order,
        OrderEvent.Kind.PLACED,
        f"Placed on Kraken ({txid})" if txid else "Placed on Kraken",
        operation=operation,
        detail={"result": result},
    )
    live.order_changed_on_commit(order)


@transaction.atomic
def on_add_order_rejected(operation: Operation) -> None:
    if operation.validate_only:
        return
    order = Order.objects.select_for_update().filter(operation=operation).first()
    if order is None:
        return
    reason = operation.error_message or operation.error_code
    _set_state(order, OrderState.REJECTED, reason)
    order_event(
        order,
        OrderEvent.Kind.REJECTED,
        f"Rejected: {reason}",
        operation=operation,
        detail={"error": operation.error_code},
    )
    live.order_changed_on_commit(order)
    transaction.on_commit(cancel_only_keys_revoke, robust=True)


@transaction.atomic
def on_add_order_not_placed(operation: Operation) -> None:
    if operation.validate_only:
        return
    order = Order.objects.select_for_update().filter(operation=operation).first()
    if order is None:
        return
    _set_state(
        order,
        OrderState.NOT_PLACED,
        "Kraken never received it. It was not resent; you may submit it again.",
    )
    order_event(order, OrderEvent.Kind.NOT_PLACED, "Not placed on Kraken", operation=operation)
    live.order_changed_on_commit(order)
    transaction.on_commit(cancel_only_keys_revoke, robust=True)


def _order_for_step(operation: Operation) -> Order | None:
    event = OrderEvent.objects.filter(operation=operation).select_related("order").first()
    return event.order if event is not None else None


@transaction.atomic
def on_amend_done(operation: Operation) -> None:
    order = _order_for_step(operation)
    if order is None:
        return
    params = operation.params
    fields = ["updated_at"]
    if params.get("limit_price") not in (None, ""):
        order.price = Decimal(str(params["limit_price"]))
        fields.append("price")
    if params.get("trigger_price") not in (None, ""):
        order.price = Decimal(str(params["trigger_price"]))
        fields.append("price")
    if params.get("order_qty") not in (None, ""):
        order.volume = Decimal(str(params["order_qty"]))
        fields.append("volume")
    if order_revalue(order):
        fields += ["notional", "notional_reporting"]
    order.save(update_fields=sorted(set(fields)))
    order_event(order, OrderEvent.Kind.AMENDED, "Amended on Kraken", operation=operation)
    live.order_changed_on_commit(order)


@transaction.atomic
def on_amend_failed(operation: Operation) -> None:
    order = _order_for_step(operation)
    if order is None:
        return
    reason = operation.error_message or operation.error_code or "not carried out"
    order_event(order, OrderEvent.Kind.AMEND_FAILED, f"Amend failed: {reason}", operation=operation)
    live.order_changed_on_commit(order)


@transaction.atomic
def on_cancel_done(operation: Operation) -> None:
    order = _order_for_step(operation)
    if order is None:
        return
    if order.state in LIVE_STATES:
        _set_state(order, OrderState.CANCELED, "Cancelled by its trader")
    order_event(order, OrderEvent.Kind.CANCELED, "Cancelled on Kraken", operation=operation)
    live.order_changed_on_commit(order)
    transaction.on_commit(cancel_only_keys_revoke, robust=True)


@transaction.atomic
def on_cancel_failed(operation: Operation) -> None:
    order = _order_for_step(operation)
    if order is None:
        return
    reason = operation.error_message or operation.error_code or "not carried out"
    order_event(
        order, OrderEvent.Kind.CANCEL_FAILED, f"Cancel failed: {reason}", operation=operation
    )
    live.order_changed_on_commit(order)


@transaction.atomic
def on_cancel_all_done(operation: Operation) -> None:
    """Kraken cancelled every open order on the account: mark ours (the private streams
    confirm each one, and mark other programs' orders)."""
    orders = Order.objects.select_for_update().filter(
        account_id=operation.account_id, state=OrderState.OPEN
    )
    for order in orders:
        _set_state(order, OrderState.CANCELED, "Cancelled by Cancel all (kill switch or admin)")
        order_event(order, OrderEvent.Kind.CANCELED, "Cancelled by Cancel all", operation=operation)
        live.order_changed_on_commit(order)
    transaction.on_commit(cancel_only_keys_revoke, robust=True)


_KRAKEN_STATUS = {
    "open": OrderState.OPEN,
    "pending": OrderState.OPEN,
    "closed": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "expired": OrderState.EXPIRED,
}


def order_revalue(order: Order) -> bool:
    """Recompute `notional` (quote currency) and `notional_reporting` (what the risk limits
    sum) after the order's volume or price changed, the way the submit path values it (price2
    for the two-price types). False (nothing changed) when the order cannot be valued from its
    own volume and price (a market buy in quote, a market order).

    When no fresh price converts the new notional, the reporting value is the old one scaled
    by new/old notional (the submit-time rate) rather than None, which the limits' sums would
    count as zero."""
    if order.viqc or order.volume is None:
        return False
    at = (
        order.price2 if order.order_type in TWO_PRICES and order.price2 is not None else order.price
    )
    if at is None:
        return False
    notional = order.volume * at
    pair = market.pair_rules(order.pair)
    reporting = (
        risk.notional_in_reporting(
            quote=pair.quote, notional=notional, currency=order.org.reporting_currency
        )
        if pair is not None
        else None
    )
    if reporting is None and order.notional_reporting is not None and order.notional:
        reporting = order.notional_reporting * notional / order.notional
    order.notional = notional
    order.notional_reporting = reporting
    return True


def order_apply_exchange_status(order: Order, exchange_order: ExchangeOrder) -> bool:
    """Bring the order's state, fills, average price, volume and price in line with exchange's
    record (and, when volume or price moved, the notional the risk limits count)."""
    changed = False
    volume_before, price_before = order.volume, order.price
    state = _KRAKEN_STATUS.get(exchange_order.status)
    if (
        state is not None
        and order.state != state
        and order.state
        not in (
            OrderState.REJECTED,
            OrderState.NOT_PLACED,
        )
    ):
        order.state = state
        changed = True
    if exchange_order.vol_exec != order.filled_volume:
        order.filled_volume = exchange_order.vol_exec
        changed = True
    if exchange_order.avg_price is not None and exchange_order.avg_price != order.avg_price:
        order.avg_price = exchange_order.avg_price
        changed = True
    if exchange_order.vol is not None and order.volume != exchange_order.vol and not order.viqc:
        order.volume = exchange_order.vol
        changed = True
    if (
        exchange_order.price is not None
        and order.order_type
        in (
            OrderType.LIMIT,
            OrderType.ICEBERG,
        )
        and order.price != exchange_order.price
    ):
        order.price = exchange_order.price
        changed = True
    if (order.volume, order.price) != (volume_before, price_before):
        order_revalue(order)
    if changed:
        order.save()
    return changed


def cancel_only_keys_revoke() -> int:
    """Revoke the trading keys left cancel-only by a demotion or removal once nothing placed
    with them is open (or still being submitted). Returns how many it revoked."""
    from apps.vault.services import credential_revoke

    revoked = 0
    keys = Credential.objects.filter(
        status=Credential.Status.CANCEL_ONLY, use=Use.TRADING
    ).select_related("owner", "org")
    for credential in keys:
        busy = Order.objects.filter(credential=credential, state__in=LIVE_STATES).exists()
        if busy:
            continue
        unsettled = Operation.objects.filter(
            credential=credential, state__in=[State.PREPARED, State.SENDING, State.UNKNOWN]
        ).exists()
        if unsettled:
            continue
        try:
            with transaction.atomic():
                credential_revoke(
                    credential=credential, actor=credential.owner, reason=CANCEL_ONLY_REVOKED
                )
            revoked += 1
        except ValidationError:
            continue
    return revoked
