"""`staking.allocate` and `staking.deallocate`: how a request reads to approvers, its
fingerprint, and what runs at quorum (the request goes to Kraken as the member who asked)."""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError

from apps.approvals.models import ApprovalRequest
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.staking.models import StakeRequest
from apps.staking.services.common import (
    NOT_CANCELLABLE,
    REQUESTER_GONE,
    Direction,
    Status,
)
from apps.staking.services.requests import _launch


def _approval_row(approval: ApprovalRequest) -> StakeRequest | None:
    if not approval.subject_id:
        return None
    return (
        StakeRequest.objects.select_related("account", "org")
        .filter(pk=int(approval.subject_id), org_id=approval.org_id)
        .first()
    )


def approval_fingerprint(approval: ApprovalRequest) -> str:
    row = _approval_row(approval)
    state = (
        f"{row.pk}:{row.status}:{row.account_id}:{row.strategy_id}:{row.direction}:{row.amount}"
        if row is not None
        else "gone"
    )
    return hashlib.sha256(state.encode()).hexdigest()


def approval_describe(approval: ApprovalRequest) -> str:
    summary = approval.summary
    verb = "Allocate" if summary.get("direction") == Direction.ALLOCATE else "Deallocate"
    preposition = "to" if verb == "Allocate" else "from"
    return (
        f"{verb} {summary.get('amount')} {summary.get('asset')} {preposition} "
        f"{summary.get('strategy_id')} ({summary.get('lock_type')}) on {summary.get('account')}"
    )


def approval_handler(approval: ApprovalRequest) -> None:
    """At quorum: the request goes to Kraken (or the queue) as the member who asked."""
    row = _approval_row(approval)
    if row is None or row.status != Status.AWAITING_APPROVAL:
        raise ValidationError(NOT_CANCELLABLE)
    membership = (
        Membership.objects.select_related("org", "user")
        .filter(org_id=approval.org_id, user_id=approval.requester_id)
        .first()
    )
    if membership is None or not membership.can(Capability.REQUEST_FUNDING):
        raise ValidationError(REQUESTER_GONE)
    _launch(row, membership=membership)
