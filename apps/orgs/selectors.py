"""Reads for organizations and memberships. Access checks come bundled with the fetch."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from apps.orgs.models import Membership, Organization
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
    return Membership.objects.filter(org=org).select_related("user").order_by("user__email")
