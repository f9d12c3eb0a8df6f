"""Writes for an organization's own settings and the user's current organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import User
from apps.core.trail import audit_record
from apps.orgs.hooks import settings_loosening_held
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.services.memberships import org_sockets_recheck_on_commit
from apps.orgs.validators import normalize_asset_code

# Changing the reporting currency re-expresses every threshold and report; the business-day
# time zone moves "today" and so every daily limit: owners only, after a fresh step-up (the view).
OWNER_ONLY_SETTING = "Only an owner can change the {setting}."
_OWNER_ONLY = {
    "reporting_currency": "reporting currency",
    "business_timezone": "business time zone",
}

OVERPRIVILEGED_KEYS_OWNERS_ONLY = (
    "Only an owner can allow API keys that can do more than their use needs."
)
REQUIRE_2FA_OFF_OWNERS_ONLY = "Only an owner can stop requiring two-factor authentication."
SETTING_UNKNOWN = "“{field}” is not a setting that waits for approval."

# Loosenings: a change that weakens a safeguard. Each needs two owners, or for a sole owner a
# step-up and a 24-hour delay during which every owner is emailed and may cancel (the gate that
# apps.approvals registers, `orgs.policy_change`); the approved request calls
# `organization_setting_apply`. {field: whether a change from old to new loosens}.
LOOSENINGS: dict[str, Callable[[Any, Any], bool]] = {
    # Every threshold and report is re-expressed in the new currency.
    "reporting_currency": lambda old, new: old != new,
    # Keys that can move funds beyond their use would be accepted instead of refused.
    "allow_overprivileged_keys": lambda old, new: bool(new) and not old,
    # Members could act without a second factor.
    "require_2fa": lambda old, new: bool(old) and not new,
}


@dataclass(frozen=True)
class SettingsSaved:
    """The organization as saved, and what waits for approval instead (one message each)."""

    org: Organization
    held: tuple[str, ...] = ()
    changed: bool = False  # whether anything was saved now


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
    stepped_up: bool = False,
    request: HttpRequest | None = None,
) -> SettingsSaved:
    """Save the organization's settings; `None` leaves the currency, time zone or
    `allow_overprivileged_keys` unchanged. The currency, time zone and over-privilege setting,
    and turning the 2FA requirement off, are an owner's decision (the view asks for a fresh
    step-up first, `stepped_up`). A loosening (LOOSENINGS) is not applied here but handed to the
    approvals gate, which holds it for a second owner or a sole owner's 24-hour delay; the rest
    of the form is saved at once."""
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
        if not require_2fa:
            role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
            if role != Role.OWNER:
                raise ValidationError({"require_2fa": REQUIRE_2FA_OFF_OWNERS_ONLY})
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
    org.full_clean()
    held: list[str] = []
    for field, (old, new) in list(changes.items()):
        if field not in LOOSENINGS or not LOOSENINGS[field](old, new):
            continue
        message = settings_loosening_held(
            org=org,
            actor=actor,
            field=field,
            old=old,
            new=new,
            stepped_up=stepped_up,
            request=request,
        )
        if message is not None:
            # Held: the setting keeps its value until the request is carried out.
            setattr(org, field, old)
            del changes[field]
            held.append(message)
    if not changes:
        return SettingsSaved(org, tuple(held))
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
    return SettingsSaved(org, tuple(held), changed=True)


def organization_setting_apply(
    *, org: Organization, field: str, value: Any, actor: Membership | None, approval_id: int
) -> Organization:
    """Carry out an approved loosening (called by apps.approvals' handler, in its transaction):
    set one LOOSENINGS setting and audit it with the request that approved it."""
    if field not in LOOSENINGS:
        raise ValidationError(SETTING_UNKNOWN.format(field=field))
    with transaction.atomic():
        org = Organization.objects.select_for_update().get(pk=org.pk)
        old = getattr(org, field)
        if old == value:
            return org
        setattr(org, field, value)
        org.full_clean()
        org.save(update_fields=[field])
        audit_record(
            action="organization.settings",
            actor=actor,
            org=org,
            target=org,
            detail={"changes": {field: [old, value]}, "approval": approval_id},
        )
    return org


def user_current_org_set(*, user: User, org: Organization) -> User:
    """Remember the organization the user switched to (the caller checked membership)."""
    if user.current_org_id != org.pk:
        user.current_org = org
        user.save(update_fields=["current_org"])
    return user
