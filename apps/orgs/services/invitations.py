"""Writes for invitations: create, resend, revoke, accept (with or without an account).

Every service runs in one transaction, writes its audit record in that transaction and sends
the invitation email only after it commits.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.core.emails import email_normalize
from apps.core.trail import audit_record
from apps.orgs.hooks import role_grant_held
from apps.orgs.models import Invitation, Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.selectors import InvitationState, invitation_state, token_hash
from apps.orgs.services.memberships import ONLY_OWNER_MANAGES_OWNERS

logger = logging.getLogger(__name__)


INVITATION_TTL = timedelta(days=7)
ALREADY_MEMBER = "This person is already a member of the organization."
ALREADY_INVITED = "An invitation to this address is already pending. Resend or revoke it instead."
INVITATION_NOT_OPEN = "This invitation is no longer pending."
INVITATION_MESSAGES: dict[InvitationState, str] = {
    InvitationState.EXPIRED: "This invitation has expired. Ask an administrator to send a new one.",
    InvitationState.ACCEPTED: "This invitation has already been used.",
    InvitationState.REVOKED: "This invitation was withdrawn by the organization.",
}
INVITATION_INVALID = "This invitation link is not valid. Check that you copied the whole link."
INVITATION_WRONG_USER = (
    "This invitation was sent to another email address. Sign out and open the link again, "
    "or sign in with the invited address."
)
ACCOUNT_EXISTS = "An account with this email address exists already: sign in to accept."


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def invitation_url(token: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("invitations:accept", kwargs={"token": token})


def _send_invitation_email(invitation_id: int, token: str) -> None:
    invitation = Invitation.objects.select_related("org", "invited_by").get(pk=invitation_id)
    inviter = invitation.invited_by
    by = f" by {inviter.get_full_name() or inviter.email}" if inviter is not None else ""
    body = (
        f"You have been invited{by} to join {invitation.org.name} on the Kraken Institutional "
        f"Portal as {invitation.get_role_display()}.\n\n"
        f"Open this link to accept (it works once and expires on "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{invitation_url(token)}\n\n"
        "If you did not expect this invitation, ignore this email.\n"
    )
    try:
        send_mail(
            f"Invitation to join {invitation.org.name} on Kraken Institutional",
            body,
            settings.DEFAULT_FROM_EMAIL,
            [invitation.email],
        )
    except Exception:
        # The invitation is stored and can be resent; a mail outage must not fail the request.
        logger.exception("Could not send the invitation email for invitation %s", invitation_id)


def invitation_issue(
    *, org: Organization, email: str, role: str, invited_by: User, request: HttpRequest | None
) -> Invitation:
    """Create and email an invitation. Callers hold the transaction and have checked the actor."""
    email = email_normalize(email)
    if Membership.objects.filter(org=org, user__email__iexact=email).exists():
        raise ValidationError({"email": ALREADY_MEMBER})
    pending = (
        Invitation.objects.select_for_update()
        .filter(org=org, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True)
        .first()
    )
    now = timezone.now()
    if pending is not None:
        if invitation_state(pending, now) is InvitationState.OPEN:
            raise ValidationError({"email": ALREADY_INVITED})
        # An expired invitation blocks nobody: close it so the new one is the only open one.
        pending.revoked_at = now
        pending.save(update_fields=["revoked_at"])
    token = _new_token()
    invitation = Invitation(
        org=org,
        email=email,
        role=role,
        token_hash=token_hash(token),
        invited_by=invited_by,
        expires_at=now + INVITATION_TTL,
    )
    invitation.full_clean()
    invitation.save()
    audit_record(
        action="invitation.create",
        actor=invited_by,
        org=org,
        target=invitation,
        detail={"email": email, "role": role},
        request=request,
    )
    transaction.on_commit(partial(_send_invitation_email, invitation.pk, token))
    return invitation


@transaction.atomic
def invitation_create(
    *,
    org: Organization,
    email: str,
    role: str,
    actor: Membership,
    request: HttpRequest | None = None,
) -> Invitation:
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise ValidationError({"role": ONLY_OWNER_MANAGES_OWNERS})
    return invitation_issue(org=org, email=email, role=role, invited_by=actor.user, request=request)


@dataclass(frozen=True)
class InvitationGrant:
    invitation: Invitation | None
    # Set when the invitation waits for an approval (apps.orgs.hooks): the message says so.
    held: str | None = None


@transaction.atomic
def invitation_grant(
    *,
    org: Organization,
    email: str,
    role: str,
    actor: Membership,
    request: HttpRequest | None = None,
) -> InvitationGrant:
    """A person's invitation (the members page): `invitation_create`, unless the role-grant
    gate holds it until someone approves (an invitation carries its role, so it is gated like
    a role change). The approved request then calls `invitation_issue`."""
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise ValidationError({"role": ONLY_OWNER_MANAGES_OWNERS})
    # The spelling invitation_issue stores, so every spelling of an address (an IDN's ASCII
    # form) is one subject for the gate and meets its open invitation here.
    email = email_normalize(email)
    if Membership.objects.filter(org=org, user__email__iexact=email).exists():
        raise ValidationError({"email": ALREADY_MEMBER})
    pending = Invitation.objects.filter(
        org=org, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).first()
    if pending is not None and invitation_state(pending) is InvitationState.OPEN:
        # Refused before anything waits for an approval that could only fail.
        raise ValidationError({"email": ALREADY_INVITED})
    held = role_grant_held(actor=actor, role=role, member=None, email=email, request=request)
    if held is not None:
        return InvitationGrant(None, held)
    return InvitationGrant(
        invitation_create(org=org, email=email, role=role, actor=actor, request=request)
    )


@transaction.atomic
def invitation_resend(
    *, invitation: Invitation, actor: Membership, request: HttpRequest | None = None
) -> Invitation:
    """Give the invitation a new token and a new week: the old link stops working."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise ValidationError(INVITATION_NOT_OPEN)
    if invitation.role == Role.OWNER and actor.role != Role.OWNER:
        raise ValidationError(ONLY_OWNER_MANAGES_OWNERS)
    token = _new_token()
    invitation.token_hash = token_hash(token)
    invitation.expires_at = timezone.now() + INVITATION_TTL
    invitation.invited_by = actor.user
    invitation.save(update_fields=["token_hash", "expires_at", "invited_by"])
    audit_record(
        action="invitation.resend",
        actor=actor,
        target=invitation,
        detail={"email": invitation.email, "role": invitation.role},
        request=request,
    )
    transaction.on_commit(partial(_send_invitation_email, invitation.pk, token))
    return invitation


@transaction.atomic
def invitation_revoke(
    *, invitation: Invitation, actor: Membership, request: HttpRequest | None = None
) -> None:
    claimed = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if claimed != 1:
        raise ValidationError(INVITATION_NOT_OPEN)
    audit_record(
        action="invitation.revoke",
        actor=actor,
        target=invitation,
        detail={"email": invitation.email, "role": invitation.role},
        request=request,
    )


def _join(*, invitation: Invitation, user: User, request: HttpRequest | None) -> Membership:
    if email_normalize(user.email) != email_normalize(invitation.email):
        raise ValidationError(INVITATION_WRONG_USER)
    now = timezone.now()
    # Claim the invitation with a conditional update: of two simultaneous clicks, one wins.
    claimed = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).update(accepted_at=now)
    if claimed != 1:
        invitation.refresh_from_db()
        raise ValidationError(
            INVITATION_MESSAGES.get(invitation_state(invitation), INVITATION_NOT_OPEN)
        )
    # A removed member keeps their row (its keys and trail point at it): re-invited, the same
    # row becomes active again with the invitation's role. Their old keys stay as they were
    # (cancel-only or revoked); they add new ones.
    membership = (
        Membership.all_objects.select_for_update()
        .filter(org_id=invitation.org_id, user=user)
        .first()
    )
    rejoined = membership is not None
    if membership is None:
        membership = Membership(org_id=invitation.org_id, user=user, role=invitation.role)
        membership.full_clean()
        membership.save()
    elif membership.is_active:
        raise ValidationError(ALREADY_MEMBER)
    else:
        membership.status = Membership.Status.ACTIVE
        membership.role = invitation.role
        membership.removed_at = None
        membership.removed_by = None
        membership.full_clean()
        membership.save(update_fields=["status", "role", "removed_at", "removed_by", "updated_at"])
    user.current_org_id = invitation.org_id
    user.save(update_fields=["current_org"])
    audit_record(
        action="membership.join",
        actor=user,
        org=invitation.org,
        target=membership,
        detail={"role": invitation.role, "invitation_id": invitation.pk, "rejoined": rejoined},
        request=request,
    )
    return membership


@transaction.atomic
def invitation_accept(
    *, invitation: Invitation, user: User, request: HttpRequest | None = None
) -> Membership:
    """A signed-in person whose address the invitation was sent to joins the organization."""
    return _join(invitation=invitation, user=user, request=request)


@transaction.atomic
def invitation_accept_as_new_user(
    *,
    invitation: Invitation,
    first_name: str,
    last_name: str,
    password: str,
    request: HttpRequest | None = None,
) -> Membership:
    """Someone without an account sets their name and password and joins."""
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ValidationError(ACCOUNT_EXISTS)
    user = User.objects.create_user(
        invitation.email, password, first_name=first_name, last_name=last_name
    )
    audit_record(action="user.create", actor=user, target=user, request=request)
    return _join(invitation=invitation, user=user, request=request)
