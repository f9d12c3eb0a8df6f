"""The four-eyes rules, for a business kind registered by the test (a transfer whose value can
move) and for orgs.role_grant: each refusal or escalation says why."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.approvals import services
from apps.approvals.models import ApprovalRequest, Decision, Policy
from apps.approvals.role_grants import role_grant_gate
from apps.approvals.services import approval_decide, approval_execute
from apps.notifications.models import Notification
from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from tests.approvals.conftest import EXECUTED, SUBJECTS, transfer
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def decide(approval: ApprovalRequest, actor: Membership, verdict: str = "approve", **kw):
    approval.refresh_from_db()
    return approval_decide(
        approval=approval,
        actor=actor,
        verdict=verdict,
        fingerprint_seen=kw.pop("fingerprint", approval.fingerprint),
        stepped_up=kw.pop("stepped_up", True),
    )


def refused(message: str, call, *args, **kwargs) -> None:
    with pytest.raises((ValidationError, PermissionDenied)) as caught:
        call(*args, **kwargs)
    text = " ".join(getattr(caught.value, "messages", [str(caught.value)]))
    assert message in text


def role_grant(admin: Membership, member: Membership, role: str = Role.TRADER) -> ApprovalRequest:
    message = role_grant_gate(actor=admin, role=role, member=member, email=None, request=None)
    assert message is not None
    return ApprovalRequest.objects.get(kind="orgs.role_grant", summary__member_id=member.pk)


def second_owner(org) -> Membership:
    return MembershipFactory(org=org, role=Role.OWNER, user=UserFactory(email="owner2@acme.test"))


def two_owner_policy(org) -> None:
    """Role grants need two owners (the tests that need a second decision)."""
    from apps.approvals.policies import policy_for

    policy = policy_for(org=org, kind="orgs.role_grant")
    policy.tiers.update(approvals=2)


# Self-approval


def test_the_requester_cannot_approve_their_own_transfer(owner, approver) -> None:
    approval = transfer(owner, "100")

    refused(services.SELF_APPROVAL, decide, approval, owner)


def test_the_requester_cannot_approve_their_own_role_grant(owner, admin, viewer) -> None:
    approval = role_grant(admin, viewer)

    refused(services.SELF_APPROVAL, decide, approval, admin)


# The same person twice


def test_nobody_approves_a_transfer_twice(owner, approver, treasurer) -> None:
    approval = transfer(treasurer, "5000")  # tier from 1000: two approvals
    decide(approval, approver)

    refused(services.ALREADY_DECIDED, decide, approval, approver)
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.PENDING


def test_nobody_approves_a_role_grant_twice(owner, admin, viewer) -> None:
    second_owner(owner.org)
    two_owner_policy(owner.org)
    approval = role_grant(admin, viewer)
    decide(approval, owner)

    refused(services.ALREADY_DECIDED, decide, approval, owner)


def test_the_database_refuses_a_second_live_decision_by_the_same_person(
    owner, approver, treasurer
) -> None:
    approval = transfer(treasurer, "5000")
    decide(approval, approver)

    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(
            request=approval,
            approver=approver.user,
            approver_role=Role.APPROVER,
            verdict="approve",
            fingerprint=approval.fingerprint,
        )


# Expiry


@pytest.mark.parametrize("kind", ["transfer", "role_grant"])
def test_an_expired_request_cannot_be_approved(owner, admin, viewer, treasurer, kind) -> None:
    approval = transfer(treasurer, "10") if kind == "transfer" else role_grant(admin, viewer)
    ApprovalRequest.objects.filter(pk=approval.pk).update(expires_at=timezone.now())

    refused(services.REQUEST_EXPIRED, decide, approval, owner)

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXPIRED
    assert approval.events.filter(action="expired").exists()


# Too-low role


def test_a_trader_cannot_approve_a_transfer(owner, trader, treasurer) -> None:
    approval = transfer(treasurer, "10")

    refused("Your role (Trader) cannot decide this request", decide, approval, trader)


def test_only_an_owner_approves_a_role_grant(owner, admin, approver, viewer) -> None:
    approval = role_grant(admin, viewer)

    refused("Your role (Approver) cannot decide this request", decide, approval, approver)


def test_a_role_lost_since_the_page_loaded_counts(owner, approver, treasurer) -> None:
    approval = transfer(treasurer, "10")
    Membership.objects.filter(pk=approver.pk).update(role=Role.VIEWER)

    refused("Your role (Viewer) cannot decide", decide, approval, approver)


# Step-up


@pytest.mark.parametrize("kind", ["transfer", "role_grant"])
def test_a_decision_without_a_fresh_step_up_is_refused(
    owner, admin, viewer, treasurer, kind
) -> None:
    approval = transfer(treasurer, "10") if kind == "transfer" else role_grant(admin, viewer)

    refused(services.STEP_UP_REQUIRED, decide, approval, owner, stepped_up=False)
    assert not Decision.objects.exists()


# The subject changed


def test_a_changed_transfer_voids_earlier_approvals(owner, approver, treasurer) -> None:
    approval = transfer(treasurer, "5000")
    seen = approval.fingerprint
    decide(approval, approver)
    SUBJECTS["t1"]["address"] = "bc1-mallory"

    refused(services.SUBJECT_CHANGED, decide, approval, owner, fingerprint=seen)

    assert Decision.objects.get(approver=approver.user).voided_at is not None
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.PENDING
    # Both look again at the new address: the earlier approver may decide afresh.
    decide(approval, approver)
    decide(approval, owner)
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.APPROVED


def test_a_changed_role_grant_voids_earlier_approvals(owner, admin, viewer) -> None:
    other = second_owner(owner.org)
    two_owner_policy(owner.org)
    approval = role_grant(admin, viewer)
    seen = approval.fingerprint
    decide(approval, owner)
    Membership.objects.filter(pk=viewer.pk).update(role=Role.APPROVER)

    refused(services.SUBJECT_CHANGED, decide, approval, other, fingerprint=seen)
    assert Decision.objects.get(approver=owner.user).voided_at is not None


def test_a_subject_changed_between_quorum_and_execution_is_not_executed(
    owner, approver, treasurer, django_capture_on_commit_callbacks
) -> None:
    approval = transfer(treasurer, "10")
    with django_capture_on_commit_callbacks(execute=False):
        decide(approval, approver)  # quorum: one approval
    SUBJECTS["t1"]["address"] = "bc1-mallory"

    approval = approval_execute(approval_id=approval.pk)

    assert EXECUTED == []
    assert approval.status == ApprovalRequest.Status.PENDING
    assert Decision.objects.get().voided_at is not None
    assert approval.events.filter(action="subject_changed").exists()


# The tier rose with the value


def test_a_price_move_into_a_higher_tier_needs_its_extra_approvals(
    owner, approver, treasurer, django_capture_on_commit_callbacks
) -> None:
    approval = transfer(treasurer, "500")  # tier 0: one approval
    with django_capture_on_commit_callbacks(execute=False):
        decide(approval, approver)
    SUBJECTS["t1"]["value"] = Decimal("1500")  # the price moved: tier from 1000, two

    approval = approval_execute(approval_id=approval.pk)

    assert EXECUTED == []
    assert approval.status == ApprovalRequest.Status.PENDING
    assert approval.required_approvals == 2
    event = approval.events.get(action="escalated")
    assert "rose to 1500" in event.text
    assert "needs 2 approval(s) (was 1)" in event.text
    assert Notification.objects.filter(
        recipient=owner.user, kind="approvals.needed", title__startswith="More approvals"
    ).exists()
    # The approval already given counts; one more completes the higher tier.
    with django_capture_on_commit_callbacks(execute=True):
        decide(approval, owner)
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED
    assert [approval.pk] == EXECUTED


def test_a_move_into_the_owner_tier_needs_an_owner(
    owner, approver, treasurer, django_capture_on_commit_callbacks
) -> None:
    second_approver = MembershipFactory(org=owner.org, role=Role.APPROVER)
    approval = transfer(treasurer, "5000")
    decide(approval, approver)
    with django_capture_on_commit_callbacks(execute=False):
        decide(approval, second_approver)
    SUBJECTS["t1"]["value"] = Decimal("20000")

    approval = approval_execute(approval_id=approval.pk)

    assert approval.status == ApprovalRequest.Status.PENDING
    assert approval.owner_required
    assert not services.quorum_met(approval)


# Quorum, execution and failure


def test_quorum_runs_the_handler_on_commit_and_notifies(
    owner, approver, treasurer, committing
) -> None:
    approval = transfer(treasurer, "10")
    assert (
        Notification.objects.filter(
            kind="approvals.needed", recipient__in=[owner.user, approver.user]
        ).count()
        == 2
    )

    with committing():
        decide(approval, approver)

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED
    assert [approval.pk] == EXECUTED
    assert Notification.objects.filter(kind="approvals.executed", recipient=treasurer.user).exists()
    actions = list(approval.events.values_list("action", flat=True))
    assert actions == ["requested", "approve", "quorum", "executed"]
    from apps.audit.models import AuditRecord

    audited = set(AuditRecord.objects.values_list("action", flat=True))
    assert {"approval.request", "approval.approve", "approval.execute"} <= audited


def test_a_failing_handler_marks_the_request_failed_and_says_why(
    owner, approver, treasurer, committing
) -> None:
    approval = transfer(treasurer, "10")
    SUBJECTS["t1"]["fail"] = True

    with committing():
        decide(approval, approver)

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.FAILED
    assert approval.error == "The exchange refused the transfer."
    assert Notification.objects.filter(kind="approvals.failed", recipient=treasurer.user).exists()


def test_a_rejection_ends_the_request(owner, approver, treasurer) -> None:
    approval = transfer(treasurer, "5000")

    decide(approval, approver, "reject")

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.REJECTED
    refused("no longer waiting", decide, approval, owner)


def test_the_requester_or_an_owner_may_cancel_but_no_one_else(owner, approver, treasurer) -> None:
    approval = transfer(treasurer, "10")

    refused(services.CANNOT_CANCEL, services.approval_cancel, approval=approval, actor=approver)
    services.approval_cancel(approval=approval, actor=owner)

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.CANCELLED


# What a request may be


def test_a_value_in_another_currency_than_the_thresholds_is_refused(owner, treasurer) -> None:
    from apps.approvals.services import approval_request_create

    SUBJECTS["t1"] = {"address": "a", "value": Decimal(1)}
    refused(
        "The value is in EUR, but this policy's thresholds are in USD.",
        approval_request_create,
        org=owner.org,
        kind="tests.transfer",
        requester=treasurer,
        summary={"subject": "t1", "address": "a", "amount": "1", "rate": "1"},
        value=Decimal(1),
        currency="EUR",
    )


def test_the_rolling_24_hour_cap_per_asset_refuses_the_excess(owner, treasurer) -> None:
    transfer(treasurer, "10", name="t0")  # creates the policy
    Policy.objects.filter(kind="tests.transfer").update(velocity_caps={"BTC": "0.25"})
    transfer(treasurer, "10", name="t2")  # 0.2 BTC in the window

    refused("above the cap of 0.25", transfer, treasurer, "10", name="t3")


# A member leaves


def test_a_removed_members_requests_are_cancelled_and_their_decisions_voided(
    owner, approver, treasurer
) -> None:
    from apps.orgs.services.memberships import membership_remove

    theirs = transfer(treasurer, "10", name="t1")
    other = MembershipFactory(org=owner.org, role=Role.TREASURER)
    waiting = transfer(other, "5000", name="t2")
    decide(waiting, approver)

    membership_remove(membership=treasurer, actor=owner)
    membership_remove(membership=approver, actor=owner)

    theirs.refresh_from_db()
    assert theirs.status == ApprovalRequest.Status.CANCELLED
    assert Decision.objects.get(request=waiting).voided_at is not None
    assert waiting.events.filter(action="decision_voided").exists()
