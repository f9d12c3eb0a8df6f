"""The one permission table: which role may do what.

Every view (through `org_view`), socket consumer and task asks `role_can`; the admins' permission
page renders this table. Adding a capability or a role means editing only this module.
"""

from __future__ import annotations

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    TRADER = "trader", "Trader"
    TREASURER = "treasurer", "Treasurer"
    APPROVER = "approver", "Approver"
    VIEWER = "viewer", "Viewer"


class Capability(StrEnum):
    VIEW = "view"
    TRADE = "trade"
    REQUEST_FUNDING = "request_funding"
    APPROVE_FUNDING = "approve_funding"
    MANAGE_KEYS = "manage_keys"
    OVERSEE_KEYS = "oversee_keys"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_POLICIES = "manage_policies"
    MANAGE_OPERATIONS = "manage_operations"


CAPABILITY_LABELS: dict[Capability, str] = {
    Capability.VIEW: "View balances, orders, markets and the audit trail",
    Capability.TRADE: "Place, amend and cancel orders",
    Capability.REQUEST_FUNDING: "Request withdrawals and transfers",
    Capability.APPROVE_FUNDING: "Approve colleagues' withdrawals and transfers",
    Capability.MANAGE_KEYS: "Store and manage one's own Kraken API keys",
    Capability.OVERSEE_KEYS: "See every member's API keys (masked) and revoke any of them",
    Capability.MANAGE_MEMBERS: "Invite, remove and change the roles of members",
    Capability.MANAGE_POLICIES: "Set organization policies (2FA, risk limits, approvals)",
    Capability.MANAGE_OPERATIONS: "See every exchange operation and reconcile unsettled ones",
}

_ALL = frozenset(Capability)

PERMISSIONS: dict[str, frozenset[Capability]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: frozenset(
        {
            Capability.VIEW,
            Capability.MANAGE_MEMBERS,
            Capability.MANAGE_POLICIES,
            Capability.MANAGE_KEYS,
            Capability.OVERSEE_KEYS,
            Capability.MANAGE_OPERATIONS,
        }
    ),
    Role.TRADER: frozenset({Capability.VIEW, Capability.TRADE, Capability.MANAGE_KEYS}),
    Role.TREASURER: frozenset(
        {Capability.VIEW, Capability.REQUEST_FUNDING, Capability.MANAGE_KEYS}
    ),
    Role.APPROVER: frozenset({Capability.VIEW, Capability.APPROVE_FUNDING}),
    Role.VIEWER: frozenset({Capability.VIEW}),
}


def role_can(role: str, capability: Capability) -> bool:
    return capability in PERMISSIONS.get(role, frozenset())


def permission_matrix() -> list[tuple[Capability, str, list[bool]]]:
    """Rows of (capability, label, allowed per role in Role order) for the admins' page."""
    return [
        (cap, CAPABILITY_LABELS[cap], [role_can(role, cap) for role in Role.values])
        for cap in Capability
    ]
