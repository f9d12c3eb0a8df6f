"""`orgs.policy_change`: owners edit approval policies, and a change is itself a request.
The same rules gate the organization settings that loosen a safeguard (setting_changes.py).

- Two or more owners: any change waits for a second owner's approval.
- A sole owner: a tightening applies at once; a loosening (a threshold raised, fewer approvals,
  an owner no longer required, a role added to the approvers, a longer expiry, a cap raised or
  dropped) needs a fresh step-up and waits 24 hours, during which every owner is emailed and
  may cancel it.
A policy the current members could not satisfy is refused when proposed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.approvals.models import ApprovalRequest, Policy
from apps.approvals.policies import (
    org_member_roles,
    policy_for,
    policy_tiers,
    policy_tiers_replace,
    tier_problems,
)
from apps.approvals.registry import TierSpec, approval_kind_get, approval_kind_register
from apps.approvals.services import approval_link, approval_request_create
from apps.core.trail import audit_record
from apps.notifications.services import notify
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role

KIND = "orgs.policy_change"
LOOSENING_DELAY = timedelta(hours=24)
ONLY_OWNERS_EDIT = "Only an owner can change an approval policy."
NOT_EDITABLE = "This policy is fixed: it governs policy changes themselves."
POLICY_UNSATISFIABLE = "The current members could not satisfy this policy: {problems}"
STEP_UP_FOR_LOOSENING = "Loosening a policy needs a fresh two-factor confirmation first."
NO_CHANGE = "Nothing changed."
NEEDS_TIER = "A policy needs at least one tier, starting at 0."
APPLIED = "The policy was tightened and applies now."
WAITS_FOR_OWNER = "The change waits for another owner's approval."
WAITS_24H = (
    "You are the only owner and this loosens the policy: it applies in 24 hours unless an "
    "owner cancels it. Every owner has been emailed."
)
CHANGE_PENDING = "A change to this policy is already waiting; cancel it first."


@dataclass(frozen=True)
class PolicySpec:
    currency: str
    expiry_hours: int
    velocity_caps: dict[str, Decimal]
    tiers: tuple[TierSpec, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "expiry_hours": self.expiry_hours,
            "velocity_caps": {
                k: format(v.normalize(), "f") for k, v in sorted(self.velocity_caps.items())
            },
            "tiers": [
                {
                    # Normalised, so 0E-8 read back from the database equals a typed 0.
                    "min_value": format(t.min_value.normalize(), "f"),
                    "approvals": t.approvals,
                    "roles": sorted(t.roles),
                    "owner_required": t.owner_required,
                }
                for t in sorted(self.tiers, key=lambda t: t.min_value)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicySpec:
        return cls(
            currency=data["currency"],
            expiry_hours=int(data["expiry_hours"]),
            velocity_caps={k: Decimal(v) for k, v in data["velocity_caps"].items()},
            tiers=tuple(
                TierSpec(
                    Decimal(t["min_value"]),
                    int(t["approvals"]),
                    tuple(t["roles"]),
                    bool(t["owner_required"]),
                )
                for t in data["tiers"]
            ),
        )


def policy_spec(policy: Policy) -> PolicySpec:
    return PolicySpec(
        currency=policy.currency,
        expiry_hours=policy.expiry_hours,
        velocity_caps={k: Decimal(str(v)) for k, v in policy.velocity_caps.items()},
        tiers=tuple(policy_tiers(policy)),
    )


def _strictness(tiers: tuple[TierSpec, ...], value: Decimal) -> tuple[int, bool, frozenset[str]]:
    from apps.approvals.policies import tier_for_value

    tier = tier_for_value(tiers, value)
    return tier.approvals, tier.owner_required, frozenset(tier.roles)


def is_loosening(old: PolicySpec, new: PolicySpec) -> bool:
    """True if any value would need less under `new` than under `old`: fewer approvals, no
    owner, more roles allowed to approve (at any threshold of either), a longer expiry, or a
    higher or missing velocity cap."""
    if new.currency != old.currency or new.expiry_hours > old.expiry_hours:
        return True
    for asset, cap in old.velocity_caps.items():
        if asset not in new.velocity_caps or new.velocity_caps[asset] > cap:
            return True
    points = {t.min_value for t in old.tiers} | {t.min_value for t in new.tiers}
    for value in points:
        old_n, old_owner, old_roles = _strictness(old.tiers, value)
        new_n, new_owner, new_roles = _strictness(new.tiers, value)
        if new_n < old_n or (old_owner and not new_owner) or not new_roles <= old_roles:
            return True
    return False


def _policy_fingerprint(org_id: int, kind: str) -> str:
    policy = Policy.objects.filter(org_id=org_id, kind=kind).first()
    state = policy_spec(policy).as_json() if policy is not None else {}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def _validate(org: Organization, spec: PolicySpec) -> None:
    if not spec.tiers or min(t.min_value for t in spec.tiers) != 0:
        raise ValidationError(NEEDS_TIER)
    problems = tier_problems(
        tiers=spec.tiers, currency=spec.currency, members=org_member_roles(org=org)
    )
    if problems:
        raise ValidationError(POLICY_UNSATISFIABLE.format(problems=" ".join(problems)))


def _apply(policy: Policy, spec: PolicySpec) -> None:
    policy.currency = spec.currency
    policy.expiry_hours = spec.expiry_hours
    policy.velocity_caps = {k: str(v) for k, v in spec.velocity_caps.items()}
    policy.save()
    policy_tiers_replace(policy, spec.tiers)


@dataclass(frozen=True)
class PolicyChangeOutcome:
    message: str
    approval: ApprovalRequest | None = None


@transaction.atomic(durable=True)
def policy_change_propose(
    *,
    org: Organization,
    kind: str,
    actor: Membership,
    spec: PolicySpec,
    stepped_up: bool,
    request: HttpRequest | None = None,
) -> PolicyChangeOutcome:
    if not approval_kind_get(kind).editable:
        raise ValidationError(NOT_EDITABLE)
    Organization.objects.select_for_update().filter(pk=org.pk).first()
    role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
    if role != Role.OWNER:
        raise PermissionDenied(ONLY_OWNERS_EDIT)
    _validate(org, spec)
    policy = policy_for(org=org, kind=kind)
    current = policy_spec(policy)
    if current.as_json() == spec.as_json():
        raise ValidationError(NO_CHANGE)
    if ApprovalRequest.objects.filter(
        org=org,
        kind=KIND,
        summary__policy_kind=kind,
        status__in=[ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED],
    ).exists():
        raise ValidationError(CHANGE_PENDING)
    loosening = is_loosening(current, spec)
    owners = owner_user_ids(org)
    summary = {"policy_kind": kind, "from": current.as_json(), "to": spec.as_json()}
    if len(owners) < 2 and not loosening:
        _apply(policy, spec)
        audit_record(
            action="approval.policy_change",
            actor=actor,
            org=org,
            target=policy,
            detail=summary,
            request=request,
        )
        return PolicyChangeOutcome(APPLIED)
    delayed, approval = loosening_request(
        org=org,
        actor=actor,
        summary=summary,
        stepped_up=stepped_up,
        request=request,
        what=f"the {kind} policy",
    )
    return PolicyChangeOutcome(WAITS_24H if delayed else WAITS_FOR_OWNER, approval)


def owner_user_ids(org: Organization) -> list[int]:
    return list(
        Membership.objects.filter(org=org, role=Role.OWNER).values_list("user_id", flat=True)
    )


def loosening_request(
    *,
    org: Organization,
    actor: Membership,
    summary: dict[str, Any],
    stepped_up: bool,
    request: HttpRequest | None,
    what: str,
) -> tuple[bool, ApprovalRequest]:
    """An `orgs.policy_change` request for a loosening: with two or more owners it waits for
    another owner's approval; a sole owner (after a fresh step-up) gets it approved now but
    carried out only after LOOSENING_DELAY, and every owner is emailed and may cancel it.
    Returns (delayed, request). `what` names the thing loosened in the owners' notification."""
    owners = owner_user_ids(org)
    if len(owners) < 2 and not stepped_up:
        raise PermissionDenied(STEP_UP_FOR_LOOSENING)
    approval = approval_request_create(
        org=org, kind=KIND, requester=actor, summary=summary, request=request
    )
    if len(owners) >= 2:
        return False, approval
    # A sole owner's loosening: no one else can approve it, so time stands in for the second
    # pair of eyes. It is approved now and runs after the delay unless an owner cancels it.
    approval.required_approvals = 0
    approval.status = ApprovalRequest.Status.APPROVED
    approval.not_before = timezone.now() + LOOSENING_DELAY
    approval.expires_at = approval.not_before + timedelta(days=7)
    approval.save()
    notify(
        org=org,
        user_ids=owners,
        kind="approvals.delayed",
        title=f"A loosening of {what} applies in 24 hours",
        body="Open the request to read the change; any owner may cancel it before then.",
        link=approval_link(approval),
    )
    return True, approval


def _is_setting(approval: ApprovalRequest) -> bool:
    """A loosening of an organization setting (apps.approvals.setting_changes), which shares
    this kind's rules, rather than of an approval policy."""
    return "org_setting" in approval.summary


def handler(approval: ApprovalRequest) -> None:
    if _is_setting(approval):
        from apps.approvals import setting_changes

        setting_changes.handler(approval)
        return
    kind = approval.summary["policy_kind"]
    policy = policy_for(org=approval.org, kind=kind)
    spec = PolicySpec.from_json(approval.summary["to"])
    # The members may have changed since it was proposed: still refuse what they cannot meet.
    _validate(approval.org, spec)
    _apply(policy, spec)


def fingerprint(approval: ApprovalRequest) -> str:
    if _is_setting(approval):
        from apps.approvals import setting_changes

        return setting_changes.fingerprint(approval)
    return _policy_fingerprint(approval.org_id, approval.summary["policy_kind"])


def _spec_text(data: dict[str, Any]) -> str:
    tiers = "; ".join(
        f"from {t['min_value']} {data['currency']}: {t['approvals']} of {', '.join(t['roles'])}"
        + (" (an owner among them)" if t["owner_required"] else "")
        for t in data["tiers"]
    )
    caps = ", ".join(f"{k} {v}" for k, v in data["velocity_caps"].items()) or "none"
    return f"{tiers}; expiry {data['expiry_hours']} h; 24 h caps: {caps}"


def describe(approval: ApprovalRequest) -> str:
    """What an approver reads: the policy (or setting) as it is, and as it would be."""
    if _is_setting(approval):
        from apps.approvals import setting_changes

        return setting_changes.describe(approval)
    summary = approval.summary
    return (
        f"Change the {summary['policy_kind']} approval policy from [{_spec_text(summary['from'])}]"
        f" to [{_spec_text(summary['to'])}]"
    )


def register() -> None:
    approval_kind_register(
        KIND,
        handler,
        describe,
        label="Policy change",
        fingerprint=fingerprint,
        # A second owner; only owners approve. (A sole owner's loosening waits instead.)
        default_tiers=(TierSpec(Decimal(0), 1, (Role.OWNER,), owner_required=True),),
        editable=False,
    )
