"""Reads for the credential vault. Who may see which key is decided here, and only here.

- A member sees and manages their own keys.
- Owners and admins also see the metadata of the organization's shared desk keys; owners
  manage them.
- Nobody uses another member's personal keys. Owners and admins (Capability.OVERSEE_KEYS) see
  every member's keys, masked, on the oversight page and may revoke them; elsewhere another
  member's key id is a 404.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role
from apps.vault.models import Credential, Use

CREDENTIAL_NOT_FOUND = "No such API key."
DESK_KEY_OWNERS_ONLY = "Only an owner can change a shared desk key."
NO_CREDENTIAL = (
    "You have no active {use} API key in this organization. Add one under “API keys” (and "
    "check that its permissions allow {use})."
)

_SEE_DESK_KEYS = frozenset({Role.OWNER, Role.ADMIN})


class NoCredential(Exception):
    """The member has no usable key for the job. The message is safe to show."""


def _visible_filter(membership: Membership) -> Q:
    visible = Q(owner=membership, is_shared_desk_key=False)
    if membership.role in _SEE_DESK_KEYS:
        visible |= Q(is_shared_desk_key=True)
    return visible


def credential_list(*, membership: Membership) -> QuerySet[Credential]:
    """The member's own keys, and (for owners and admins) the organization's desk keys."""
    return (
        Credential.objects.filter(_visible_filter(membership), org=membership.org)
        .select_related("owner__user")
        .order_by("-is_shared_desk_key", "status", "-created_at", "-id")
    )


def credential_get(
    *, membership: Membership, credential_id: int, manage: bool = False
) -> Credential:
    """One visible key: 404 if the member may not see it, 403 if they may see but not change it
    (an admin and a shared desk key)."""
    credential = credential_list(membership=membership).filter(pk=credential_id).first()
    if credential is None:
        raise Http404(CREDENTIAL_NOT_FOUND)
    if manage and credential.is_shared_desk_key and membership.role != Role.OWNER:
        raise PermissionDenied(DESK_KEY_OWNERS_ONLY)
    return credential


def credential_for(*, membership: Membership, use: str) -> Credential:
    """The key a task acting for `membership` must use for `use`; raises NoCredential.

    The member's own active key for that use comes first; otherwise the organization's shared
    desk key for that use, provided an owner (still an owner) set it up. Never another member's
    personal key.
    """
    active = Credential.objects.filter(
        org_id=membership.org_id, use=use, status=Credential.Status.ACTIVE
    ).select_related("owner")
    own = active.filter(owner=membership, is_shared_desk_key=False).first()
    if own is not None:
        return own
    desk = active.filter(
        is_shared_desk_key=True,
        owner__role=Role.OWNER,
        owner__status=Membership.Status.ACTIVE,  # joins bypass the default manager
    ).first()
    if desk is not None:
        return desk
    raise NoCredential(NO_CREDENTIAL.format(use=Use(use).label.lower()))


def credentials_overseen(*, org: Organization) -> QuerySet[Credential]:
    """Every key of the organization's members, current and former, for the owners' and
    admins' oversight page: metadata only (the page masks the API key and never has the
    secret). Keys that still work come first."""
    return (
        Credential.objects.filter(org=org)
        .select_related("owner__user")
        .order_by("status", "owner__user__email", "-created_at", "-id")
    )


def credential_get_overseen(*, org: Organization, credential_id: int) -> Credential:
    credential = credentials_overseen(org=org).filter(pk=credential_id).first()
    if credential is None:
        raise Http404(CREDENTIAL_NOT_FOUND)
    return credential
