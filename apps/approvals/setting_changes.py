"""Organization settings that loosen a safeguard go through `orgs.policy_change` too.

Changing the reporting currency (every threshold and report is re-expressed), allowing API keys
that can do more than their use needs, and turning the 2FA requirement off each need two owners,
or for a sole owner a fresh step-up and a 24-hour delay during which every owner is emailed and
may cancel: exactly as a policy loosening (policy_changes.loosening_request). orgs asks through
its gate (apps.orgs.hooks.settings_loosening_held) from inside its settings transaction; the
approved request calls orgs' plain `organization_setting_apply`, so orgs imports nothing of
approvals.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.approvals.models import ApprovalRequest
from apps.approvals.policy_changes import KIND, loosening_request
from apps.approvals.services import UNSETTLED
from apps.orgs.models import Membership, Organization
from apps.orgs.services.organizations import organization_setting_apply

# What each setting is called in messages, and how its values read.
SETTING_NAMES = {
    "reporting_currency": "reporting currency",
    "allow_overprivileged_keys": "acceptance of over-privileged API keys",
    "require_2fa": "two-factor requirement",
}
SETTING_PENDING = (
    "A change to the {setting} is already waiting for approval; it can be cancelled in the "
    "Approvals inbox."
)
HELD_FOR_OWNER = (
    "{change}: this loosens a safeguard, so it waits for another owner's approval in the "
    "Approvals inbox. Until then nothing changes."
)
HELD_24H = (
    "{change}: you are the only owner and this loosens a safeguard, so it applies in 24 hours "
    "unless an owner cancels it in the Approvals inbox. Every owner has been emailed."
)


def _value_text(field: str, value: Any) -> str:
    if field == "reporting_currency":
        return str(value)
    return "on" if value else "off"


def change_text(field: str, old: Any, new: Any) -> str:
    """`Changing the reporting currency from USD to EUR`, `Turning the two-factor requirement
    off`, `Accepting API keys that can do more than their use needs`."""
    if field == "reporting_currency":
        return f"Changing the reporting currency from {old} to {new}"
    if field == "require_2fa":
        return "Turning off the requirement that every member use two-factor authentication"
    if field == "allow_overprivileged_keys":
        return "Accepting API keys that can do more than their use needs"
    return f"Changing the {field} from {_value_text(field, old)} to {_value_text(field, new)}"


def org_setting_gate(
    *,
    org: Organization,
    actor: Membership,
    field: str,
    old: Any,
    new: Any,
    stepped_up: bool,
    request: HttpRequest | None,
) -> str:
    """Registered with orgs (apps.orgs.hooks): hold a loosening of `field` as an
    `orgs.policy_change` request. Raises ValidationError when one is already waiting and
    PermissionDenied for a sole owner without a fresh step-up."""
    if ApprovalRequest.objects.filter(
        org=org, kind=KIND, summary__org_setting=field, status__in=UNSETTLED
    ).exists():
        raise ValidationError({field: SETTING_PENDING.format(setting=SETTING_NAMES[field])})
    change = change_text(field, old, new)
    summary = {"org_setting": field, "from": old, "to": new}
    delayed, _approval = loosening_request(
        org=org,
        actor=actor,
        summary=summary,
        stepped_up=stepped_up,
        request=request,
        what=f"the organization's {SETTING_NAMES[field]}",
    )
    return (HELD_24H if delayed else HELD_FOR_OWNER).format(change=change)


def handler(approval: ApprovalRequest) -> None:
    """Carry the change out through orgs' plain function, audited with this request's id."""
    summary = approval.summary
    requester = Membership.objects.filter(
        org_id=approval.org_id, user_id=approval.requester_id
    ).first()
    organization_setting_apply(
        org=approval.org,
        field=summary["org_setting"],
        value=summary["to"],
        actor=requester,
        approval_id=approval.pk,
    )


def fingerprint(approval: ApprovalRequest) -> str:
    """The setting's value now: a change made meanwhile voids earlier decisions."""
    field = approval.summary["org_setting"]
    value = Organization.objects.filter(pk=approval.org_id).values_list(field, flat=True).first()
    return hashlib.sha256(f"{field}:{value!r}".encode()).hexdigest()


def describe(approval: ApprovalRequest) -> str:
    summary = approval.summary
    return change_text(summary["org_setting"], summary["from"], summary["to"])
