"""Reads for approvals: who may decide, the inbox, a request with its timeline."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from apps.approvals.models import ApprovalEvent, ApprovalRequest, Decision
from apps.orgs.models import Membership


def eligible_approver_ids(*, approval: ApprovalRequest) -> list[int]:
    """Users who could still decide: a role the request accepts, not the requester, and no
    live decision of theirs yet."""
    decided = Decision.objects.filter(request=approval, voided_at__isnull=True).values(
        "approver_id"
    )
    return list(
        Membership.objects.filter(org_id=approval.org_id, role__in=approval.approver_roles)
        .exclude(user_id=approval.requester_id)
        .exclude(user_id__in=decided)
        .values_list("user_id", flat=True)
    )


def approval_audience_ids(*, approval: ApprovalRequest) -> set[int]:
    """Who follows a request live: the requester, whoever decided, and who still may."""
    ids = set(eligible_approver_ids(approval=approval))
    ids.add(approval.requester_id)
    ids.update(Decision.objects.filter(request=approval).values_list("approver_id", flat=True))
    return ids


def approvals_waiting(*, membership: Membership) -> QuerySet[ApprovalRequest]:
    """Pending requests this member may decide and has not decided."""
    decided = Decision.objects.filter(approver_id=membership.user_id, voided_at__isnull=True)
    return (
        ApprovalRequest.objects.filter(
            org_id=membership.org_id,
            status=ApprovalRequest.Status.PENDING,
            # The JSON text of the list holds the quoted role name; no role name is part of
            # another, and this lookup works on PostgreSQL and SQLite alike.
            approver_roles__icontains=f'"{membership.role}"',
        )
        .exclude(requester_id=membership.user_id)
        .exclude(pk__in=decided.values("request_id"))
    )


def approvals_waiting_count(*, membership: Membership) -> int:
    return approvals_waiting(membership=membership).count()


def approvals_mine(*, membership: Membership, limit: int = 50) -> list[ApprovalRequest]:
    return list(
        ApprovalRequest.objects.filter(
            org_id=membership.org_id, requester_id=membership.user_id
        ).select_related("requester")[:limit]
    )


def approvals_recent(*, membership: Membership, limit: int = 50) -> list[ApprovalRequest]:
    """Recently settled or pending requests of the organization (members may read them, as
    they may read the audit trail)."""
    return list(
        ApprovalRequest.objects.filter(org_id=membership.org_id)
        .filter(~Q(status=ApprovalRequest.Status.PENDING) | Q(requester_id=membership.user_id))
        .select_related("requester")[:limit]
    )


def approval_get_in_org(*, membership: Membership, pk: int) -> ApprovalRequest:
    try:
        return ApprovalRequest.objects.select_related("requester", "org").get(
            org_id=membership.org_id, pk=pk
        )
    except ApprovalRequest.DoesNotExist:
        raise Http404("No such request.") from None


def approval_timeline(*, approval: ApprovalRequest) -> list[ApprovalEvent]:
    return list(approval.events.select_related("actor"))


def approval_decisions(*, approval: ApprovalRequest) -> list[Decision]:
    return list(approval.decisions.select_related("approver"))
