"""orgs.role_grant through the pages people use: an admin's powerful grant waits for an owner;
owners grant directly; an invitation carries its role and is gated the same way."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from apps.approvals.models import ApprovalRequest
from apps.approvals.role_grants import GRANT_HELD
from apps.notifications.models import Notification
from apps.orgs.models import Invitation
from apps.orgs.permissions import Role
from tests.approvals.conftest import stepped_up_client

pytestmark = pytest.mark.django_db


def role_url(member) -> str:
    return reverse("orgs:member-role", kwargs={"org": "acme", "pk": member.pk})


def detail_url(approval) -> str:
    return reverse("approvals:request-detail", kwargs={"org": "acme", "pk": approval.pk})


def decide_url(approval) -> str:
    return reverse("approvals:request-decide", kwargs={"org": "acme", "pk": approval.pk})


def test_an_admins_grant_of_trader_waits_for_an_owner(
    owner, admin, viewer, client_for, committing
) -> None:
    with committing():
        response = client_for(admin).post(role_url(viewer), {"role": Role.TRADER}, follow=True)

    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER
    held = GRANT_HELD.format(who="viewer@acme.test", role="Trader", current="Viewer")
    assert held in response.content.decode()
    approval = ApprovalRequest.objects.get(kind="orgs.role_grant")
    assert approval.requester == admin.user
    assert approval.approver_roles == [Role.OWNER]
    # The owner is told, and the inbox counts it.
    assert Notification.objects.filter(recipient=owner.user, kind="approvals.needed").exists()
    inbox = client_for(owner).get(reverse("approvals:inbox", kwargs={"org": "acme"}))
    assert 'data-waiting="1"' in inbox.content.decode()


def test_the_htmx_row_says_the_grant_is_waiting(owner, admin, viewer, client_for) -> None:
    response = client_for(admin).post(
        role_url(viewer), {"role": Role.TRADER}, HTTP_HX_REQUEST="true"
    )

    body = response.content.decode()
    assert "An owner must approve making viewer@acme.test Trader" in body
    assert "<html" not in body


def test_the_owner_approves_in_the_inbox_and_the_role_changes(
    owner, admin, viewer, client_for, committing
) -> None:
    client_for(admin).post(role_url(viewer), {"role": Role.TRADER})
    approval = ApprovalRequest.objects.get()

    # Without a fresh step-up the decision is sent to confirm 2FA first.
    stale = client_for(owner).post(
        decide_url(approval), {"verdict": "approve", "fingerprint": approval.fingerprint}
    )
    assert stale.status_code == 302
    assert stale["Location"].startswith(reverse("accounts:step-up"))
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER

    with committing():
        response = stepped_up_client(owner).post(
            decide_url(approval), {"verdict": "approve", "fingerprint": approval.fingerprint}
        )

    assert response.status_code == 302
    viewer.refresh_from_db()
    assert viewer.role == Role.TRADER
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED
    assert Notification.objects.filter(recipient=admin.user, kind="approvals.executed").exists()
    assert Notification.objects.filter(recipient=owner.user, kind="approvals.executed").exists()
    assert Notification.objects.filter(
        recipient=viewer.user, title="Your role in Acme Capital is now Trader"
    ).exists()


def test_an_owner_grants_directly(owner, viewer, client_for) -> None:
    client_for(owner).post(role_url(viewer), {"role": Role.TRADER})

    viewer.refresh_from_db()
    assert viewer.role == Role.TRADER
    assert not ApprovalRequest.objects.exists()


def test_an_admin_may_still_make_someone_a_viewer_directly(admin, trader, client_for) -> None:
    client_for(admin).post(role_url(trader), {"role": Role.VIEWER})

    trader.refresh_from_db()
    assert trader.role == Role.VIEWER
    assert not ApprovalRequest.objects.exists()


def test_asking_twice_for_the_same_member_is_refused(owner, admin, viewer, client_for) -> None:
    client_for(admin).post(role_url(viewer), {"role": Role.TRADER})
    response = client_for(admin).post(role_url(viewer), {"role": Role.APPROVER}, follow=True)

    assert "is already waiting for approval" in response.content.decode()
    assert ApprovalRequest.objects.count() == 1


def test_an_admins_invitation_as_trader_is_sent_only_once_approved(
    owner, admin, client_for, committing
) -> None:
    url = reverse("orgs:invitation-create", kwargs={"org": "acme"})
    with committing():
        response = client_for(admin).post(
            url, {"email": "desk@example.test", "role": Role.TRADER}, follow=True
        )

    assert "An owner must approve inviting desk@example.test as Trader" in (
        response.content.decode()
    )
    assert not Invitation.objects.exists()
    assert [m.to for m in mail.outbox] == []
    approval = ApprovalRequest.objects.get()

    with committing():
        stepped_up_client(owner).post(
            decide_url(approval), {"verdict": "approve", "fingerprint": approval.fingerprint}
        )

    invitation = Invitation.objects.get()
    assert invitation.role == Role.TRADER
    assert invitation.invited_by == admin.user
    assert mail.outbox[-1].to == ["desk@example.test"]


def test_an_admins_invitation_as_viewer_goes_out_at_once(admin, client_for, committing) -> None:
    url = reverse("orgs:invitation-create", kwargs={"org": "acme"})
    with committing():
        client_for(admin).post(url, {"email": "reader@example.test", "role": Role.VIEWER})

    assert Invitation.objects.get().role == Role.VIEWER
    assert not ApprovalRequest.objects.exists()


def test_a_grant_whose_admin_lost_the_role_fails_with_a_reason(
    owner, admin, viewer, client_for, committing
) -> None:
    client_for(admin).post(role_url(viewer), {"role": Role.TRADER})
    approval = ApprovalRequest.objects.get()
    client_for(owner).post(role_url(admin), {"role": Role.VIEWER})

    with committing():
        stepped_up_client(owner).post(
            decide_url(approval), {"verdict": "approve", "fingerprint": approval.fingerprint}
        )

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.FAILED
    assert approval.error == "The person who asked for this is no longer an administrator here."
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


def test_inviting_an_address_with_an_open_invitation_is_refused_before_any_request(
    owner, admin, client_for, committing
) -> None:
    url = reverse("orgs:invitation-create", kwargs={"org": "acme"})
    with committing():
        client_for(owner).post(url, {"email": "desk@example.test", "role": Role.VIEWER})
        response = client_for(admin).post(url, {"email": "desk@example.test", "role": Role.TRADER})

    assert response.status_code == 400
    assert not ApprovalRequest.objects.exists()


def test_an_idn_address_in_another_spelling_is_one_address_for_the_gate(
    owner, admin, client_for, committing
) -> None:
    """The ASCII form of an internationalised domain meets the open invitation to its Unicode
    form, and a held invitation names the address as invitation_issue will store it."""
    url = reverse("orgs:invitation-create", kwargs={"org": "acme"})
    with committing():
        client_for(owner).post(url, {"email": "anna@bücher.example", "role": Role.VIEWER})
        response = client_for(admin).post(
            url, {"email": "anna@xn--bcher-kva.example", "role": Role.TRADER}
        )
    assert response.status_code == 400
    assert not ApprovalRequest.objects.exists()

    with committing():
        client_for(admin).post(url, {"email": "Ops@XN--BCHER-KVA.example", "role": Role.TRADER})
    assert ApprovalRequest.objects.get().summary["email"] == "ops@bücher.example"
