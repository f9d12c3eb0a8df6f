"""Writes for organizations, members, invitations and onboarding.

Every service runs in one transaction, writes its audit record in that transaction and sends
emails or socket events only after it commits.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.services import audit_record
from apps.audit.throttle import audit_record_throttled
from apps.core.groups import member_group
from apps.core.realtime import CLOSE_FORBIDDEN, CLOSE_REAUTHORISE, close_sockets_on_commit
from apps.orgs.models import Invitation, Membership, OnboardingApplication, Organization
from apps.orgs.permissions import Capability, Role, role_can
from apps.orgs.selectors import ROLE_TOO_LOW, InvitationState, invitation_state, token_hash
from apps.vault.models import Credential
from apps.vault.services import credential_revoke

logger = logging.getLogger(__name__)

INVITATION_TTL = timedelta(days=7)

ONLY_OWNER_MANAGES_OWNERS = "Only an owner can make someone an owner or change an owner."
LAST_OWNER_DEMOTE = (
    "The organization's last owner cannot be given another role. Make someone else an owner first."
)
LAST_OWNER_REMOVE = (
    "The organization's last owner cannot be removed. Make someone else an owner first."
)
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
SERVICE_UNAVAILABLE_REGION = (
    "Kraken Institutional is not available to businesses in Washington or New York State."
)
UNAVAILABLE_US_STATES = frozenset({"WA", "NY"})
APPLICATION_ALREADY_REVIEWED = "This application has already been reviewed."
APPLICATION_PENDING = (
    "An application from this email address is already under review; we will be in touch."
)
MEMBER_GONE = "This person is no longer a member of the organization."


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


def _issue_invitation(
    *, org: Organization, email: str, role: str, invited_by: Any, request: HttpRequest | None
) -> Invitation:
    """Create and email an invitation. Callers hold the transaction and have checked the actor."""
    email = email.strip().lower()
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
    return _issue_invitation(
        org=org, email=email, role=role, invited_by=actor.user, request=request
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


def _join(*, invitation: Invitation, user: Any, request: HttpRequest | None) -> Membership:
    if user.email.strip().lower() != invitation.email.strip().lower():
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
    if Membership.objects.filter(org_id=invitation.org_id, user=user).exists():
        raise ValidationError(ALREADY_MEMBER)
    membership = Membership(org_id=invitation.org_id, user=user, role=invitation.role)
    membership.full_clean()
    membership.save()
    user.current_org_id = invitation.org_id
    user.save(update_fields=["current_org"])
    audit_record(
        action="membership.join",
        actor=user,
        org=invitation.org,
        target=membership,
        detail={"role": invitation.role, "invitation_id": invitation.pk},
        request=request,
    )
    return membership


@transaction.atomic
def invitation_accept(
    *, invitation: Invitation, user: Any, request: HttpRequest | None = None
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
    user_model: Any = get_user_model()
    if user_model.objects.filter(email__iexact=invitation.email).exists():
        raise ValidationError(ACCOUNT_EXISTS)
    user = user_model.objects.create_user(
        invitation.email, password, first_name=first_name, last_name=last_name
    )
    audit_record(action="user.create", actor=user, target=user, request=request)
    return _join(invitation=invitation, user=user, request=request)


def _lock_members(*, membership: Membership, actor: Membership) -> tuple[Membership, str]:
    """Serialise membership changes of one organization and re-read both parties under the lock.

    Locking the organization row first (always the same single row) means two owners demoting
    each other at the same moment queue up instead of deadlocking, and the second one sees the
    first one's change.
    """
    Organization.objects.select_for_update().filter(pk=membership.org_id).first()
    try:
        target = Membership.objects.select_related("user", "org").get(pk=membership.pk)
    except Membership.DoesNotExist:
        raise ValidationError(MEMBER_GONE) from None
    actor_role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
    if actor_role is None or not role_can(actor_role, Capability.MANAGE_MEMBERS):
        raise PermissionDenied(ROLE_TOO_LOW)
    return target, actor_role


def _check_owner_rules(*, target: Membership, actor_role: str, new_role: str | None) -> None:
    """`new_role` None means removal. Call with the organization locked (`_lock_members`)."""
    touches_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor_role != Role.OWNER:
        raise ValidationError(ONLY_OWNER_MANAGES_OWNERS)
    owners = Membership.objects.filter(org_id=target.org_id, role=Role.OWNER)
    if target.role == Role.OWNER and new_role != Role.OWNER and owners.count() <= 1:
        raise ValidationError(LAST_OWNER_REMOVE if new_role is None else LAST_OWNER_DEMOTE)


def _close_sockets(membership: Membership, code: int) -> None:
    close_sockets_on_commit(member_group(membership.org_id, membership.user_id), code)


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, actor: Membership, request: HttpRequest | None = None
) -> Membership:
    if role not in Role.values:
        raise ValidationError({"role": "Choose a valid role."})
    target, actor_role = _lock_members(membership=membership, actor=actor)
    if target.role == role:
        return target
    _check_owner_rules(target=target, actor_role=actor_role, new_role=role)
    old_role = target.role
    target.role = role
    target.save(update_fields=["role", "updated_at"])
    audit_record(
        action="membership.role_change",
        actor=actor,
        target=target,
        detail={"member": target.user.email, "from": old_role, "to": role},
        request=request,
    )
    # Open sockets were authorised for the old role: close them; the pages reconnect and are
    # authorised afresh for the new one.
    _close_sockets(target, CLOSE_REAUTHORISE)
    return target


@transaction.atomic
def membership_remove(
    *, membership: Membership, actor: Membership, request: HttpRequest | None = None
) -> None:
    target, actor_role = _lock_members(membership=membership, actor=actor)
    _check_owner_rules(target=target, actor_role=actor_role, new_role=None)
    # The member's API keys go with the membership (the foreign key cascades). Revoke the
    # active ones through the vault first, so each one is audited and its sealed secret is
    # destroyed in this transaction, exactly as if the member had revoked it.
    active_keys = Credential.objects.select_for_update().filter(
        owner=target, status=Credential.Status.ACTIVE
    )
    for credential in active_keys:
        credential_revoke(credential=credential, actor=actor, request=request)
    audit_record(
        action="membership.remove",
        actor=actor,
        target=target,
        detail={"member": target.user.email, "role": target.role},
        request=request,
    )
    user = target.user
    target.delete()
    if user.current_org_id == target.org_id:
        user.current_org = None
        user.save(update_fields=["current_org"])
    _close_sockets(target, CLOSE_FORBIDDEN)


@transaction.atomic
def organization_update_settings(
    *,
    org: Organization,
    actor: Membership,
    name: str,
    require_2fa: bool,
    request: HttpRequest | None = None,
) -> Organization:
    org = Organization.objects.select_for_update().get(pk=org.pk)
    changes: dict[str, list[Any]] = {}
    if org.name != name:
        changes["name"] = [org.name, name]
        org.name = name
    if org.require_2fa != require_2fa:
        changes["require_2fa"] = [org.require_2fa, require_2fa]
        org.require_2fa = require_2fa
    if not changes:
        return org
    org.full_clean()
    org.save(update_fields=list(changes))
    audit_record(
        action="organization.settings",
        actor=actor,
        org=org,
        target=org,
        detail={"changes": changes},
        request=request,
    )
    return org


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50].strip("-") or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def onboarding_apply(
    *,
    company_name: str,
    country: str,
    region: str,
    first_name: str,
    last_name: str,
    email: str,
    business_type: str,
    assets_under_management: str,
    request: HttpRequest | None = None,
) -> OnboardingApplication:
    if country != "US":
        region = ""
    if country == "US" and region in UNAVAILABLE_US_STATES:
        # Nothing is stored for an applicant we cannot serve.
        raise ValidationError(SERVICE_UNAVAILABLE_REGION)
    email = email.strip().lower()
    pending = OnboardingApplication.objects.filter(
        email__iexact=email, status=OnboardingApplication.Status.PENDING
    )
    if pending.exists():
        raise ValidationError({"email": APPLICATION_PENDING})
    application = OnboardingApplication(
        company_name=company_name,
        country=country,
        region=region,
        first_name=first_name,
        last_name=last_name,
        email=email,
        business_type=business_type,
        assets_under_management=assets_under_management,
    )
    application.full_clean()
    application.save()
    # The form is public: at most one record a minute per client address (the application
    # itself is stored either way), so a flood cannot grow the chain (apps/audit/throttle.py).
    audit_record_throttled(
        action="onboarding.apply",
        target=application,
        detail={"company": company_name, "country": country, "region": region},
        request=request,
    )
    return application


def _claim_review(*, application: OnboardingApplication, reviewer: Any, status: str) -> None:
    claimed = OnboardingApplication.objects.filter(
        pk=application.pk, status=OnboardingApplication.Status.PENDING
    ).update(status=status, reviewed_at=timezone.now(), reviewed_by=reviewer)
    if claimed != 1:
        raise ValidationError(APPLICATION_ALREADY_REVIEWED)
    application.refresh_from_db()


@transaction.atomic
def onboarding_approve(
    *, application: OnboardingApplication, reviewer: Any, request: HttpRequest | None = None
) -> OnboardingApplication:
    """Create the organization and invite the applicant as its owner."""
    _claim_review(
        application=application, reviewer=reviewer, status=OnboardingApplication.Status.APPROVED
    )
    org = Organization(
        name=application.company_name,
        slug=_unique_slug(application.company_name),
        country=application.country,
    )
    org.full_clean()
    org.save()
    application.org = org
    application.save(update_fields=["org"])
    audit_record(
        action="onboarding.approve",
        actor=reviewer,
        target=application,
        detail={"org_id": org.pk, "slug": org.slug},
        request=request,
    )
    audit_record(
        action="organization.create",
        actor=reviewer,
        org=org,
        target=org,
        detail={"application_id": application.pk},
        request=request,
    )
    _issue_invitation(
        org=org, email=application.email, role=Role.OWNER, invited_by=reviewer, request=request
    )
    return application


@transaction.atomic
def onboarding_reject(
    *, application: OnboardingApplication, reviewer: Any, request: HttpRequest | None = None
) -> OnboardingApplication:
    _claim_review(
        application=application, reviewer=reviewer, status=OnboardingApplication.Status.REJECTED
    )
    audit_record(action="onboarding.reject", actor=reviewer, target=application, request=request)
    return application
