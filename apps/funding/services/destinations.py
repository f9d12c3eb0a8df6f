"""The address book: allow-listing Kraken withdrawal keys (an approval, `funding.address`),
and removing them (immediate, audited; voids the withdrawals waiting to go there)."""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_request_create, approval_void
from apps.core.trail import audit_record
from apps.funding import kraken_funding, live
from apps.funding.models import Destination, Withdrawal
from apps.funding.services.common import acting_credential, check_account, check_requester
from apps.funding.signals import destination_removed
from apps.kraken.errors import KrakenError
from apps.kraken.naming import normalize_asset
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability

KIND = "funding.address"

KEY_NOT_ON_KRAKEN = (
    "Kraken has no withdrawal address named “{key}” for {asset} on {account}. Add it on "
    "Kraken first (Kraken asks its own confirmation), then allow-list it here."
)
ALREADY_LISTED = "This withdrawal address is already allow-listed or waiting for approval."
KRAKEN_UNREADABLE = "Kraken's withdrawal addresses could not be read: {reason}"
ADDRESS_CHANGED = (
    "On Kraken, “{key}” now points to {now}, not to {then} as when it was requested: the "
    "allow-listing is refused. Request it again if the new address is right."
)
KEY_GONE = "Kraken no longer has the withdrawal address “{key}”: the allow-listing is refused."
NOT_WAITING = "This address is no longer waiting for approval."
ALREADY_REMOVED = "This address is not allow-listed any more."
CANNOT_REMOVE = "Only treasurers, approvers and owners can remove addresses."
VOIDED_REASON = "its destination “{key}” was removed from the address book by {who}."


def _find_on_kraken(
    *, account: KrakenAccount, asset: str, key: str, requester: Membership | None
) -> kraken_funding.WithdrawAddress | None:
    credential = acting_credential(account=account, requester=requester, unattended=False)
    try:
        addresses = kraken_funding.withdraw_addresses(credential=credential)
    except KrakenError as error:
        raise ValidationError(KRAKEN_UNREADABLE.format(reason=error.hint)) from None
    wanted = normalize_asset(asset)
    for entry in addresses:
        if entry.key == key and entry.symbol == wanted:
            return entry
    return None


def destination_request(
    *,
    requester: Membership,
    account: KrakenAccount,
    asset: str,
    key: str,
    label: str = "",
    request: HttpRequest | None = None,
) -> Destination:
    """Ask for a Kraken withdrawal key of `account` to be allow-listed. Reads Kraken's
    WithdrawAddresses (the key must exist there), freezes the address it points to and its
    verified state, and opens a `funding.address` approval request."""
    check_requester(requester)
    check_account(requester.org, account)
    found = _find_on_kraken(account=account, asset=asset, key=key, requester=requester)
    if found is None:
        raise ValidationError(
            {"key": KEY_NOT_ON_KRAKEN.format(key=key, asset=asset, account=account.label)}
        )
    with transaction.atomic(durable=True):
        destination = Destination(
            org=requester.org,
            account=account,
            asset=found.asset,
            method=found.method,
            key=found.key,
            address=found.address,
            verified=found.verified,
            label=label.strip()[:80],
            requested_by=requester.user,
        )
        try:
            with transaction.atomic():
                destination.save()
        except IntegrityError:
            raise ValidationError({"key": ALREADY_LISTED}) from None
        destination.approval = approval_request_create(
            org=requester.org,
            kind=KIND,
            requester=requester,
            subject=destination,
            summary={
                "destination_id": destination.pk,
                "account": account.label,
                "asset": destination.asset,
                "method": destination.method,
                "key": destination.key,
                "address": destination.address,
                "verified": destination.verified,
                "label": destination.label,
            },
            request=request,
        )
        destination.save(update_fields=["approval"])
        audit_record(
            action="funding.destination.request",
            actor=requester,
            target=destination,
            detail={"key": key, "asset": destination.asset, "address": destination.address},
            request=request,
        )
        live.destination_changed_on_commit(destination)
    return destination


def _destination_of(approval: ApprovalRequest) -> Destination:
    return Destination.objects.select_related("account", "org").get(
        pk=approval.summary["destination_id"], org_id=approval.org_id
    )


def address_fingerprint(approval: ApprovalRequest) -> str:
    """The destination as it is now in the portal (status, key, frozen address)."""
    destination = Destination.objects.filter(
        pk=approval.summary.get("destination_id"), org_id=approval.org_id
    ).first()
    state = (
        "gone"
        if destination is None
        else f"{destination.status}:{destination.account_id}:{destination.asset}:"
        f"{destination.key}:{destination.address}"
    )
    return hashlib.sha256(state.encode()).hexdigest()


def address_describe(approval: ApprovalRequest) -> str:
    s = approval.summary
    verified = "verified" if s.get("verified") else "not verified"
    return (
        f"Allow-list {s.get('asset')} address “{s.get('key')}” ({s.get('address')}, "
        f"{verified} on Kraken) on {s.get('account')}"
    )


def address_handler(approval: ApprovalRequest) -> None:
    """At quorum: Kraken's key must still point to the address the approvers saw."""
    destination = Destination.objects.select_for_update(of=("self",)).get(
        pk=_destination_of(approval).pk
    )
    if destination.status != Destination.Status.PENDING:
        raise ValidationError(NOT_WAITING)
    # Read with the requester's funding key if they are still here, else the designated one.
    requester = Membership.objects.filter(
        org_id=approval.org_id, user_id=approval.requester_id
    ).first()
    found = _find_on_kraken(
        account=destination.account,
        asset=destination.asset,
        key=destination.key,
        requester=requester,
    )
    if found is None:
        raise ValidationError(KEY_GONE.format(key=destination.key))
    if found.address != destination.address:
        raise ValidationError(
            ADDRESS_CHANGED.format(key=destination.key, now=found.address, then=destination.address)
        )
    destination.status = Destination.Status.ALLOWED
    destination.allowed_at = timezone.now()
    destination.verified = found.verified
    destination.save(update_fields=["status", "allowed_at", "verified"])
    audit_record(
        action="funding.destination.allow",
        org=destination.org,
        target=destination,
        detail={"key": destination.key, "address": destination.address, "approval": approval.pk},
    )
    live.destination_changed_on_commit(destination)


def destination_refused_sync(*, destination: Destination) -> None:
    """A request that ended without allow-listing (rejected, expired, cancelled, failed)
    frees the key for a new request."""
    approval = destination.approval
    if destination.status != Destination.Status.PENDING or approval is None:
        return
    if approval.status in (
        ApprovalRequest.Status.REJECTED,
        ApprovalRequest.Status.EXPIRED,
        ApprovalRequest.Status.CANCELLED,
        ApprovalRequest.Status.FAILED,
    ):
        Destination.objects.filter(pk=destination.pk, status=Destination.Status.PENDING).update(
            status=Destination.Status.REFUSED
        )
        live.destination_changed_on_commit(destination)


@transaction.atomic(durable=True)
def destination_remove(
    *, destination: Destination, actor: Membership, request: HttpRequest | None = None
) -> Destination:
    """Take a destination off the address book at once (no approval: removing only reduces
    what can happen). Withdrawals to it that wait for approval, or were approved but not yet
    sent, are voided and their approval requests cancelled; `destination_removed` tells the
    workflows that use it to pause."""
    if not (
        actor.can(Capability.REQUEST_FUNDING)
        or actor.can(Capability.APPROVE_FUNDING)
        or actor.can(Capability.MANAGE_POLICIES)
    ):
        raise ValidationError(CANNOT_REMOVE)
    destination = (
        Destination.objects.select_for_update(of=("self",))
        .select_related("account", "org", "approval")
        .get(pk=destination.pk, org_id=actor.org_id)
    )
    if destination.status not in (Destination.Status.ALLOWED, Destination.Status.PENDING):
        raise ValidationError(ALREADY_REMOVED)
    was = destination.status
    destination.status = Destination.Status.REMOVED
    destination.removed_at = timezone.now()
    destination.removed_by = actor.user
    destination.save(update_fields=["status", "removed_at", "removed_by"])
    if was == Destination.Status.PENDING and destination.approval is not None:
        approval_void(
            approval=destination.approval, reason="the request was withdrawn.", actor=actor
        )
    reason = VOIDED_REASON.format(key=destination.key, who=actor.user.email)
    voided = []
    for withdrawal in Withdrawal.objects.select_for_update(of=("self",)).filter(
        destination=destination, status=Withdrawal.Status.AWAITING_APPROVAL
    ):
        withdrawal.status = Withdrawal.Status.VOIDED
        withdrawal.error = f"Voided: {reason}"[:500]
        withdrawal.settled_at = timezone.now()
        withdrawal.save(update_fields=["status", "error", "settled_at", "updated_at"])
        if withdrawal.approval is not None:
            approval_void(approval=withdrawal.approval, reason=reason, actor=actor)
        live.withdrawal_changed_on_commit(withdrawal)
        voided.append(withdrawal.pk)
    audit_record(
        action="funding.destination.remove",
        actor=actor,
        target=destination,
        detail={"key": destination.key, "address": destination.address, "voided": voided},
        request=request,
    )
    destination_removed.send(
        sender=Destination, destination=destination, actor=actor, request=request
    )
    live.destination_changed_on_commit(destination)
    return destination
