"""The desk's writes: submit, preflight, amend, cancel, cancel-all, the kill switch, and the
order's reaction to its operations' outcomes (issue 11 §2-§3).

Every order, amend and cancel is an exchange operation (`operation_prepare` inside the durable
transaction that writes the order, its event and its audit record); it is sent once after
commit, and an unknown outcome is reconciled, never resent. A submission whose operation ends
NOT_PLACED stays NOT_PLACED: the trader may resubmit it as a new order (`order_resubmit`),
nothing does so by itself.

Refusals (rules, risk, status, kill switch) are audited in their own transaction and raised as
`OrderRefused`, whose messages are per field for the ticket to show.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.core.trail import audit_record
from apps.exchange.models import UNSETTLED, Kind, Operation, State
from apps.exchange.services import operation_prepare
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Capability
from apps.trading import live
from apps.trading.models import (
    DeskSettings,
    KillSwitch,
    Order,
    OrderEvent,
    OrderState,
    OrderType,
)
from apps.trading.outcomes import order_event
from apps.trading.rules import Check, Ticket, active_halt, ticket_check
from apps.vault.models import Credential, Use
from apps.vault.selectors import NoCredential, designated_credential

logger = logging.getLogger(__name__)

NOT_YOURS = "Only the member who placed an order may amend or cancel it."
NOT_OPEN = "This order is not open on Kraken; there is nothing to {action}."
NOT_PLACED_YET = "This order has not reached Kraken yet; wait until it is open to {action} it."
EXTERNAL_ORDER = "This order was placed outside the portal; amend or cancel it where it was placed."
AMEND_NOTHING = "Enter a new price or quantity."
AMEND_TYPES = "Only limit, iceberg and stop orders can be amended."
AMEND_QTY_FILLED = "The new quantity must be above what has already filled ({filled})."
RESUBMIT_ONLY_NOT_PLACED = "Only an order that was not placed can be submitted again."
ALREADY_RESUBMITTED = (
    "This order was already submitted again as order #{pk}; it is not sent a second time."
)
KILL_SWITCH_ROLE = "Only an owner or an admin can use the kill switch."
KILL_SWITCH_ACTIVE = "Trading is halted already."
KILL_SWITCH_NOT_ACTIVE = "Trading is not halted."
CANCEL_ALL_ROLE = "Only an owner or an admin can cancel every order on an account."
KEY_GONE = "The key this order was placed with can no longer cancel it ({status})."


class OrderRefused(ValidationError):
    """The order (or amend) breaks a rule; `check` holds the messages per field."""

    def __init__(self, check: Check) -> None:
        self.check = check
        super().__init__(dict(check.errors.items()) or "Refused.")


def desk_settings(org: Organization) -> DeskSettings:
    row, _ = DeskSettings.objects.get_or_create(org=org)
    return row


def _lock_org(org: Organization) -> None:
    """Serialise the organization's submissions: the limits count orders, so two submitted at
    once must not both pass a limit that only one fits under."""
    DeskSettings.objects.get_or_create(org=org)
    DeskSettings.objects.select_for_update().filter(org=org).get()


def _ticket_detail(ticket: Ticket) -> dict[str, Any]:
    return {
        "account": ticket.account.pk if ticket.account else None,
        "pair": ticket.pair[:32],
        "side": ticket.side[:8],
        "order_type": ticket.order_type[:24],
        "quantity": f"{ticket.quantity}" if ticket.quantity is not None else None,
        "quantity_in": ticket.quantity_in[:8],
        "price": ticket.price[:40],
        "price2": ticket.price2[:40],
        "time_in_force": ticket.time_in_force[:4],
    }


def _audit_refusal(
    *, membership: Membership, action: str, check: Check, detail: dict[str, Any], request: Any
) -> None:
    with transaction.atomic(durable=True):
        audit_record(
            action=action,
            actor=membership,
            org=membership.org,
            detail={**detail, "reasons": check.refusal_errors},
            request=request,
        )


def order_submit(
    *,
    membership: Membership,
    ticket: Ticket,
    request: HttpRequest | None = None,
    resubmission_of: Order | None = None,
) -> Order:
    """Check the ticket again on the server and, if it passes, write the order and its AddOrder
    operation in one transaction (sent once after commit). Raises OrderRefused (audited when a
    rule refused it; an unticked confirmation is only asked for)."""
    refused: Check | None = None
    with transaction.atomic(durable=True):
        _lock_org(membership.org)
        if resubmission_of is not None:
            # Under the organization's lock: a double click, a second tab or the back button
            # must not send the same order twice (each attempt would carry a new cl_ord_id, so
            # nothing further down could tell them apart). A constraint backs this up.
            earlier = Order.objects.filter(resubmission_of=resubmission_of).first()
            if earlier is not None:
                raise ValidationError(ALREADY_RESUBMITTED.format(pk=earlier.pk))
        if ticket.submission:
            # The same ticket again (a double click, a key held down, a repeated POST): the
            # order it already placed, not a second one. Under the organization's lock, so
            # two of them at once are one; the constraint backs it up.
            sent = Order.objects.filter(org=membership.org, submission=ticket.submission).first()
            if sent is not None:
                return sent
        check = ticket_check(membership=membership, ticket=ticket)
        if not check.ok or check.errors:
            refused = check
        else:
            order = _order_create(
                membership=membership,
                ticket=ticket,
                check=check,
                request=request,
                resubmission_of=resubmission_of,
            )
    if refused is not None:
        if refused.refusal_errors:
            _audit_refusal(
                membership=membership,
                action="trading.order.refused",
                check=refused,
                detail=_ticket_detail(ticket),
                request=request,
            )
        raise OrderRefused(refused)
    return order


def _order_create(
    *,
    membership: Membership,
    ticket: Ticket,
    check: Check,
    request: HttpRequest | None,
    resubmission_of: Order | None,
) -> Order:
    if check.params is None:
        raise RuntimeError("check.params is set once the checks pass")
    if check.credential is None:
        raise RuntimeError("check.credential is set once the checks pass")
    if check.pair is None:
        raise RuntimeError("check.pair is set once the checks pass")
    if ticket.account is None:
        raise RuntimeError("ticket.account is set once the checks pass")
    operation = operation_prepare(
        org=membership.org,
        credential=check.credential,
        kind=Kind.ADD_ORDER,
        params=dict(check.params),
        requested_by=membership.user,
    )
    order = Order.objects.create(
        org=membership.org,
        account=ticket.account,
        placed_by=membership,
        credential=check.credential,
        pair=check.pair.symbol,
        side=ticket.side,
        order_type=ticket.order_type,
        volume=check.volume,
        quote_quantity=check.quote_quantity,
        viqc=check.viqc,
        display_volume=ticket.display_volume,
        price=check.price,
        price2=check.price2,
        price_text=ticket.price.strip()[:40],
        price2_text=ticket.price2.strip()[:40],
        trigger=ticket.trigger if "trigger" in check.params else "",
        time_in_force=ticket.time_in_force,
        expires_at=ticket.expires_at,
        post_only=ticket.post_only,
        fee_currency=ticket.fee_currency,
        close_order_type=ticket.close_order_type,
        close_price=Decimal(check.params["close"]["price"]) if "close" in check.params else None,
        close_price2=(
            Decimal(check.params["close"]["price2"])
            if "close" in check.params and "price2" in check.params["close"]
            else None
        ),
        cl_ord_id=str(operation.params.get("cl_ord_id") or ""),
        userref=operation.params.get("userref"),
        submission=ticket.submission[:64],
        notional=check.notional or Decimal(0),
        notional_reporting=check.notional_reporting,
        operation=operation,
        resubmission_of=resubmission_of,
    )
    order_event(
        order,
        OrderEvent.Kind.SUBMITTED,
        "Submitted"
        if resubmission_of is None
        else f"Submitted again (repeats #{resubmission_of.pk})",
        actor=membership.user,
        operation=operation,
        detail={"params": operation.params},
    )
    audit_record(
        action="trading.order.submitted",
        actor=membership,
        org=membership.org,
        target=order,
        detail={
            "operation": operation.pk,
            "account": order.account_id,
            "credential": order.credential_id,
            "pair": order.pair,
            "side": order.side,
            "order_type": order.order_type,
            "volume": f"{order.volume}" if order.volume is not None else None,
            "quote_quantity": (
                f"{order.quote_quantity}" if order.quote_quantity is not None else None
            ),
            "price": f"{order.price}" if order.price is not None else order.price_text,
            "notional_reporting": (
                f"{order.notional_reporting}" if order.notional_reporting is not None else None
            ),
            "confirmed": ticket.confirmed,
        },
        request=request,
    )
    live.order_changed_on_commit(order)
    return order


def order_preflight(*, membership: Membership, ticket: Ticket) -> Operation:
    """Kraken's own answer to the ticket: an AddOrder with validate=true (a validate-only
    operation acts on nothing and blocks nothing). Our rules run first; the preflight only
    adds Kraken's word. Raises OrderRefused."""
    ticket = replace(ticket, confirmed=True)
    with transaction.atomic(durable=True):
        check = ticket_check(membership=membership, ticket=ticket)
        if not check.ok:
            raise OrderRefused(check)
        if check.params is None:
            raise RuntimeError("check.params is set once the checks pass")
        if check.credential is None:
            raise RuntimeError("check.credential is set once the checks pass")
        return operation_prepare(
            org=membership.org,
            credential=check.credential,
            kind=Kind.ADD_ORDER,
            params={**check.params, "validate": True},
            requested_by=membership.user,
        )


def order_resubmit(
    *, membership: Membership, order: Order, request: HttpRequest | None = None
) -> Order:
    """Submit a NOT_PLACED order again, as a new order with a new cl_ord_id (the trader's
    decision, never automatic)."""
    if order.state != OrderState.NOT_PLACED:
        raise ValidationError(RESUBMIT_ONLY_NOT_PLACED)
    if order.placed_by_id != membership.pk:
        raise PermissionDenied(NOT_YOURS)
    ticket = Ticket(
        account=order.account,
        pair=order.pair,
        side=order.side,
        order_type=order.order_type,
        quantity=order.quote_quantity if order.viqc else order.volume,
        quantity_in="quote" if order.viqc else "base",
        price=order.price_text if order.order_type in _TRAILING else _text(order.price),
        price2=order.price2_text if order.order_type in _TRAILING else _text(order.price2),
        trigger=order.trigger,
        time_in_force=order.time_in_force,
        expires_at=order.expires_at,
        post_only=order.post_only,
        fee_currency=order.fee_currency,
        display_volume=order.display_volume,
        close_order_type=order.close_order_type,
        close_price=_text(order.close_price),
        close_price2=_text(order.close_price2),
        confirmed=True,
    )
    return order_submit(
        membership=membership, ticket=ticket, request=request, resubmission_of=order
    )


_TRAILING = frozenset({OrderType.TRAILING_STOP, OrderType.TRAILING_STOP_LIMIT})


def _text(value: Decimal | None) -> str:
    return f"{value:f}" if value is not None else ""


def _own_live_order(membership: Membership, order: Order, action: str) -> None:
    if order.org_id != membership.org_id:
        raise PermissionDenied(NOT_YOURS)
    if order.external:
        raise ValidationError(EXTERNAL_ORDER)
    if order.placed_by_id != membership.pk:
        raise PermissionDenied(NOT_YOURS)
    if order.state == OrderState.SUBMITTING or not order.txid:
        raise ValidationError(NOT_PLACED_YET.format(action=action))
    if order.state != OrderState.OPEN:
        raise ValidationError(NOT_OPEN.format(action=action))


def _order_ref(order: Order) -> dict[str, str]:
    # Never by userref (it is not unique on Kraken's side for other programs' orders).
    return {"cl_ord_id": order.cl_ord_id} if order.cl_ord_id else {"txid": order.txid}


def order_amend(
    *,
    membership: Membership,
    order: Order,
    price: str = "",
    quantity: Decimal | None = None,
    request: HttpRequest | None = None,
) -> Operation:
    """AmendOrder (keeps queue priority where Kraken does: a smaller quantity at the same
    price). The amended order passes the same rules and limits as a new one."""
    _own_live_order(membership, order, "amend")
    if order.order_type not in (
        OrderType.LIMIT,
        OrderType.ICEBERG,
        OrderType.STOP_LOSS,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
    ):
        raise ValidationError(AMEND_TYPES)
    if not price.strip() and quantity is None:
        raise ValidationError(AMEND_NOTHING)
    if quantity is not None and quantity <= order.filled_volume:
        raise ValidationError(AMEND_QTY_FILLED.format(filled=order.filled_volume))
    new_price = price.strip() or _text(order.price)
    ticket = Ticket(
        account=order.account,
        pair=order.pair,
        side=order.side,
        order_type=order.order_type,
        quantity=quantity if quantity is not None else order.volume,
        quantity_in="base",
        price=new_price,
        price2=_text(order.price2),
        time_in_force=order.time_in_force,
        expires_at=order.expires_at
        if order.expires_at and order.expires_at > timezone.now()
        else None,
        post_only=order.post_only,
        fee_currency=order.fee_currency,
        display_volume=order.display_volume,
        confirmed=True,
    )
    if ticket.time_in_force == "GTD" and ticket.expires_at is None:
        ticket = replace(ticket, time_in_force="GTC")
    refused: Check | None = None
    with transaction.atomic(durable=True):
        _lock_org(membership.org)
        # The limits count this order already: they are checked without it.
        check = ticket_check(membership=membership, ticket=ticket, exclude_order_id=order.pk)
        if check.errors:
            refused = check
        else:
            params: dict[str, Any] = dict(_order_ref(order))
            limit_field = (
                "limit_price"
                if order.order_type in (OrderType.LIMIT, OrderType.ICEBERG)
                else "trigger_price"
            )
            if price.strip() and check.price is not None:
                params[limit_field] = f"{check.price:f}"
            if quantity is not None:
                params["order_qty"] = f"{quantity:f}"
            if order.credential is None:
                raise RuntimeError("order.credential is set once the checks pass")
            operation = operation_prepare(
                org=membership.org,
                credential=order.credential,
                kind=Kind.AMEND_ORDER,
                params=params,
                requested_by=membership.user,
            )
            order_event(
                order,
                OrderEvent.Kind.AMEND_REQUESTED,
                "Amend requested",
                actor=membership.user,
                operation=operation,
                detail={"params": operation.params},
            )
            audit_record(
                action="trading.order.amend_requested",
                actor=membership,
                org=membership.org,
                target=order,
                detail={"operation": operation.pk, "params": operation.params},
                request=request,
            )
            live.order_changed_on_commit(order)
    if refused is not None:
        _audit_refusal(
            membership=membership,
            action="trading.order.amend_refused",
            check=refused,
            detail={"order": order.pk, "price": price[:40], "quantity": f"{quantity}"},
            request=request,
        )
        raise OrderRefused(refused)
    return operation


def order_cancel(
    *, membership: Membership, order: Order, request: HttpRequest | None = None
) -> Operation:
    """CancelOrder with the key the order was placed with (a key left cancel-only by a
    demotion still cancels its member's orders). Allowed while halted: it only reduces risk."""
    _own_live_order(membership, order, "cancel")
    if order.credential is None:
        raise RuntimeError("order.credential is set once the checks pass")
    credential = order.credential
    if credential.status not in (Credential.Status.ACTIVE, Credential.Status.CANCEL_ONLY):
        raise ValidationError(KEY_GONE.format(status=credential.get_status_display().lower()))
    with transaction.atomic(durable=True):
        operation = operation_prepare(
            org=membership.org,
            credential=credential,
            kind=Kind.CANCEL_ORDER,
            params=_order_ref(order),
            requested_by=membership.user,
        )
        order_event(
            order,
            OrderEvent.Kind.CANCEL_REQUESTED,
            "Cancel requested",
            actor=membership.user,
            operation=operation,
        )
        audit_record(
            action="trading.order.cancel_requested",
            actor=membership,
            org=membership.org,
            target=order,
            detail={"operation": operation.pk},
            request=request,
        )
        live.order_changed_on_commit(order)
    return operation


def orders_cancel_mine(
    *, membership: Membership, account: KrakenAccount, request: HttpRequest | None = None
) -> tuple[int, list[str]]:
    """Cancel every open order the member placed on `account`, one CancelOrder each: Kraken's
    CancelAll would also cancel colleagues' and other programs' orders on the account."""
    sent = 0
    problems: list[str] = []
    orders = Order.objects.filter(
        org_id=membership.org_id,
        account=account,
        placed_by=membership,
        state=OrderState.OPEN,
        external=False,
    ).exclude(txid="")
    for order in orders:
        try:
            order_cancel(membership=membership, order=order, request=request)
            sent += 1
        except (ValidationError, PermissionDenied) as error:
            problems.append(f"#{order.pk}: {' '.join(getattr(error, 'messages', [str(error)]))}")
    return sent, problems


def _is_key_manager(membership: Membership) -> bool:
    return membership.can(Capability.MANAGE_POLICIES) and membership.can(Capability.OVERSEE_KEYS)


def _cancel_all_account(
    *, membership: Membership, account: KrakenAccount, reason: str
) -> Operation:
    """CancelAll on one account through its designated trading key (raises NoCredential or
    ValidationError(OPERATION_IN_FLIGHT))."""
    credential = designated_credential(account=account, use=Use.TRADING)
    return operation_prepare(
        org=membership.org,
        credential=credential,
        kind=Kind.CANCEL_ALL,
        params={},
        reference={"reason": reason[:100]},
        requested_by=membership.user,
    )


def account_cancel_all(
    *, membership: Membership, account: KrakenAccount, request: HttpRequest | None = None
) -> Operation:
    """Owners and admins: CancelAll on one account — every order on it, other programs'
    included — through the account's designated key, as an exchange operation."""
    if not _is_key_manager(membership):
        raise PermissionDenied(CANCEL_ALL_ROLE)
    if account.org_id != membership.org_id:
        raise PermissionDenied(CANCEL_ALL_ROLE)
    with transaction.atomic(durable=True):
        try:
            operation = _cancel_all_account(
                membership=membership, account=account, reason="cancel-all"
            )
        except NoCredential as error:
            raise ValidationError(str(error)) from None
        audit_record(
            action="trading.account.cancel_all",
            actor=membership,
            org=membership.org,
            target=account,
            detail={"operation": operation.pk},
            request=request,
        )
    return operation


def kill_switch_activate(
    *,
    membership: Membership,
    cancel_all: bool,
    reason: str = "",
    request: HttpRequest | None = None,
) -> KillSwitch:
    """Halt trading for the organization: no order or amend passes the server's checks from
    the commit on (cancels still do). With `cancel_all`, CancelAll on every active account
    through its designated trading key — every order on those accounts, other programs'
    included. Accounts without a designated key (or with a CancelAll already in flight) are
    listed in `skipped`, and the halt holds regardless."""
    if not _is_key_manager(membership):
        raise PermissionDenied(KILL_SWITCH_ROLE)
    with transaction.atomic(durable=True):
        _lock_org(membership.org)
        if active_halt(membership.org_id) is not None:
            raise ValidationError(KILL_SWITCH_ACTIVE)
        switch = KillSwitch.objects.create(
            org=membership.org, activated_by=membership, reason=reason[:300], cancel_all=cancel_all
        )
        operations: list[Operation] = []
        skipped: list[str] = []
        if cancel_all:
            accounts = KrakenAccount.objects.filter(
                org_id=membership.org_id, archived_at__isnull=True
            ).order_by("id")
            for account in accounts:
                try:
                    operations.append(
                        _cancel_all_account(
                            membership=membership, account=account, reason="kill switch"
                        )
                    )
                except (NoCredential, ValidationError) as error:
                    messages = getattr(error, "messages", None) or [str(error)]
                    skipped.append(f"{account.label}: {' '.join(messages)}")
            switch.operations.set(operations)
            switch.skipped = skipped
            switch.save(update_fields=["skipped"])
        # What had already left (or may have): the halt cannot stop it. The page lists these;
        # with cancel_all, each account's CancelAll is issued once more after they settle.
        in_flight = list(
            Operation.objects.filter(
                org_id=membership.org_id,
                kind__in=IN_FLIGHT_KINDS,
                validate_only=False,
                state__in=(State.SENDING, State.UNKNOWN),
            ).order_by("pk")
        )
        switch.in_flight.set(in_flight)
        audit_record(
            action="trading.kill_switch.activated",
            actor=membership,
            org=membership.org,
            target=switch,
            detail={
                "cancel_all": cancel_all,
                "operations": [o.pk for o in operations],
                "skipped": skipped,
                "in_flight": [o.pk for o in in_flight],
                "reason": reason[:300],
            },
            request=request,
        )
        live.halt_changed_on_commit(membership.org)
    return switch


def kill_switch_release(
    *, membership: Membership, request: HttpRequest | None = None
) -> KillSwitch:
    if not _is_key_manager(membership):
        raise PermissionDenied(KILL_SWITCH_ROLE)
    with transaction.atomic(durable=True):
        _lock_org(membership.org)
        switch = active_halt(membership.org_id)
        if switch is None:
            raise ValidationError(KILL_SWITCH_NOT_ACTIVE)
        switch.released_at = timezone.now()
        switch.released_by = membership
        switch.save(update_fields=["released_at", "released_by"])
        audit_record(
            action="trading.kill_switch.released",
            actor=membership,
            org=membership.org,
            target=switch,
            request=request,
        )
        live.halt_changed_on_commit(membership.org)
    return switch


IN_FLIGHT_KINDS = (Kind.ADD_ORDER, Kind.AMEND_ORDER)
REISSUE_REASON = "kill switch: again, after orders in flight settled"


def kill_switch_in_flight_settled(operation: Operation) -> None:
    """An AddOrder or a CancelAll settled while the organization is halted with cancel-all
    (registered as their result hook). An order that was already on its way when the halt
    landed may have reached Kraken after the halt's CancelAll: once every such send on the
    account and that CancelAll have settled, and one of those orders was placed, CancelAll is
    issued once more on the account (an exchange operation like the first), so "cancel
    everything" leaves nothing open. An AddOrder that settles DONE during the halt passed the
    send guard before the halt committed: it counts as in flight even if the halt did not see
    it SENDING."""
    with transaction.atomic(durable=True):
        switch = (
            KillSwitch.objects.select_for_update()
            .select_related("activated_by__org", "activated_by__user")
            .filter(org_id=operation.org_id, released_at__isnull=True, cancel_all=True)
            .first()
        )
        if switch is None:
            return
        account_id = operation.account_id
        if account_id in switch.reissued:
            return
        if operation.kind == Kind.ADD_ORDER and operation.state == State.DONE:
            switch.in_flight.add(operation)
        sends = [o for o in switch.in_flight.all() if o.account_id == account_id]
        cancels = [o for o in switch.operations.all() if o.account_id == account_id]
        if not cancels or any(o.state in UNSETTLED for o in (*sends, *cancels)):
            return  # no CancelAll reached this account, or something is still on its way
        if not any(o.kind == Kind.ADD_ORDER and o.state == State.DONE for o in sends):
            return  # nothing in flight was placed: the first CancelAll was enough
        switch.reissued = [*switch.reissued, account_id]
        account = KrakenAccount.objects.get(pk=account_id)
        try:
            again = _cancel_all_account(
                membership=switch.activated_by, account=account, reason=REISSUE_REASON
            )
        except (NoCredential, ValidationError) as error:
            messages = getattr(error, "messages", None) or [str(error)]
            switch.skipped = [*switch.skipped, f"{account.label} (again): {' '.join(messages)}"]
            switch.save(update_fields=["reissued", "skipped"])
            return
        switch.operations.add(again)
        switch.save(update_fields=["reissued"])
        audit_record(
            action="trading.kill_switch.cancel_all_again",
            org=switch.org,
            target=switch,
            detail={
                "account": account_id,
                "operation": again.pk,
                "after": [o.pk for o in sends],
            },
        )
        live.halt_changed_on_commit(switch.org)


HALTED_AT_SEND = "trading was halted (kill switch) before it left"


def halted_send_guard(operation: Operation) -> str | None:
    """Registered with apps.exchange.hooks: an order or amend queued before the kill switch is
    not sent after it."""
    return HALTED_AT_SEND if active_halt(operation.org_id) is not None else None
