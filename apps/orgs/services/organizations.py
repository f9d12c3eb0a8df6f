"""Writes for an organization's own settings and the user's current organization."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.trail import audit_record
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.validators import normalize_asset_code

# Changing the reporting currency re-expresses every threshold and report (a loosening-type
# change that the approvals work will gate with two owners); the business-day time zone moves
# "today" and so every daily limit. Until then: owners only, after a fresh step-up (the view).
OWNER_ONLY_SETTING = "Only an owner can change the {setting}."
_OWNER_ONLY = {
    "reporting_currency": "reporting currency",
    "business_timezone": "business time zone",
}


@transaction.atomic
def organization_update_settings(
    *,
    org: Organization,
    actor: Membership,
    name: str,
    require_2fa: bool,
    reporting_currency: str | None = None,
    business_timezone: str | None = None,
    request: HttpRequest | None = None,
) -> Organization:
    """Save the organization's settings; `None` leaves the currency or time zone unchanged."""
    org = Organization.objects.select_for_update().get(pk=org.pk)
    changes: dict[str, list[Any]] = {}
    wanted: dict[str, str] = {}
    if reporting_currency is not None:
        wanted["reporting_currency"] = normalize_asset_code(reporting_currency)
    if business_timezone is not None:
        wanted["business_timezone"] = business_timezone.strip()
    for field, value in wanted.items():
        if getattr(org, field) == value:
            continue
        actor_role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
        if actor_role != Role.OWNER:
            raise ValidationError({field: OWNER_ONLY_SETTING.format(setting=_OWNER_ONLY[field])})
        changes[field] = [getattr(org, field), value]
        setattr(org, field, value)
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
