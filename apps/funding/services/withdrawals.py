"""Withdrawals: requested (by a treasurer, or by a scheduled workflow), approved under the
`funding.withdrawal` policy, sent once as an exchange operation, followed to Success or
Failure through Kraken's WithdrawStatus, cancelled while Kraken allows it."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.approvals.models import ApprovalRequest, Policy
from apps.approvals.policies import policy_for
from apps.approvals.services import approval_cancel, approval_request_create
from apps.core import amounts
from apps.core.trail import audit_record
from apps.exchange.models import Kind, Operation, State
from apps.exchange.services import operation_prepare
from apps.funding import kraken_funding, live
from apps.funding.models import Destination, FundingPolicy, Withdrawal
from apps.funding.services.common import (
    acting_credential,
    asset_info,
    check_account,
    check_requester,
    clean_amount,
    current_value,
    daily_cap_check,
    fee_cap,
    plain,
    valued,
)
from apps.kraken.errors import KrakenError
from apps.kraken.naming import normalize_asset
from apps.notifications.services import notify
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Capability, Role
from apps.vault.models import Credential

logger = logging.getLogger(__name__)

KIND = "funding.withdrawal"

DESTINATION_NOT_ALLOWED = "Choose an allow-listed destination of this account for {asset}."
DESTINATION_OTHER_ASSET = "This destination receives {dest}, not {asset}."
BELOW_MINIMUM = "Kraken's minimum withdrawal of {asset} by {method} is {minimum}."
ABOVE_AVAILABLE = "Above what can be withdrawn now: {limit} {asset} (available, after the fee)."
FEE_ABOVE_AMOUNT = "The amount does not cover Kraken's fee of {fee} {asset}."
PREVIEW_FAILED = "Kraken could not preview this withdrawal: {reason}"
ALREADY_IN_FLIGHT = (
    "A withdrawal of {asset} to “{key}” is being sent right now; Kraken could not tell two "
    "apart, so wait until it has a Kraken reference (a few seconds)."
)
NOT_PREAPPROVED = "The approval given does not cover this withdrawal (it is {status})."
NOT_WAITING = "This withdrawal is no longer waiting for its approval (it is {status})."
DESTINATION_GONE = "Its destination “{key}” is no longer allow-listed; nothing was sent."
DESTINATION_MOVED = (
    "Its destination “{key}” changed since it was requested; nothing was sent. Request it again."
)
NO_FRESH_PRICE = (
    "No current price confirms the approval tier at execution, so nothing was sent (fails "
    "closed); the request can be made again once prices are current."
)
CANNOT_CANCEL = "Kraken no longer allows cancelling this withdrawal (it is {status})."
CANCEL_NOT_YOURS = "Only the requester, a treasurer or an owner can cancel a withdrawal."
CANCEL_ASKED = "Cancellation asked of Kraken."
CANCEL_DENIED = "Kraken did not cancel it: it was already being processed."

# How far back WithdrawStatus is read when following withdrawals.
FOLLOW_WINDOW = timedelta(days=7)

# Kraken status → ours, for a withdrawal Kraken has accepted.
_FINAL = {"Success": Withdrawal.Status.SUCCESS, "Failure": Withdrawal.Status.FAILURE}


# The example default's daily cap per asset (rolling 24 hours, in the asset), written when the
# organization's withdrawal policy is first created; owners change them under Approvals.
DEFAULT_DAILY_CAPS = {
    "BTC": "50",
    "ETH": "1000",
    "USD": "2000000",
    "EUR": "2000000",
    "USDT": "2000000",
    "USDC": "2000000",
}


def withdrawal_policy(org: Organization) -> Policy:
    """The organization's `funding.withdrawal` policy, created with the default tiers and the
    default daily caps per asset on first use."""
    existing = Policy.objects.filter(org=org, kind=KIND).first()
    if existing is not None:
        return existing
    policy = policy_for(org=org, kind=KIND)
    Policy.objects.filter(pk=policy.pk, velocity_caps={}).update(velocity_caps=DEFAULT_DAILY_CAPS)
    policy.refresh_from_db()
    return policy


def fee_margin(org: Organization) -> Decimal:
    policy = FundingPolicy.objects.filter(org=org).first()
    return (
        policy.fee_margin
        if policy is not None
        else FundingPolicy._meta.get_field("fee_margin").get_default()
    )


def withdrawal_preview(
    *,
    requester: Membership | None,
    account: KrakenAccount,
    destination: Destination,
    asset: str,
    amount: object,
    unattended: bool = False,
) -> dict[str, Any]:
    """Check a withdrawal and ask Kraken for its preview, changing nothing. Returns the clean
    amount, the preview (fee, amount received, limit), the method's minimum and the maximum
    fee the request would freeze; raises ValidationError with the message on its field."""
    org = account.org
    check_account(org, account)
    info = asset_info(asset)
    clean = clean_amount(amount, info)
    if (
        destination.org_id != org.pk
        or destination.account_id != account.pk
        or not destination.is_allowed
    ):
        raise ValidationError({"destination": DESTINATION_NOT_ALLOWED.format(asset=info.symbol)})
    if normalize_asset(destination.asset) != info.symbol:
        raise ValidationError(
            {
                "destination": DESTINATION_OTHER_ASSET.format(
                    dest=normalize_asset(destination.asset), asset=info.symbol
                )
            }
        )
    credential = acting_credential(account=account, requester=requester, unattended=unattended)
    try:
        methods = kraken_funding.withdraw_methods(credential=credential, asset=destination.asset)
        preview = kraken_funding.withdraw_info(
            credential=credential, asset=destination.asset, key=destination.key, amount=clean
        )
    except KrakenError as error:
        raise ValidationError(
            {
                "amount": PREVIEW_FAILED.format(
                    reason=kraken_funding.refusal_text(error.code, error.hint)
                )
            }
        ) from None
    method = next((m for m in methods if m.method == destination.method), None) or next(
        iter(methods), None
    )
    places = info.display_decimals
    if method is not None and method.minimum is not None and clean < method.minimum:
        raise ValidationError(
            {
                "amount": BELOW_MINIMUM.format(
                    asset=info.symbol,
                    method=method.method,
                    minimum=amounts.format_amount(
                        method.minimum, asset=info.symbol, decimals=places
                    ),
                )
            }
        )
    if preview.limit is not None and clean > preview.limit:
        raise ValidationError(
            {"amount": ABOVE_AVAILABLE.format(limit=preview.limit, asset=info.symbol)}
        )
    if preview.fee >= clean:
        raise ValidationError(
            {"amount": FEE_ABOVE_AMOUNT.format(fee=preview.fee, asset=info.symbol)}
        )
    return {
        "amount": clean,
        "asset": info,
        "preview": preview,
        "minimum": method.minimum if method is not None else None,
        "max_fee": fee_cap(preview.fee, margin=fee_margin(org), places=info.decimals),
        "credential": credential,
    }


def withdrawal_request(
    *,
    requester: Membership,
    account: KrakenAccount,
    destination: Destination,
    asset: str,
    amount: Decimal | str,
    memo: str = "",
    unattended: bool = False,
    preapproved: ApprovalRequest | None = None,
    source: str = "",
    request: HttpRequest | None = None,
) -> Withdrawal:
    """Request a withdrawal of `amount` `asset` from `account` to an allow-listed `destination`.

    For a treasurer (from the Withdraw form) and for scheduled workflows alike:

    - `requester`: the member asking (for a workflow, the member on whose behalf it runs —
      its owner); they must still have the right to request funding.
    - `unattended=True`: a run nobody is watching; it reads and later sends with the
      account's designated funding key (apps.vault.selectors.designated_credential), never a
      member's personal key. Otherwise the requester's own funding key, else the designated.
    - `preapproved`: an approval request that already covers this movement (a workflow
      approved once with its caps, status approved or executed, checked by the caller against
      its caps). The withdrawal is then sent at once, without a `funding.withdrawal` request.
      Without it, a `funding.withdrawal` approval request is opened (tiers by value, velocity
      caps per asset) and the withdrawal is sent when it reaches its quorum.
    - `source`: who asked, for the record ("workflow:<id>"; empty for a person).

    Asks Kraken's WithdrawInfo first (fee, amount received, limit) and freezes account,
    asset, amount, destination key and the address it pointed to, and the maximum fee
    (preview plus the organization's margin). Raises ValidationError with a message per
    field (amount, destination, asset, account) and changes nothing on bad input, a stale
    price, a velocity cap or a withdrawal to the same place still being sent.

    Runs in the caller's transaction when there is one (a workflow run and its withdrawal
    commit together); Kraken is only read before it, and the send happens after commit.
    """
    check_requester(requester)
    if source:
        # Idempotent on its source (a workflow run asked again): the one already made.
        existing = Withdrawal.objects.filter(org=account.org, source=source[:64]).first()
        if existing is not None:
            return existing
    checked = withdrawal_preview(
        requester=requester,
        account=account,
        destination=destination,
        asset=asset,
        amount=amount,
        unattended=unattended,
    )
    info, clean, preview = checked["asset"], checked["amount"], checked["preview"]
    withdrawal_policy(account.org)
    worth = valued(org=account.org, kind=KIND, asset=info.symbol, amount=clean)
    with transaction.atomic():
        destination = Destination.objects.select_for_update(of=("self",)).get(pk=destination.pk)
        if not destination.is_allowed:
            raise ValidationError(
                {"destination": DESTINATION_NOT_ALLOWED.format(asset=info.symbol)}
            )
        if Withdrawal.objects.filter(
            destination=destination, status=Withdrawal.Status.SUBMITTED
        ).exists():
            raise ValidationError(
                {"destination": ALREADY_IN_FLIGHT.format(asset=info.symbol, key=destination.key)}
            )
        daily_cap_check(
            org=account.org,
            kind=KIND,
            info=info,
            amount=clean,
            movements=Withdrawal.objects.all(),
        )
        try:
            with transaction.atomic():
                withdrawal = Withdrawal.objects.create(
                    org=account.org,
                    account=account,
                    destination=destination,
                    asset=destination.asset,
                    method=preview.method or destination.method,
                    amount=clean,
                    key=destination.key,
                    address=destination.address,
                    fee_preview=preview.fee,
                    amount_received_preview=preview.amount_received,
                    max_fee=checked["max_fee"],
                    memo=memo.strip()[:200],
                    value=worth.value,
                    currency=worth.currency,
                    rate=worth.rate[:80],
                    requested_by=requester.user,
                    source=source[:64],
                )
        except IntegrityError:
            # The same source (a workflow run) made it meanwhile: that one, not a second.
            existing = Withdrawal.objects.filter(org=account.org, source=source[:64]).first()
            if source and existing is not None:
                return existing
            raise
        audit_record(
            action="funding.withdrawal.request",
            actor=requester,
            target=withdrawal,
            detail=_summary(withdrawal) | {"unattended": unattended, "source": source},
            request=request,
        )
        if preapproved is not None:
            if preapproved.org_id != account.org_id or preapproved.status not in (
                ApprovalRequest.Status.APPROVED,
                ApprovalRequest.Status.EXECUTED,
            ):
                raise ValidationError(NOT_PREAPPROVED.format(status=preapproved.status))
            withdrawal.approval = preapproved
            withdrawal.save(update_fields=["approval"])
            _send(withdrawal, requester=requester, unattended=unattended)
        else:
            withdrawal.approval = _approval_for(
                org=account.org,
                kind=KIND,
                requester=requester,
                subject=withdrawal,
                summary=_summary(withdrawal)
                | {"unattended": unattended, "price_age_seconds": round(worth.age_seconds, 1)},
                value=worth.value,
                currency=worth.currency,
                asset=info.symbol,
                amount=clean,
                request=request,
            )
            withdrawal.save(update_fields=["approval"])
        live.withdrawal_changed_on_commit(withdrawal)
    return withdrawal


def _approval_for(**kwargs: Any) -> ApprovalRequest:
    """approval_request_create, with a velocity cap's refusal shown next to the amount."""
    try:
        return approval_request_create(**kwargs)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            raise
        raise ValidationError({"amount": error.messages}) from None


def _summary(withdrawal: Withdrawal) -> dict[str, Any]:
    """What the approvers agree to, frozen (Decimals as text)."""
    return {
        "withdrawal_id": withdrawal.pk,
        "account": withdrawal.account.label,
        "account_id": withdrawal.account_id,
        "asset": withdrawal.asset,
        "method": withdrawal.method,
        "amount": plain(withdrawal.amount),
        "key": withdrawal.key,
        "address": withdrawal.address,
        "fee_preview": plain(withdrawal.fee_preview),
        "amount_received": plain(withdrawal.amount_received_preview),
        "max_fee": plain(withdrawal.max_fee),
        "memo": withdrawal.memo,
        "value": plain(withdrawal.value),
        "currency": withdrawal.currency,
        "rate": withdrawal.rate,
    }


def _send(withdrawal: Withdrawal, *, requester: Membership | None, unattended: bool) -> None:
    """Prepare the Withdraw operation in the current transaction (sent after commit)."""
    destination = Destination.objects.select_for_update(of=("self",)).get(
        pk=withdrawal.destination_id
    )
    if not destination.is_allowed:
        raise ValidationError(DESTINATION_GONE.format(key=withdrawal.key))
    if (destination.key, destination.address) != (withdrawal.key, withdrawal.address):
        raise ValidationError(DESTINATION_MOVED.format(key=withdrawal.key))
    credential = acting_credential(
        account=withdrawal.account, requester=requester, unattended=unattended
    )
    operation = operation_prepare(
        org=withdrawal.org,
        credential=credential,
        kind=Kind.WITHDRAW,
        params=kraken_funding.withdraw_params(
            asset=withdrawal.asset,
            key=withdrawal.key,
            address=withdrawal.address,
            amount=withdrawal.amount.normalize(),
            max_fee=withdrawal.max_fee.normalize(),
        ),
        requested_by=None if unattended else (requester.user if requester else None),
    )
    withdrawal.operation = operation
    withdrawal.status = Withdrawal.Status.SUBMITTED
    withdrawal.save(update_fields=["operation", "status", "updated_at"])
    audit_record(
        action="funding.withdrawal.submit",
        org=withdrawal.org,
        target=withdrawal,
        detail={"operation": operation.pk, "credential": credential.pk},
    )


# --- the approval kind -------------------------------------------------------------------


def _withdrawal_of(approval: ApprovalRequest) -> Withdrawal | None:
    return (
        Withdrawal.objects.select_related("account", "destination", "org")
        .filter(pk=approval.summary.get("withdrawal_id"), org_id=approval.org_id)
        .first()
    )


def withdrawal_fingerprint(approval: ApprovalRequest) -> str:
    """The withdrawal and its destination as they are now: a change to either (an amount, a
    key re-pointed in the address book, a destination removed) voids earlier decisions."""
    withdrawal = _withdrawal_of(approval)
    if withdrawal is None:
        state = "gone"
    else:
        destination = withdrawal.destination
        state = ":".join(
            str(part)
            for part in (
                withdrawal.pk,
                withdrawal.account_id,
                withdrawal.asset,
                withdrawal.amount,
                withdrawal.key,
                withdrawal.address,
                withdrawal.max_fee,
                destination.status,
                destination.key,
                destination.address,
            )
        )
    return hashlib.sha256(state.encode()).hexdigest()


def withdrawal_describe(approval: ApprovalRequest) -> str:
    s = approval.summary
    memo = f" — {s['memo']}" if s.get("memo") else ""
    return (
        f"Withdraw {s.get('amount')} {s.get('asset')} from {s.get('account')} to “{s.get('key')}” "
        f"({s.get('address')}); fee now {s.get('fee_preview')}, at most {s.get('max_fee')}; "
        f"worth {s.get('value')} {s.get('currency')} at {s.get('rate')}{memo}"
    )


def withdrawal_current_value(approval: ApprovalRequest) -> Decimal | None:
    s = approval.summary
    return current_value(
        asset=str(s.get("asset")), amount=Decimal(str(s.get("amount"))), currency=approval.currency
    )


def withdrawal_handler(approval: ApprovalRequest) -> None:
    """At quorum (approvals runs it in its transaction after re-checking the fingerprint and
    the tier): send the withdrawal, acting for the requester."""
    withdrawal = _withdrawal_of(approval)
    if withdrawal is None:
        raise ValidationError(NOT_WAITING.format(status="gone"))
    withdrawal = (
        Withdrawal.objects.select_for_update(of=("self",))
        .select_related("account", "org")
        .get(pk=withdrawal.pk)
    )
    if withdrawal.status != Withdrawal.Status.AWAITING_APPROVAL:
        raise ValidationError(NOT_WAITING.format(status=withdrawal.get_status_display().lower()))
    if withdrawal_current_value(approval) is None:
        raise ValidationError(NO_FRESH_PRICE)
    requester = Membership.objects.filter(
        org_id=approval.org_id, user_id=approval.requester_id
    ).first()
    unattended = bool(approval.summary.get("unattended"))
    _send(withdrawal, requester=requester, unattended=unattended or requester is None)
    live.withdrawal_changed_on_commit(withdrawal)


# --- operation outcomes (exchange result hooks) ----------------------------------------------


def _people(withdrawal: Withdrawal) -> set[int]:
    people = {withdrawal.requested_by_id} if withdrawal.requested_by_id else set()
    if withdrawal.approval_id:
        from apps.approvals.models import Decision

        people.update(
            Decision.objects.filter(request_id=withdrawal.approval_id).values_list(
                "approver_id", flat=True
            )
        )
    return people


def _notify(withdrawal: Withdrawal, title: str, body: str = "") -> None:
    from django.urls import reverse

    notify(
        org=withdrawal.org,
        user_ids=_people(withdrawal),
        kind="funding.withdrawal",
        title=title,
        body=body,
        link=reverse(
            "funding:withdrawal-detail", kwargs={"org": withdrawal.org.slug, "pk": withdrawal.pk}
        ),
    )


def _label(withdrawal: Withdrawal) -> str:
    amount = f"{withdrawal.amount.normalize():f}"
    return f"{amount} {normalize_asset(withdrawal.asset)} to “{withdrawal.key}”"


def on_withdraw_done(operation: Operation) -> None:
    with transaction.atomic():
        withdrawal = (
            Withdrawal.objects.select_for_update(of=("self",))
            .select_related("org")
            .filter(operation=operation)
            .first()
        )
        if withdrawal is None or withdrawal.status != Withdrawal.Status.SUBMITTED:
            return
        withdrawal.refid = kraken_funding.withdraw_result_refid(operation.result)
        withdrawal.status = Withdrawal.Status.PROCESSING
        withdrawal.kraken_status = str((operation.result or {}).get("status") or "")
        withdrawal.save(update_fields=["refid", "status", "kraken_status", "updated_at"])
        audit_record(
            action="funding.withdrawal.accepted",
            org=withdrawal.org,
            target=withdrawal,
            detail={"refid": withdrawal.refid},
        )
        _notify(withdrawal, f"Withdrawal sent to Kraken: {_label(withdrawal)}")
        live.withdrawal_changed_on_commit(withdrawal)


def on_withdraw_rejected(operation: Operation) -> None:
    _operation_failed(
        operation,
        Withdrawal.Status.REFUSED,
        kraken_funding.refusal_text(operation.error_code, operation.error_message),
    )


def on_withdraw_not_placed(operation: Operation) -> None:
    _operation_failed(
        operation,
        Withdrawal.Status.NOT_SENT,
        "Kraken shows no such withdrawal: it was not carried out; nothing moved.",
    )


def _operation_failed(operation: Operation, status: str, error: str) -> None:
    with transaction.atomic():
        withdrawal = (
            Withdrawal.objects.select_for_update(of=("self",))
            .select_related("org")
            .filter(operation=operation)
            .first()
        )
        if withdrawal is None or withdrawal.status != Withdrawal.Status.SUBMITTED:
            return
        withdrawal.status = status
        withdrawal.error = error[:500]
        withdrawal.settled_at = timezone.now()
        withdrawal.save(update_fields=["status", "error", "settled_at", "updated_at"])
        audit_record(
            action="funding.withdrawal.refused",
            org=withdrawal.org,
            target=withdrawal,
            detail={"error": operation.error_code, "state": operation.state},
        )
        _notify(withdrawal, f"Withdrawal not carried out: {_label(withdrawal)}", error)
        live.withdrawal_changed_on_commit(withdrawal)


def on_cancel_done(operation: Operation) -> None:
    with transaction.atomic():
        withdrawal = (
            Withdrawal.objects.select_for_update(of=("self",))
            .select_related("org")
            .filter(cancel_operation=operation)
            .first()
        )
        if withdrawal is None:
            return
        if kraken_funding.withdraw_cancel_accepted(operation.result):
            withdrawal.status = Withdrawal.Status.CANCELLED
            withdrawal.kraken_status_prop = "canceled"
            withdrawal.settled_at = timezone.now()
            withdrawal.error = ""
            _notify(withdrawal, f"Withdrawal cancelled: {_label(withdrawal)}")
        else:
            withdrawal.error = CANCEL_DENIED
        withdrawal.save()
        audit_record(
            action="funding.withdrawal.cancel_result",
            org=withdrawal.org,
            target=withdrawal,
            detail={"result": operation.result},
        )
        live.withdrawal_changed_on_commit(withdrawal)


def on_cancel_failed(operation: Operation) -> None:
    with transaction.atomic():
        withdrawal = (
            Withdrawal.objects.select_for_update(of=("self",))
            .filter(cancel_operation=operation)
            .first()
        )
        if withdrawal is None:
            return
        withdrawal.error = (
            kraken_funding.refusal_text(operation.error_code, operation.error_message)
            if operation.state == State.REJECTED
            else CANCEL_DENIED
        )[:500]
        withdrawal.save(update_fields=["error", "updated_at"])
        live.withdrawal_changed_on_commit(withdrawal)


# --- cancel, follow --------------------------------------------------------------------------


def withdrawal_cancel(
    *, withdrawal: Withdrawal, actor: Membership, request: HttpRequest | None = None
) -> Withdrawal:
    """Cancel: before approval, the approval request is cancelled; once at Kraken, a
    WithdrawCancel operation asks Kraken, which allows it only before it processes the
    withdrawal (status Initial, no property yet)."""
    is_requester = withdrawal.requested_by_id == actor.user_id
    if not (is_requester or actor.can(Capability.REQUEST_FUNDING) or actor.role == Role.OWNER):
        raise PermissionDenied(CANCEL_NOT_YOURS)
    if withdrawal.status == Withdrawal.Status.AWAITING_APPROVAL:
        if withdrawal.approval is not None and withdrawal.approval.status in (
            ApprovalRequest.Status.PENDING,
            ApprovalRequest.Status.APPROVED,
        ):
            if is_requester or actor.role == Role.OWNER:
                approval_cancel(approval=withdrawal.approval, actor=actor, request=request)
            else:
                raise PermissionDenied(CANCEL_NOT_YOURS)
        with transaction.atomic(durable=True):
            moved = Withdrawal.objects.filter(
                pk=withdrawal.pk, status=Withdrawal.Status.AWAITING_APPROVAL
            ).update(status=Withdrawal.Status.CANCELLED, settled_at=timezone.now())
            if moved:
                audit_record(
                    action="funding.withdrawal.cancel",
                    actor=actor,
                    target=withdrawal,
                    request=request,
                )
                live.withdrawal_changed_on_commit(withdrawal)
        withdrawal.refresh_from_db()
        return withdrawal
    with transaction.atomic(durable=True):
        withdrawal = (
            Withdrawal.objects.select_for_update(of=("self",))
            .select_related("operation", "org", "cancel_operation")
            .get(pk=withdrawal.pk)
        )
        cancellable = (
            withdrawal.status == Withdrawal.Status.PROCESSING
            and withdrawal.refid
            and withdrawal.kraken_status in ("", "Initial")
            and not withdrawal.kraken_status_prop
            and (withdrawal.cancel_operation is None or withdrawal.cancel_operation.is_settled)
        )
        if not cancellable or withdrawal.operation is None:
            raise ValidationError(
                CANNOT_CANCEL.format(status=withdrawal.get_status_display().lower())
            )
        operation = operation_prepare(
            org=withdrawal.org,
            credential=withdrawal.operation.credential,
            kind=Kind.WITHDRAW_CANCEL,
            params=kraken_funding.withdraw_cancel_params(
                asset=withdrawal.asset, refid=withdrawal.refid
            ),
            requested_by=actor.user,
        )
        withdrawal.cancel_operation = operation
        withdrawal.error = CANCEL_ASKED
        withdrawal.save(update_fields=["cancel_operation", "error", "updated_at"])
        audit_record(
            action="funding.withdrawal.cancel",
            actor=actor,
            target=withdrawal,
            detail={"refid": withdrawal.refid, "operation": operation.pk},
            request=request,
        )
        live.withdrawal_changed_on_commit(withdrawal)
    # The cancellation may have settled on commit already (its result hook ran).
    withdrawal.refresh_from_db()
    return withdrawal


_APPROVAL_ENDS: dict[str, str] = {
    ApprovalRequest.Status.REJECTED: Withdrawal.Status.REJECTED,
    ApprovalRequest.Status.EXPIRED: Withdrawal.Status.EXPIRED,
    ApprovalRequest.Status.CANCELLED: Withdrawal.Status.CANCELLED,
    ApprovalRequest.Status.FAILED: Withdrawal.Status.NOT_SENT,
}


def withdrawals_settle_unapproved(*, org_id: int | None = None) -> int:
    """Withdrawals whose approval ended without sending them (rejected, expired, cancelled,
    or failed at execution) take that end, with the approval's reason."""
    waiting = Withdrawal.objects.filter(
        status=Withdrawal.Status.AWAITING_APPROVAL, approval__status__in=list(_APPROVAL_ENDS)
    ).select_related("approval")
    if org_id is not None:
        waiting = waiting.filter(org_id=org_id)
    count = 0
    for withdrawal in waiting:
        if withdrawal.approval is None:
            continue
        with transaction.atomic():
            moved = Withdrawal.objects.filter(
                pk=withdrawal.pk, status=Withdrawal.Status.AWAITING_APPROVAL
            ).update(
                status=_APPROVAL_ENDS[withdrawal.approval.status],
                error=withdrawal.approval.error[:500],
                settled_at=timezone.now(),
            )
            if moved:
                live.withdrawal_changed_on_commit(withdrawal)
                count += 1
    return count


def withdrawals_follow() -> int:
    """Follow every withdrawal Kraken accepted to Success or Failure (beat): one
    WithdrawStatus read per key and asset, with the key that sent them."""
    open_ones = list(
        Withdrawal.objects.filter(
            status__in=[Withdrawal.Status.PROCESSING, Withdrawal.Status.ON_HOLD]
        )
        .exclude(refid="")
        .select_related("operation__credential", "org")
    )
    groups: dict[tuple[int, str], list[Withdrawal]] = defaultdict(list)
    for withdrawal in open_ones:
        if withdrawal.operation is not None:
            groups[(withdrawal.operation.credential_id, withdrawal.asset)].append(withdrawal)
    changed = 0
    for (credential_id, asset), withdrawals in groups.items():
        credential = Credential.objects.get(pk=credential_id)
        start = min(w.created_at for w in withdrawals) - timedelta(hours=1)
        try:
            states = kraken_funding.withdraw_status(credential=credential, asset=asset, start=start)
        except Exception:  # one account's failure must not stop the others
            logger.warning(
                "funding: WithdrawStatus failed for key %s", credential_id, exc_info=True
            )
            continue
        by_refid = {state.refid: state for state in states}
        for withdrawal in withdrawals:
            state = by_refid.get(withdrawal.refid)
            if state is not None and withdrawal_apply_status(withdrawal=withdrawal, state=state):
                changed += 1
    changed += withdrawals_settle_unapproved()
    return changed


def withdrawal_apply_status(
    *, withdrawal: Withdrawal, state: kraken_funding.WithdrawalState
) -> bool:
    """Record Kraken's status of an accepted withdrawal; True when something changed."""
    if state.status_prop in kraken_funding.CANCEL_PROPS and state.status == "Failure":
        status = Withdrawal.Status.CANCELLED
    elif state.status in _FINAL:
        status = _FINAL[state.status]
    elif state.on_hold:
        status = Withdrawal.Status.ON_HOLD
    else:
        status = Withdrawal.Status.PROCESSING
    with transaction.atomic():
        current = (
            Withdrawal.objects.select_for_update(of=("self",))
            .select_related("org")
            .get(pk=withdrawal.pk)
        )
        if current.status not in (Withdrawal.Status.PROCESSING, Withdrawal.Status.ON_HOLD):
            return False
        if (current.status, current.kraken_status, current.kraken_status_prop, current.txid) == (
            status,
            state.status,
            state.status_prop,
            state.txid,
        ):
            return False
        current.status = status
        current.kraken_status = state.status
        current.kraken_status_prop = state.status_prop
        current.txid = state.txid or current.txid
        if state.fee is not None:
            current.fee = state.fee
        if status not in (Withdrawal.Status.PROCESSING, Withdrawal.Status.ON_HOLD):
            current.settled_at = timezone.now()
            audit_record(
                action=f"funding.withdrawal.{status}",
                org=current.org,
                target=current,
                detail={"refid": current.refid, "kraken_status": state.status},
            )
            title = {
                Withdrawal.Status.SUCCESS: "Withdrawal complete",
                Withdrawal.Status.FAILURE: "Withdrawal failed at Kraken",
                Withdrawal.Status.CANCELLED: "Withdrawal cancelled",
            }[status]
            _notify(current, f"{title}: {_label(current)}")
        elif status == Withdrawal.Status.ON_HOLD:
            _notify(
                current,
                f"Withdrawal on hold at Kraken: {_label(current)}",
                "Kraken holds it for review (or its Organizations approval queue); it continues "
                "once released.",
            )
        current.save()
        live.withdrawal_changed_on_commit(current)
    return True
