"""Exchange's own record of each account's orders, written where operations learn of them.

An AddOrder that settles DONE (from Kraken's answer or from what the finder found) records
its order at once, keyed by account and txid, with our cl_ord_id/userref and the operation
that placed it, so the business row can link to it before the private stream reports it; a
CancelOrder that settles DONE marks it. The private streams (issue 10 §6) update the same rows
with fills, status and averages, and add the account's other orders, fills and ledger entries.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction

from apps.exchange.models import ExchangeOrder, Kind, Operation
from apps.kraken.naming import pair_symbol


def _dec(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None


def record_done(operation: Operation) -> None:
    """Called inside the DONE transition's transaction."""
    if operation.validate_only:
        return
    result = operation.result if isinstance(operation.result, dict) else {}
    if operation.kind == Kind.ADD_ORDER:
        _record_order(operation, result)
    elif operation.kind == Kind.CANCEL_ORDER and result.get("count", 1):
        ident = operation.params.get("txid") or result.get("txid")
        orders = ExchangeOrder.objects.filter(account_id=operation.account_id)
        if operation.params.get("cl_ord_id"):
            orders = orders.filter(cl_ord_id=operation.params["cl_ord_id"])
        elif ident:
            orders = orders.filter(txid=ident)
        else:
            return
        orders.update(status="canceled")


def _pair(value: Any) -> str:
    try:
        return pair_symbol(str(value)) if value else ""
    except ValueError:
        return str(value)


def _record_order(operation: Operation, result: dict[str, Any]) -> None:
    txids = result.get("txid") or []
    if not txids:
        return
    params = operation.params
    userref = params.get("userref")
    cl_ord_id = str(params.get("cl_ord_id") or "")
    # The private stream may have recorded the order already (and know more: fills, a final
    # status); the answer only adds what the stream cannot know: the operation that placed it.
    orders = ExchangeOrder.objects.select_for_update().filter(account_id=operation.account_id)
    order = orders.filter(txid=str(txids[0])).first() or (
        orders.filter(cl_ord_id=cl_ord_id).first() if cl_ord_id else None
    )
    if order is not None:
        order.operation = operation
        order.txid = str(txids[0])
        order.cl_ord_id = order.cl_ord_id or cl_ord_id
        if order.userref is None and userref not in (None, ""):
            order.userref = int(userref)
        order.save(update_fields=["operation", "txid", "cl_ord_id", "userref", "updated_at"])
        return
    try:
        with transaction.atomic():  # a savepoint: the transition's transaction survives
            _create_order(operation, str(txids[0]), cl_ord_id, userref, result)
    except IntegrityError:
        _record_order(operation, result)  # the stream recorded it meanwhile: update that


def _create_order(
    operation: Operation, txid: str, cl_ord_id: str, userref: Any, result: dict[str, Any]
) -> None:
    params = operation.params
    ExchangeOrder.objects.create(
        account_id=operation.account_id,
        txid=txid,
        cl_ord_id=cl_ord_id,
        userref=int(userref) if userref not in (None, "") else None,
        operation=operation,
        pair=_pair(params.get("pair")),
        side=str(params.get("type") or ""),
        order_type=str(params.get("ordertype") or ""),
        status=str(result.get("status") or "pending"),
        vol=_dec(params.get("volume")),
        price=_dec(params.get("price")),
    )
