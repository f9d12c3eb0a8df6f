"""Writes for an organization's own settings and the user's current organization."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.trail import audit_record
from apps.orgs.models import Membership, Organization


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


def user_current_org_set(*, user: User, org: Organization) -> User:
    """Remember the organization the user switched to (the caller checked membership)."""
    if user.current_org_id != org.pk:
        user.current_org = org
        user.save(update_fields=["current_org"])
    return user
