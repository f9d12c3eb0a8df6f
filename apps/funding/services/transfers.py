"""Transfers between the master account and its subaccounts (Kraken's AccountTransfer, sent
with the master account's key), under the `funding.transfer` policy, exactly once. Kraken has
no status call for transfers: a `pending` answer is followed through the ledger's transfer
entries (refid = transfer_id)."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from apps.approvals.models import ApprovalRequest, Decision
from apps.approvals.services import approval_request_create
from apps.core.trail import audit_record
from apps.exchange.balances import spendable
from apps.exchange.models import AccountBalance, Kind, Operation
from apps.exchange.services import operation_prepare
from apps.funding import kraken_funding, live
from apps.funding.models import Transfer
from apps.funding.services.common import (
    acting_credential,
    asset_info,
    check_account,
    check_requester,
    clean_amount,
    current_value,
    daily_cap_check,
    plain,
    valued,
)
from apps.kraken.naming import normalize_asset
from apps.notifications.services import notify
from apps.orgs.models import KrakenAccount, Membership

logger = logging.getLogger(__name__)

KIND = "funding.transfer"

SAME_ACCOUNT = "Choose two different accounts."
NOT_MASTER_AND_SUB = "Transfers go between the master account and one of its subaccounts."
NO_KRAKEN_ID = (
    "{account} has no Kraken account id (IIBAN) on record; an owner adds it under Accounts."
)
NOT_PREAPPROVED = "The approval given does not cover this transfer (it is {status})."
NOT_WAITING = "This transfer is no longer waiting for its approval (it is {status})."
NO_FRESH_PRICE = (
    "No current price confirms the approval tier at execution, so nothing was sent (fails closed)."
)
ABOVE_BALANCE = "Above what {account} has available: {available} {asset}."


def _check_pair(from_account: KrakenAccount, to_account: KrakenAccount) -> KrakenAccount:
    """The master of the pair (the key that sends it); raises on any other pair."""
    if from_account.pk == to_account.pk:
        raise ValidationError({"to_account": SAME_ACCOUNT})
    master = from_account if from_account.is_master else to_account
    other = to_account if master is from_account else from_account
    if not master.is_master or other.parent_id != master.pk:
        raise ValidationError({"to_account": NOT_MASTER_AND_SUB})
    for field, account in (("from_account", from_account), ("to_account", to_account)):
        if not account.kraken_id:
            raise ValidationError({field: NO_KRAKEN_ID.format(account=account.label)})
    return master


def transfer_request(
    *,
    requester: Membership,
    from_account: KrakenAccount,
    to_account: KrakenAccount,
    asset: str,
    amount: Decimal | str,
    memo: str = "",
    unattended: bool = False,
    preapproved: ApprovalRequest | None = None,
    available: Decimal | None = None,
    source: str = "",
    request: HttpRequest | None = None,
) -> Transfer:
    """Request a transfer of `amount` `asset` between the master account and one of its
    subaccounts (either direction).

    For a treasurer (the Transfer form) and for scheduled workflows (sweep, top-up) alike:

    - `requester`: the member asking (for a workflow, the member it runs for); they must still
      have the right to request funding.
    - `unattended=True`: sent with the master account's designated funding key
      (apps.vault.selectors.designated_credential); otherwise the requester's own funding key
      on the master, else the designated one.
    - `preapproved`: an approval that already covers it (a workflow approved once with its
      caps; approved or executed): sent at once. Without it a `funding.transfer` approval
      request is opened and the transfer is sent at quorum.
    - `available`: the spendable balance the caller read (a sweep or top-up decides with it);
      without it, apps.exchange.balances.spendable() of the source account when its balances
      are recorded. An amount above it is refused next to the amount.

    Raises ValidationError (per field) and changes nothing on bad input. Runs in the caller's
    transaction when there is one; the AccountTransfer is sent once, after commit.
    """
    check_requester(requester)
    org = requester.org
    if source:
        # Idempotent on its source (a workflow run asked again): the one already made.
        existing = Transfer.objects.filter(org=org, source=source[:64]).first()
        if existing is not None:
            return existing
    check_account(org, from_account, field="from_account")
    check_account(org, to_account, field="to_account")
    master = _check_pair(from_account, to_account)
    info = asset_info(asset)
    clean = clean_amount(amount, info)
    if available is None and AccountBalance.objects.filter(account=from_account).exists():
        # What the account can spend now (exchange's one definition), when its balances are
        # known (the private stream or a refresh has recorded them).
        available = spendable(account=from_account, asset=info.symbol)
    if available is not None and clean > available:
        raise ValidationError(
            {
                "amount": ABOVE_BALANCE.format(
                    account=from_account.label, available=available, asset=info.symbol
                )
            }
        )
    # The key must exist before anything is asked: checked now, used at send.
    acting_credential(account=master, requester=requester, unattended=unattended)
    worth = valued(org=org, kind=KIND, asset=info.symbol, amount=clean)
    with transaction.atomic():
        daily_cap_check(
            org=org, kind=KIND, info=info, amount=clean, movements=Transfer.objects.all()
        )
        try:
            with transaction.atomic():
                transfer = Transfer.objects.create(
                    org=org,
                    from_account=from_account,
                    to_account=to_account,
                    asset=info.altname or info.symbol,
                    amount=clean,
                    memo=memo.strip()[:200],
                    value=worth.value,
                    currency=worth.currency,
                    rate=worth.rate[:80],
                    requested_by=requester.user,
                    source=source[:64],
                )
        except IntegrityError:
            # The same source (a workflow run) made it meanwhile: that one, not a second.
            existing = Transfer.objects.filter(org=org, source=source[:64]).first()
            if source and existing is not None:
                return existing
            raise
        audit_record(
            action="funding.transfer.request",
            actor=requester,
            target=transfer,
            detail=_summary(transfer) | {"unattended": unattended, "source": source},
            request=request,
        )
        if preapproved is not None:
            if preapproved.org_id != org.pk or preapproved.status not in (
                ApprovalRequest.Status.APPROVED,
                ApprovalRequest.Status.EXECUTED,
            ):
                raise ValidationError(NOT_PREAPPROVED.format(status=preapproved.status))
            transfer.approval = preapproved
            transfer.save(update_fields=["approval"])
            _send(transfer, requester=requester, unattended=unattended)
        else:
            try:
                transfer.approval = approval_request_create(
                    org=org,
                    kind=KIND,
                    requester=requester,
                    subject=transfer,
                    summary=_summary(transfer) | {"unattended": unattended},
                    value=worth.value,
                    currency=worth.currency,
                    asset=info.symbol,
                    amount=clean,
                    request=request,
                )
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    raise
                raise ValidationError({"amount": error.messages}) from None
            transfer.save(update_fields=["approval"])
        live.transfer_changed_on_commit(transfer)
    return transfer


def _summary(transfer: Transfer) -> dict[str, Any]:
    return {
        "transfer_id": transfer.pk,
        "from": transfer.from_account.label,
        "to": transfer.to_account.label,
        "from_kraken_id": transfer.from_account.kraken_id,
        "to_kraken_id": transfer.to_account.kraken_id,
        "asset": transfer.asset,
        "amount": plain(transfer.amount),
        "memo": transfer.memo,
        "value": plain(transfer.value),
        "currency": transfer.currency,
        "rate": transfer.rate,
    }


def _send(transfer: Transfer, *, requester: Membership | None, unattended: bool) -> None:
    master = transfer.from_account if transfer.from_account.is_master else transfer.to_account
    credential = acting_credential(account=master, requester=requester, unattended=unattended)
    operation = operation_prepare(
        org=transfer.org,
        credential=credential,
        kind=Kind.ACCOUNT_TRANSFER,
        params=kraken_funding.transfer_params(
            asset=transfer.asset,
            amount=transfer.amount.normalize(),
            from_id=transfer.from_account.kraken_id,
            to_id=transfer.to_account.kraken_id,
        ),
        requested_by=None if unattended else (requester.user if requester else None),
    )
    transfer.operation = operation
    transfer.status = Transfer.Status.SUBMITTED
    transfer.save(update_fields=["operation", "status", "updated_at"])
    audit_record(
        action="funding.transfer.submit",
        org=transfer.org,
        target=transfer,
        detail={"operation": operation.pk, "credential": credential.pk},
    )


def _transfer_of(approval: ApprovalRequest) -> Transfer | None:
    return (
        Transfer.objects.select_related("from_account", "to_account", "org")
        .filter(pk=approval.summary.get("transfer_id"), org_id=approval.org_id)
        .first()
    )


def transfer_fingerprint(approval: ApprovalRequest) -> str:
    transfer = _transfer_of(approval)
    state = (
        "gone"
        if transfer is None
        else ":".join(
            str(p)
            for p in (
                transfer.pk,
                transfer.from_account_id,
                transfer.from_account.kraken_id,
                transfer.to_account_id,
                transfer.to_account.kraken_id,
                transfer.asset,
                transfer.amount,
            )
        )
    )
    return hashlib.sha256(state.encode()).hexdigest()


def transfer_describe(approval: ApprovalRequest) -> str:
    s = approval.summary
    memo = f" — {s['memo']}" if s.get("memo") else ""
    return (
        f"Transfer {s.get('amount')} {s.get('asset')} from {s.get('from')} to {s.get('to')}; "
        f"worth {s.get('value')} {s.get('currency')} at {s.get('rate')}{memo}"
    )


def transfer_current_value(approval: ApprovalRequest) -> Decimal | None:
    s = approval.summary
    return current_value(
        asset=str(s.get("asset")), amount=Decimal(str(s.get("amount"))), currency=approval.currency
    )


def transfer_handler(approval: ApprovalRequest) -> None:
    transfer = _transfer_of(approval)
    if transfer is None:
        raise ValidationError(NOT_WAITING.format(status="gone"))
    transfer = (
        Transfer.objects.select_for_update(of=("self",))
        .select_related("from_account", "to_account", "org")
        .get(pk=transfer.pk)
    )
    if transfer.status != Transfer.Status.AWAITING_APPROVAL:
        raise ValidationError(NOT_WAITING.format(status=transfer.get_status_display().lower()))
    if transfer_current_value(approval) is None:
        raise ValidationError(NO_FRESH_PRICE)
    requester = Membership.objects.filter(
        org_id=approval.org_id, user_id=approval.requester_id
    ).first()
    unattended = bool(approval.summary.get("unattended"))
    _send(transfer, requester=requester, unattended=unattended or requester is None)
    live.transfer_changed_on_commit(transfer)


# --- outcomes ---------------------------------------------------------------------------------


def _notify(transfer: Transfer, title: str, body: str = "") -> None:
    people = {transfer.requested_by_id} if transfer.requested_by_id else set()
    if transfer.approval_id:
        people.update(
            Decision.objects.filter(request_id=transfer.approval_id).values_list(
                "approver_id", flat=True
            )
        )
    notify(
        org=transfer.org,
        user_ids=people,
        kind="funding.transfer",
        title=title,
        body=body,
        link=reverse("funding:transfer-list", kwargs={"org": transfer.org.slug}),
    )


def _label(transfer: Transfer) -> str:
    return (
        f"{transfer.amount.normalize():f} {normalize_asset(transfer.asset)} from "
        f"{transfer.from_account.label} to {transfer.to_account.label}"
    )


def on_transfer_done(operation: Operation) -> None:
    with transaction.atomic():
        transfer = (
            Transfer.objects.select_for_update(of=("self",))
            .select_related("org", "from_account", "to_account")
            .filter(operation=operation)
            .first()
        )
        if transfer is None or transfer.status != Transfer.Status.SUBMITTED:
            return
        transfer_id, status = kraken_funding.transfer_result(operation.result)
        transfer.transfer_id = transfer_id
        if status == "pending":
            transfer.status = Transfer.Status.PENDING
        else:
            transfer.status = Transfer.Status.COMPLETE
            transfer.settled_at = timezone.now()
            _notify(transfer, f"Transfer complete: {_label(transfer)}")
        transfer.save()
        audit_record(
            action=f"funding.transfer.{transfer.status}",
            org=transfer.org,
            target=transfer,
            detail={"transfer_id": transfer_id, "kraken_status": status},
        )
        live.transfer_changed_on_commit(transfer)


def _failed(operation: Operation, status: str, error: str) -> None:
    with transaction.atomic():
        transfer = (
            Transfer.objects.select_for_update(of=("self",))
            .select_related("org", "from_account", "to_account")
            .filter(operation=operation)
            .first()
        )
        if transfer is None or transfer.status != Transfer.Status.SUBMITTED:
            return
        transfer.status = status
        transfer.error = error[:500]
        transfer.settled_at = timezone.now()
        transfer.save()
        audit_record(
            action="funding.transfer.refused",
            org=transfer.org,
            target=transfer,
            detail={"error": operation.error_code, "state": operation.state},
        )
        _notify(transfer, f"Transfer not carried out: {_label(transfer)}", error)
        live.transfer_changed_on_commit(transfer)


def on_transfer_rejected(operation: Operation) -> None:
    _failed(
        operation,
        Transfer.Status.REFUSED,
        kraken_funding.refusal_text(operation.error_code, operation.error_message),
    )


def on_transfer_not_placed(operation: Operation) -> None:
    _failed(
        operation,
        Transfer.Status.NOT_SENT,
        "Kraken's ledger shows no such transfer: it was not carried out; nothing moved.",
    )


_APPROVAL_ENDS: dict[str, str] = {
    ApprovalRequest.Status.REJECTED: Transfer.Status.REJECTED,
    ApprovalRequest.Status.EXPIRED: Transfer.Status.EXPIRED,
    ApprovalRequest.Status.CANCELLED: Transfer.Status.CANCELLED,
    ApprovalRequest.Status.FAILED: Transfer.Status.NOT_SENT,
}


def transfer_complete_from_ledger(*, account_id: int, refid: str) -> bool:
    """A transfer ledger entry arrived (private stream or ledger read): the pending transfer
    with that transfer id is complete."""
    with transaction.atomic():
        transfer = (
            Transfer.objects.select_for_update(of=("self",))
            .select_related("org", "from_account", "to_account")
            .filter(status=Transfer.Status.PENDING, transfer_id=refid)
            .filter(from_account_id=account_id)
            .first()
        ) or (
            Transfer.objects.select_for_update(of=("self",))
            .select_related("org", "from_account", "to_account")
            .filter(status=Transfer.Status.PENDING, transfer_id=refid, to_account_id=account_id)
            .first()
        )
        if transfer is None:
            return False
        transfer.status = Transfer.Status.COMPLETE
        transfer.settled_at = timezone.now()
        transfer.save()
        audit_record(
            action="funding.transfer.complete",
            org=transfer.org,
            target=transfer,
            detail={"transfer_id": refid, "via": "ledger"},
        )
        _notify(transfer, f"Transfer complete: {_label(transfer)}")
        live.transfer_changed_on_commit(transfer)
    return True


def transfers_follow() -> int:
    """Pending transfers (beat): read the master's transfer ledger entries and complete the
    ones whose entry has appeared; settle those whose approval ended without sending."""
    changed = 0
    pending = list(
        Transfer.objects.filter(status=Transfer.Status.PENDING)
        .exclude(transfer_id="")
        .select_related("operation__credential")
    )
    for transfer in pending:
        if transfer.operation is None:
            continue
        try:
            entries = kraken_funding.ledger_transfers(
                credential=transfer.operation.credential,
                asset=transfer.asset,
                start=transfer.created_at - timedelta(hours=1),
            )
        except Exception:
            logger.warning("funding: Ledgers failed for transfer %s", transfer.pk, exc_info=True)
            continue
        if any(entry.refid == transfer.transfer_id for entry in entries):
            changed += transfer_complete_from_ledger(
                account_id=transfer.from_account_id, refid=transfer.transfer_id
            )
    for transfer in Transfer.objects.filter(
        status=Transfer.Status.AWAITING_APPROVAL, approval__status__in=list(_APPROVAL_ENDS)
    ).select_related("approval"):
        if transfer.approval is None:
            continue
        moved = Transfer.objects.filter(
            pk=transfer.pk, status=Transfer.Status.AWAITING_APPROVAL
        ).update(
            status=_APPROVAL_ENDS[transfer.approval.status],
            error=transfer.approval.error[:500],
            settled_at=timezone.now(),
        )
        if moved:
            live.transfer_changed_on_commit(transfer)
            changed += 1
    return changed
