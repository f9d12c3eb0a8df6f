"""What approvals shows live, through the header socket (apps.notifications.live): the inbox
count of each member, and a request's timeline for its requester and approvers."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.template.loader import render_to_string

from apps.approvals.models import ApprovalRequest
from apps.approvals.selectors import (
    approval_audience_ids,
    approval_decisions,
    approval_timeline,
    approvals_waiting_count,
)
from apps.core.realtime import member_event_on_commit
from apps.orgs.models import Membership

COUNT_ELEMENT = "approvals-count"


def timeline_element(approval: ApprovalRequest) -> str:
    return f"approval-timeline-{approval.pk}"


def count_part(membership: Membership) -> tuple[str, str]:
    html = render_to_string(
        "approvals/_count.html#approvals-count",
        {
            "org": membership.org,
            "waiting": approvals_waiting_count(membership=membership),
            "oob": True,
        },
    )
    return COUNT_ELEMENT, html.strip()


def timeline_part(approval: ApprovalRequest) -> tuple[str, str]:
    html = render_to_string(
        "approvals/request_detail.html#approval-timeline",
        {
            "approval": approval,
            "events": approval_timeline(approval=approval),
            "decisions": approval_decisions(approval=approval),
            "oob": True,
        },
    )
    return timeline_element(approval), html.strip()


def snapshot(membership: Membership) -> list[tuple[str, str]]:
    return [count_part(membership)]


def publish_counts(*, org_id: int, user_ids: Iterable[int]) -> None:
    def send() -> None:
        for membership in Membership.objects.select_related("org").filter(
            org_id=org_id, user_id__in=list(user_ids)
        ):
            member_event_on_commit(
                org_id=org_id, user_ids=[membership.user_id], parts=[count_part(membership)]
            )

    transaction.on_commit(send, robust=True)


def publish_request(approval: ApprovalRequest) -> None:
    """After commit: the timeline (rendered once) to the request's audience, and their counts.
    The audience is read before commit, so a member who just lost eligibility still sees the
    outcome of the step that removed them; but only people still members when it is sent
    receive it (the default manager hides removed members), so a member removed in this
    transaction, whose requests it cancels, hears nothing more of the organization."""
    audience = approval_audience_ids(approval=approval)
    pk, org_id = approval.pk, approval.org_id

    def send() -> None:
        members = Membership.objects.filter(org_id=org_id, user_id__in=audience)
        recipients = list(members.values_list("user_id", flat=True))
        if not recipients:
            return
        fresh = ApprovalRequest.objects.select_related("org", "requester").get(pk=pk)
        member_event_on_commit(org_id=org_id, user_ids=recipients, parts=[timeline_part(fresh)])

    transaction.on_commit(send, robust=True)
    publish_counts(org_id=approval.org_id, user_ids=audience)
