"""A removed member (kept as a row with status removed, apps.orgs) is a non-member to approvals
and notifications: never an eligible approver, never counted towards a policy, never notified
or emailed, and sent nothing live once removed; a grant asked about them does not survive their
return."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError

from apps.approvals.models import ApprovalRequest
from apps.approvals.policies import removal_warnings
from apps.approvals.policy_changes import policy_change_propose
from apps.approvals.selectors import eligible_approver_ids
from apps.notifications.models import Notification
from apps.notifications.services import notification_email_send, notify
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.orgs.services.memberships import membership_remove
from tests.approvals.conftest import transfer
from tests.approvals.test_policy_changes import spec
from tests.approvals.test_rules import role_grant
from tests.factories import MembershipFactory

KIND = "approvals.executed"  # any registered kind

pytestmark = pytest.mark.django_db


def test_a_removed_approver_is_not_eligible(owner, approver, treasurer) -> None:
    other = MembershipFactory(org=owner.org, role=Role.APPROVER)
    approval = transfer(treasurer, "10")
    assert set(eligible_approver_ids(approval=approval)) == {
        owner.user_id,
        approver.user_id,
        other.user_id,
    }

    membership_remove(membership=other, actor=owner)

    assert Membership.all_objects.get(pk=other.pk).status == Membership.Status.REMOVED
    assert set(eligible_approver_ids(approval=approval)) == {owner.user_id, approver.user_id}


def test_a_removed_member_does_not_count_towards_a_policy(owner, approver) -> None:
    other = MembershipFactory(org=owner.org, role=Role.APPROVER)
    two_approvers = spec(approvals=2, roles=(Role.APPROVER,), owner_required=False)
    # Satisfiable with both approvers; the warning names neither (the other remains).
    assert removal_warnings(owner.org) == {}

    membership_remove(membership=other, actor=owner)

    with pytest.raises(ValidationError) as caught:
        policy_change_propose(
            org=owner.org, kind="orgs.role_grant", actor=owner, spec=two_approvers, stepped_up=True
        )
    assert "only 1 current member(s) hold those roles" in caught.value.messages[0]


def test_a_removed_member_is_neither_notified_nor_emailed(owner, viewer) -> None:
    [row] = notify(org=owner.org, user_ids=[viewer.user_id], kind=KIND, title="Before")

    membership_remove(membership=viewer, actor=owner)

    # Written before the removal, its email is not sent after it.
    assert notification_email_send(notification_id=row.pk) is False
    assert notify(org=owner.org, user_ids=[viewer.user_id], kind=KIND, title="After") == []
    assert list(Notification.objects.values_list("title", flat=True)) == ["Before"]


def test_a_grant_asked_about_a_removed_member_is_cancelled_and_not_revived_by_rejoining(
    owner, admin, viewer
) -> None:
    approval = role_grant(admin, viewer)

    membership_remove(membership=viewer, actor=owner)

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.CANCELLED
    # Re-invited, the same row is active again with the role the invitation gave.
    Membership.all_objects.filter(pk=viewer.pk).update(status=Membership.Status.ACTIVE)
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.CANCELLED


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("socket_db_connections")
async def test_a_removed_requester_receives_no_timeline_on_their_way_out(
    owner, approver, treasurer
) -> None:
    from tests.approvals.test_live import opened

    approval = await database_sync_to_async(transfer)(treasurer, "10")
    leaving = await opened(treasurer)
    staying = await opened(owner)

    await database_sync_to_async(membership_remove)(membership=treasurer, actor=owner)

    element = f'id="approval-timeline-{approval.pk}"'
    frame = ""
    while element not in frame:
        frame += await staying.receive_from(timeout=5)
    assert "left the organization" in frame
    # The leaving member's socket is closed (removal) and carried nothing before that.
    while True:
        output = await leaving.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
        assert element not in output.get("text", ""), output
    await staying.disconnect()
