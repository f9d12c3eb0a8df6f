"""Owners edit policies; a change is itself a request (orgs.policy_change): a second owner's
approval when there are two or more; a sole owner's loosening waits 24 hours (step-up first),
every owner is emailed and may cancel; a policy the members cannot satisfy is refused."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.approvals import policy_changes
from apps.approvals.models import ApprovalRequest
from apps.approvals.policies import policy_for, policy_tiers, removal_warnings
from apps.approvals.policy_changes import PolicySpec, policy_change_propose, policy_spec
from apps.approvals.registry import TierSpec
from apps.approvals.services import approval_cancel, approval_decide, approvals_run_due
from apps.notifications.models import Notification
from apps.orgs.permissions import Role
from tests.approvals.conftest import stepped_up_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
KIND = "orgs.role_grant"


def spec(approvals: int = 1, roles=(Role.OWNER,), owner_required: bool = True) -> PolicySpec:
    return PolicySpec(
        currency="USD",
        expiry_hours=72,
        velocity_caps={},
        tiers=(TierSpec(Decimal(0), approvals, tuple(roles), owner_required),),
    )


def propose(owner, new: PolicySpec, stepped_up: bool = True):
    return policy_change_propose(
        org=owner.org, kind=KIND, actor=owner, spec=new, stepped_up=stepped_up
    )


def current(org) -> list[TierSpec]:
    return policy_tiers(policy_for(org=org, kind=KIND))


def test_a_policy_no_current_members_can_satisfy_is_refused(owner, approver) -> None:
    with pytest.raises(ValidationError) as caught:
        propose(owner, spec(approvals=2, roles=(Role.APPROVER,), owner_required=False))

    assert "The current members could not satisfy this policy" in caught.value.messages[0]
    assert "only 1 current member(s) hold those roles" in caught.value.messages[0]


def test_with_two_owners_a_change_waits_for_the_other_owner(owner, approver, committing) -> None:
    other = MembershipFactory(org=owner.org, role=Role.OWNER, user=UserFactory())
    outcome = propose(owner, spec(roles=(Role.OWNER, Role.APPROVER)))

    assert outcome.message == policy_changes.WAITS_FOR_OWNER
    assert current(owner.org)[0].roles == (Role.OWNER,)
    approval = outcome.approval
    with committing():
        approval_decide(
            approval=approval,
            actor=other,
            verdict="approve",
            fingerprint_seen=approval.fingerprint,
            stepped_up=True,
        )

    assert set(current(owner.org)[0].roles) == {Role.OWNER, Role.APPROVER}


def test_a_policy_edited_meanwhile_voids_the_pending_change(owner, approver) -> None:
    other = MembershipFactory(org=owner.org, role=Role.OWNER, user=UserFactory())
    approval = propose(owner, spec(roles=(Role.OWNER, Role.APPROVER))).approval
    seen = approval.fingerprint
    policy_for(org=owner.org, kind=KIND).tiers.update(approvals=1, roles=[Role.OWNER, "admin"])

    with pytest.raises(ValidationError, match="changed since you opened it"):
        approval_decide(
            approval=approval,
            actor=other,
            verdict="approve",
            fingerprint_seen=seen,
            stepped_up=True,
        )


def test_a_sole_owners_tightening_applies_at_once(owner, approver) -> None:
    policy_for(org=owner.org, kind=KIND).tiers.update(roles=[Role.OWNER, Role.APPROVER])

    outcome = propose(owner, spec(roles=(Role.OWNER,)), stepped_up=False)

    assert outcome.message == policy_changes.APPLIED
    assert current(owner.org)[0].roles == (Role.OWNER,)


def test_a_sole_owners_loosening_needs_a_step_up(owner, approver) -> None:
    with pytest.raises(PermissionDenied):
        propose(owner, spec(roles=(Role.OWNER, Role.APPROVER)), stepped_up=False)

    assert not ApprovalRequest.objects.exists()


def test_a_sole_owners_loosening_waits_24_hours_and_every_owner_is_emailed(
    owner, approver, committing
) -> None:
    outcome = propose(owner, spec(roles=(Role.OWNER, Role.APPROVER), owner_required=False))

    assert outcome.message == policy_changes.WAITS_24H
    approval = outcome.approval
    assert approval.status == ApprovalRequest.Status.APPROVED
    assert approval.not_before - timezone.now() > timedelta(hours=23, minutes=59)
    assert Notification.objects.filter(recipient=owner.user, kind="approvals.delayed").exists()
    # Not yet: nothing changes before the delay has passed.
    approvals_run_due()
    assert current(owner.org)[0].roles == (Role.OWNER,)

    ApprovalRequest.objects.filter(pk=approval.pk).update(
        not_before=timezone.now() - timedelta(seconds=1)
    )
    with committing():
        approvals_run_due()

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED
    assert set(current(owner.org)[0].roles) == {Role.OWNER, Role.APPROVER}


def test_an_owner_cancels_a_delayed_loosening(owner, approver) -> None:
    approval = propose(owner, spec(approvals=1, roles=(Role.OWNER, Role.APPROVER))).approval

    approval_cancel(approval=approval, actor=owner)
    ApprovalRequest.objects.filter(pk=approval.pk).update(not_before=timezone.now())
    approvals_run_due()

    assert current(owner.org)[0].roles == (Role.OWNER,)


@pytest.mark.parametrize(
    ("new", "loosens"),
    [
        (spec(approvals=2, roles=(Role.OWNER, Role.ADMIN)), True),  # a role added
        (spec(owner_required=False), True),
        (spec(approvals=1), False),  # unchanged strictness
    ],
)
def test_what_counts_as_loosening(owner, new, loosens) -> None:
    old = policy_spec(policy_for(org=owner.org, kind=KIND))

    assert policy_changes.is_loosening(old, new) is loosens


def test_a_raised_threshold_and_fewer_approvals_loosen() -> None:
    old = PolicySpec(
        "USD",
        72,
        {"BTC": Decimal(1)},
        (TierSpec(Decimal(0), 1, ("owner",)), TierSpec(Decimal(1000), 2, ("owner",))),
    )
    raised = PolicySpec(
        "USD",
        72,
        {"BTC": Decimal(1)},
        (TierSpec(Decimal(0), 1, ("owner",)), TierSpec(Decimal(5000), 2, ("owner",))),
    )
    cap_dropped = PolicySpec("USD", 72, {}, old.tiers)

    assert policy_changes.is_loosening(old, raised)
    assert not policy_changes.is_loosening(raised, old)
    assert policy_changes.is_loosening(old, cap_dropped)


def test_removing_the_only_approver_of_a_policy_warns_on_the_members_page(
    owner, approver, client_for
) -> None:
    policy = policy_for(org=owner.org, kind=KIND)
    policy.tiers.update(roles=[Role.APPROVER], owner_required=False)

    assert list(removal_warnings(owner.org)) == [approver.pk]
    page = client_for(owner).get(reverse("orgs:member-list", kwargs={"org": "acme"}))
    assert "Removing approver@acme.test would leave the orgs.role_grant policy" in (
        page.content.decode()
    )


def test_the_policy_pages_serve_owners_and_the_edit_proposes(owner, approver) -> None:
    client = stepped_up_client(owner)
    assert client.get(reverse("approvals:policy-list", kwargs={"org": "acme"})).status_code == 200
    url = reverse("approvals:policy-edit", kwargs={"org": "acme", "kind": KIND})
    assert client.get(url).status_code == 200

    response = client.post(
        url,
        {"currency": "usd", "expiry_hours": 48, "velocity_caps": "", "tiers": "0; 1; owner; yes"},
        follow=True,
    )

    assert policy_changes.APPLIED in response.content.decode()  # a shorter expiry tightens
    assert policy_for(org=owner.org, kind=KIND).expiry_hours == 48


@pytest.mark.parametrize(
    "tiers",
    ["0; x; owner; yes", "0; 1; pilot; yes", "0; 1; owner", "100; 1; owner; no"],
)
def test_a_garbled_policy_is_a_400_with_a_reason(owner, tiers) -> None:
    url = reverse("approvals:policy-edit", kwargs={"org": "acme", "kind": KIND})
    response = stepped_up_client(owner).post(
        url, {"currency": "USD", "expiry_hours": 72, "velocity_caps": "", "tiers": tiers}
    )

    assert response.status_code == 400


def test_the_policy_of_policy_changes_is_not_editable(owner) -> None:
    url = reverse("approvals:policy-edit", kwargs={"org": "acme", "kind": "orgs.policy_change"})

    assert stepped_up_client(owner).get(url).status_code == 404


def test_the_approver_reads_the_policy_before_and_after(owner, approver) -> None:
    MembershipFactory(org=owner.org, role=Role.OWNER, user=UserFactory())
    approval = propose(owner, spec(roles=(Role.OWNER, Role.APPROVER))).approval

    text = policy_changes.describe(approval)

    assert "from [from 0 USD: 1 of owner (an owner among them); expiry 72 h" in text
    assert "to [from 0 USD: 1 of approver, owner (an owner among them)" in text


def test_proposing_the_policy_as_it_is_changes_nothing(owner) -> None:
    with pytest.raises(ValidationError, match=policy_changes.NO_CHANGE):
        propose(owner, spec())
