"""`orgs.role_grant`: an admin granting, or inviting someone to, a role with trade, funding,
approval, member or policy capabilities waits for an owner's approval (default policy: one
owner). Owners grant directly. orgs asks through its gate (apps.orgs.hooks); the approved
request calls orgs' plain functions, so orgs imports nothing of approvals."""

from __future__ import annotations

import hashlib

from django.http import HttpRequest

from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_request_create
from apps.notifications.services import notify
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability, Role, role_can
from apps.orgs.services.invitations import invitation_issue
from apps.orgs.services.memberships import membership_change_role

KIND = "orgs.role_grant"
GATED_CAPABILITIES = frozenset(
    {
        Capability.TRADE,
        Capability.REQUEST_FUNDING,
        Capability.APPROVE_FUNDING,
        Capability.MANAGE_MEMBERS,
        Capability.MANAGE_POLICIES,
    }
)
GRANT_HELD = (
    "An owner must approve making {who} {role}: they stay {current} until then. "
    "The request is in the Approvals inbox."
)
INVITE_HELD = (
    "An owner must approve inviting {who} as {role}; the invitation is sent once approved. "
    "The request is in the Approvals inbox."
)
ALREADY_REQUESTED = "A request to give {who} a role is already waiting for approval."
REQUESTER_GONE = "The person who asked for this is no longer an administrator here."
MEMBER_GONE = "This person is no longer a member of the organization."


def role_is_gated(role: str) -> bool:
    return any(role_can(role, capability) for capability in GATED_CAPABILITIES)


def _subject_key(member: Membership | None, email: str | None) -> str:
    return f"member:{member.pk}" if member is not None else f"invite:{email}"


def role_grant_gate(
    *,
    actor: Membership,
    role: str,
    member: Membership | None,
    email: str | None,
    request: HttpRequest | None,
) -> str | None:
    """Registered with orgs (apps.orgs.hooks): hold an admin's grant of a powerful role."""
    if actor.role == Role.OWNER or not role_is_gated(role):
        return None
    who = member.user.email if member is not None else (email or "")
    key = _subject_key(member, email)
    if ApprovalRequest.objects.filter(
        org_id=actor.org_id,
        kind=KIND,
        summary__subject=key,
        status__in=[ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED],
    ).exists():
        return ALREADY_REQUESTED.format(who=who)
    summary = {
        "subject": key,
        "member_id": member.pk if member is not None else None,
        "email": who,
        "role": role,
        "from_role": member.role if member is not None else None,
    }
    approval_request_create(
        org=actor.org, kind=KIND, requester=actor, summary=summary, subject=member, request=request
    )
    if member is None:
        return INVITE_HELD.format(who=who, role=Role(role).label)
    return GRANT_HELD.format(who=who, role=Role(role).label, current=member.get_role_display())


def _member(approval: ApprovalRequest) -> Membership | None:
    member_id = approval.summary.get("member_id")
    if member_id is None:
        return None
    return (
        Membership.objects.select_related("user")
        .filter(pk=member_id, org_id=approval.org_id)
        .first()
    )


def fingerprint(approval: ApprovalRequest) -> str:
    """The member's role as it is now (or whether the invitee has joined meanwhile)."""
    summary = approval.summary
    if summary.get("member_id") is not None:
        member = _member(approval)
        state = f"member:{member.pk}:{member.role}" if member is not None else "gone"
    else:
        joined = Membership.objects.filter(
            org_id=approval.org_id, user__email__iexact=summary.get("email", "")
        ).exists()
        state = f"invite:{summary.get('email')}:{joined}"
    return hashlib.sha256(f"{state}:{summary.get('role')}".encode()).hexdigest()


def describe(approval: ApprovalRequest) -> str:
    summary = approval.summary
    role = Role(summary["role"]).label
    if summary.get("member_id") is None:
        return f"Invite {summary['email']} as {role}"
    current = Role(summary["from_role"]).label if summary.get("from_role") else "?"
    return f"Make {summary['email']} {role} (now {current})"


def handler(approval: ApprovalRequest) -> None:
    """Carry out the grant as the admin who asked, through orgs' plain functions (which check
    that the admin still manages members, and the owner rules)."""
    from django.core.exceptions import ValidationError

    requester = (
        Membership.objects.select_related("user", "org")
        .filter(org_id=approval.org_id, user_id=approval.requester_id)
        .first()
    )
    if requester is None or not requester.can(Capability.MANAGE_MEMBERS):
        raise ValidationError(REQUESTER_GONE)
    summary = approval.summary
    if summary.get("member_id") is None:
        invitation_issue(
            org=approval.org,
            email=summary["email"],
            role=summary["role"],
            invited_by=requester.user,
            request=None,
        )
        return
    member = _member(approval)
    if member is None:
        raise ValidationError(MEMBER_GONE)
    changed = membership_change_role(membership=member, role=summary["role"], actor=requester)
    # The member learns it too (their open pages reconnect with the new role by themselves).
    notify(
        org=approval.org,
        user_ids=[changed.user_id],
        kind="approvals.executed",
        title=f"Your role in {approval.org.name} is now {changed.get_role_display()}",
    )
