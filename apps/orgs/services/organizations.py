"""Writes for an organization's own settings and the user's current organization."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.trail import audit_record
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.services.memberships import org_sockets_recheck_on_commit
from apps.orgs.validators import normalize_asset_code

# Changing the reporting currency re-expresses every threshold and report (a loosening-type
# change that the approvals work will gate with two owners); the business-day time zone moves
# "today" and so every daily limit. Until then: owners only, after a fresh step-up (the view).
OWNER_ONLY_SETTING = "Only an owner can change the {setting}."
_OWNER_ONLY = {
    "reporting_currency": "reporting currency",
    "business_timezone": "business time zone",
}

OVERPRIVILEGED_KEYS_OWNERS_ONLY = (
    "Only an owner can allow API keys that can do more than their use needs."
)


@transaction.atomic(durable=True)
def organization_update_settings(
    *,
    org: Organization,
    actor: Membership,
    name: str,
    require_2fa: bool,
    reporting_currency: str | None = None,
    business_timezone: str | None = None,
    allow_overprivileged_keys: bool | None = None,
    request: HttpRequest | None = None,
) -> Organization:
    """Save the organization's settings; `None` leaves the currency, time zone or
    `allow_overprivileged_keys` unchanged. The currency, time zone and over-privilege setting
    are an owner's decision (the view asks for a fresh step-up first)."""
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
    if (
        allow_overprivileged_keys is not None
        and org.allow_overprivileged_keys != allow_overprivileged_keys
    ):
        # Re-read the actor's role under the organization's lock: a demotion that committed
        # a moment ago counts.
        role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
        if role != Role.OWNER:
            raise PermissionDenied(OVERPRIVILEGED_KEYS_OWNERS_ONLY)
        changes["allow_overprivileged_keys"] = [
            org.allow_overprivileged_keys,
            allow_overprivileged_keys,
        ]
        org.allow_overprivileged_keys = allow_overprivileged_keys
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
    if changes.get("require_2fa") == [False, True]:
        # Sockets opened without a verified second factor no longer qualify: each member
        # socket checks itself again after commit, as pages do on their next request.
        org_sockets_recheck_on_commit(org)
    return org


def user_current_org_set(*, user: User, org: Organization) -> User:
    """Remember the organization the user switched to (the caller checked membership)."""
    if user.current_org_id != org.pk:
        user.current_org = org
        user.save(update_fields=["current_org"])
    return user
