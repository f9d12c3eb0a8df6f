"""Policies: created lazily with the kind's defaults, read as tiers, checked against the members
who could satisfy them. Changing a policy is itself a request (apps.approvals.policy_changes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction

from apps.approvals.models import Policy, PolicyTier
from apps.approvals.registry import TierSpec, approval_kind_get
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role

TIER_UNSATISFIABLE = (
    "Tier from {min_value} {currency} needs {approvals} approval(s) by {roles}, but only "
    "{eligible} current member(s) hold those roles."
)
TIER_OWNER_UNSATISFIABLE = (
    "Tier from {min_value} {currency} requires an owner, but owners cannot approve under it "
    "(add the owner role to its approvers)."
)
REMOVAL_BREAKS = "Removing {email} would leave the {kind} policy unsatisfiable: {problem}"


def policy_for(*, org: Organization, kind: str) -> Policy:
    """The organization's policy for `kind`, created from the kind's defaults on first use."""
    policy = Policy.objects.filter(org=org, kind=kind).first()
    if policy is not None:
        return policy
    registered = approval_kind_get(kind)
    try:
        with transaction.atomic():
            policy = Policy.objects.create(
                org=org, kind=kind, expiry_hours=registered.default_expiry_hours
            )
            policy_tiers_replace(policy, registered.default_tiers)
    except IntegrityError:
        # Created meanwhile by a concurrent first use: that one stands.
        return Policy.objects.get(org=org, kind=kind)
    return policy


def policy_tiers_replace(policy: Policy, tiers: Iterable[TierSpec]) -> None:
    """Write `tiers` as the policy's only tiers (the caller holds the transaction)."""
    policy.tiers.all().delete()
    PolicyTier.objects.bulk_create(
        PolicyTier(
            policy=policy,
            min_value=tier.min_value,
            approvals=tier.approvals,
            roles=list(tier.roles),
            owner_required=tier.owner_required,
        )
        for tier in tiers
    )


def policy_tiers(policy: Policy) -> list[TierSpec]:
    return [
        TierSpec(t.min_value, t.approvals, tuple(t.roles), t.owner_required)
        for t in policy.tiers.all()
    ]


def tier_for_value(tiers: Sequence[TierSpec], value: Decimal | None) -> TierSpec:
    """The tier with the highest threshold at or below `value` (the lowest tier when the
    request has no value, or a value below every threshold)."""
    ordered = sorted(tiers, key=lambda tier: tier.min_value)
    chosen = ordered[0]
    if value is None:
        return chosen
    for tier in ordered:
        if tier.min_value <= value:
            chosen = tier
    return chosen


@dataclass(frozen=True)
class MemberRole:
    membership_id: int
    role: str


def tier_problems(
    *, tiers: Iterable[TierSpec], currency: str, members: Iterable[MemberRole]
) -> list[str]:
    """Why `members` could not satisfy `tiers` (empty when they can)."""
    members = list(members)
    problems = []
    for tier in tiers:
        if tier.owner_required and Role.OWNER not in tier.roles:
            problems.append(
                TIER_OWNER_UNSATISFIABLE.format(min_value=tier.min_value, currency=currency)
            )
            continue
        eligible = [m for m in members if m.role in tier.roles]
        owners = [m for m in eligible if m.role == Role.OWNER]
        if len(eligible) < tier.approvals or (tier.owner_required and not owners):
            problems.append(
                TIER_UNSATISFIABLE.format(
                    min_value=tier.min_value,
                    currency=currency,
                    approvals=tier.approvals,
                    roles=", ".join(Role(r).label for r in tier.roles),
                    eligible=len(eligible),
                )
            )
    return problems


def org_member_roles(*, org: Organization) -> list[MemberRole]:
    return [
        MemberRole(pk, role)
        for pk, role in Membership.objects.filter(org=org).values_list("pk", "role")
    ]


def removal_warnings(org: Organization) -> dict[int, list[str]]:
    """For each member, the policies their removal would make unsatisfiable (a warning the
    members page shows before removing). Policies already unsatisfiable are not blamed on
    anyone. Two queries whatever the number of members."""
    members = org_member_roles(org=org)
    policies = list(Policy.objects.filter(org=org).prefetch_related("tiers"))
    emails = dict(Membership.objects.filter(org=org).values_list("pk", "user__email"))
    warnings: dict[int, list[str]] = {}
    for policy in policies:
        tiers = policy_tiers(policy)
        if tier_problems(tiers=tiers, currency=policy.currency, members=members):
            continue
        for member in members:
            others = [m for m in members if m.membership_id != member.membership_id]
            problems = tier_problems(tiers=tiers, currency=policy.currency, members=others)
            if problems:
                warnings.setdefault(member.membership_id, []).append(
                    REMOVAL_BREAKS.format(
                        email=emails.get(member.membership_id, ""),
                        kind=policy.kind,
                        problem=problems[0],
                    )
                )
    return warnings
