"""Reads for organizations and memberships. Access checks come bundled with the fetch."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import EncryptedTOTPDevice
from apps.orgs.models import (
    Invitation,
    KrakenAccount,
    Membership,
    OnboardingApplication,
    Organization,
)
from apps.orgs.permissions import Capability

NOT_A_MEMBER = "No such organization."
ROLE_TOO_LOW = "Your role does not allow this."


def membership_get(*, user: Any, org: str, capability: Capability = Capability.VIEW) -> Membership:
    """The user's membership in org `org` (a slug): 404 for outsiders, 403 for a too-low role."""
    if not getattr(user, "is_authenticated", False):
        raise Http404(NOT_A_MEMBER)
    try:
        membership = Membership.objects.select_related("org", "user").get(user=user, org__slug=org)
    except Membership.DoesNotExist:
        raise Http404(NOT_A_MEMBER) from None
    if not membership.can(capability):
        raise PermissionDenied(ROLE_TOO_LOW)
    return membership


def memberships_of(*, user: Any) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("org").order_by("org__name")


def org_members(*, org: Organization) -> QuerySet[Membership]:
    """The organization's current members (removed ones are not members), each with
    `has_2fa` (a confirmed authenticator) and their user's last sign-in, in one query."""
    confirmed = EncryptedTOTPDevice.objects.filter(user=OuterRef("user_id"), confirmed=True)
    return (
        Membership.objects.filter(org=org)
        .select_related("user")
        .annotate(has_2fa=Exists(confirmed))
        .order_by("user__email")
    )


def member_get_in_org(*, org: Organization, pk: int) -> Membership:
    """A member of `org` by id; 404 when the id belongs to another organization."""
    try:
        return Membership.objects.select_related("user", "org").get(org=org, pk=pk)
    except Membership.DoesNotExist:
        raise Http404("No such member.") from None


def token_hash(token: str) -> str:
    """Invitation links carry a random token; only its SHA-256 is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class InvitationState(StrEnum):
    OPEN = "open"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    REVOKED = "revoked"


def invitation_state(invitation: Invitation, now: datetime | None = None) -> InvitationState:
    if invitation.accepted_at is not None:
        return InvitationState.ACCEPTED
    if invitation.revoked_at is not None:
        return InvitationState.REVOKED
    if invitation.expires_at <= (now or timezone.now()):
        return InvitationState.EXPIRED
    return InvitationState.OPEN


def invitation_by_token(*, token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("org", "invited_by")
        .filter(token_hash=token_hash(token))
        .first()
    )


def invitations_pending(*, org: Organization) -> QuerySet[Invitation]:
    """Invitations neither accepted nor revoked, expired ones included (they can be resent)."""
    return Invitation.objects.filter(
        org=org, accepted_at__isnull=True, revoked_at__isnull=True
    ).select_related("invited_by")


def invitation_get_in_org(*, org: Organization, pk: int) -> Invitation:
    try:
        return Invitation.objects.select_related("org").get(org=org, pk=pk)
    except Invitation.DoesNotExist:
        raise Http404("No such invitation.") from None


def onboarding_pending() -> QuerySet[OnboardingApplication]:
    return OnboardingApplication.objects.filter(status=OnboardingApplication.Status.PENDING)


def onboarding_recently_reviewed(*, limit: int = 20) -> list[OnboardingApplication]:
    return list(
        OnboardingApplication.objects.exclude(status=OnboardingApplication.Status.PENDING)
        .select_related("reviewed_by", "org")
        .order_by("-reviewed_at")[:limit]
    )


def onboarding_get(*, pk: int) -> OnboardingApplication:
    try:
        return OnboardingApplication.objects.get(pk=pk)
    except OnboardingApplication.DoesNotExist:
        raise Http404("No such application.") from None


# --- Kraken accounts -------------------------------------------------------------------------

ACCOUNT_NOT_FOUND = "No such Kraken account."


def kraken_accounts(
    *, org: Organization, include_archived: bool = False
) -> QuerySet[KrakenAccount]:
    """The organization's accounts, the master first, then its subaccounts by label."""
    accounts = KrakenAccount.objects.filter(org=org).select_related("parent")
    if not include_archived:
        accounts = accounts.filter(archived_at__isnull=True)
    return accounts.order_by(F("archived_at").asc(nulls_first=True), "kind", "label", "id")


def kraken_account_get(*, org: Organization, pk: int) -> KrakenAccount:
    """One account of `org` by id (archived ones included); 404 for another organization's."""
    account = kraken_accounts(org=org, include_archived=True).filter(pk=pk).first()
    if account is None:
        raise Http404(ACCOUNT_NOT_FOUND)
    return account


def kraken_account_master(*, org: Organization) -> KrakenAccount | None:
    return KrakenAccount.objects.filter(
        org=org, kind=KrakenAccount.Kind.MASTER, archived_at__isnull=True
    ).first()
