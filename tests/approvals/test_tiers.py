"""Tier selection over any amount, and policies that the members could not satisfy."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.approvals.policies import MemberRole, tier_for_value, tier_problems
from apps.approvals.registry import TierSpec
from apps.orgs.permissions import Role

amounts = st.decimals(min_value=0, max_value=Decimal("1e12"), places=8, allow_nan=False)
tier_sets = st.lists(amounts, min_size=0, max_size=5, unique=True).map(
    lambda extra: [
        TierSpec(Decimal(0), 1, (Role.OWNER,)),
        *(TierSpec(t, i + 2, (Role.OWNER,)) for i, t in enumerate(sorted(set(extra) - {0}))),
    ]
)


@given(tiers=tier_sets, value=amounts)
def test_the_tier_is_the_highest_threshold_at_or_below_the_value(tiers, value) -> None:
    chosen = tier_for_value(tiers, value)

    assert chosen.min_value <= value
    assert not [t for t in tiers if chosen.min_value < t.min_value <= value]


@given(tiers=tier_sets, low=amounts, high=amounts)
def test_a_larger_value_never_needs_fewer_approvals(tiers, low, high) -> None:
    low, high = sorted((low, high))

    assert tier_for_value(tiers, low).approvals <= tier_for_value(tiers, high).approvals


@given(tiers=tier_sets)
def test_a_request_without_a_value_takes_the_lowest_tier(tiers) -> None:
    assert tier_for_value(tiers, None).min_value == 0


def members(*roles: str) -> list[MemberRole]:
    return [MemberRole(i, role) for i, role in enumerate(roles)]


def test_two_approvals_from_a_role_only_one_member_holds_are_unsatisfiable() -> None:
    tiers = [TierSpec(Decimal(0), 2, (Role.APPROVER,))]

    [problem] = tier_problems(
        tiers=tiers, currency="USD", members=members(Role.OWNER, Role.APPROVER)
    )

    assert problem == (
        "Tier from 0 USD needs 2 approval(s) by Approver, but only 1 current member(s) hold "
        "those roles."
    )
    assert not tier_problems(
        tiers=tiers, currency="USD", members=members(Role.APPROVER, Role.APPROVER)
    )


def test_owner_required_without_owners_among_the_approvers_is_unsatisfiable() -> None:
    tiers = [TierSpec(Decimal(0), 1, (Role.APPROVER,), owner_required=True)]

    [problem] = tier_problems(tiers=tiers, currency="USD", members=members(Role.OWNER))

    assert "requires an owner, but owners cannot approve under it" in problem


@pytest.mark.parametrize(
    ("roles", "ok"),
    [((Role.OWNER, Role.APPROVER), True), ((Role.APPROVER, Role.APPROVER), False)],
)
def test_owner_required_needs_an_owner_member(roles, ok) -> None:
    tiers = [TierSpec(Decimal(0), 2, (Role.OWNER, Role.APPROVER), owner_required=True)]

    assert (not tier_problems(tiers=tiers, currency="USD", members=members(*roles))) is ok
