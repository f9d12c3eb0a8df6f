"""Main navigation, filtered by the member's role. Apps add their entries here."""

from __future__ import annotations

from dataclasses import dataclass

from apps.orgs.permissions import Capability


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str  # reversed with the organization slug as `org`
    capability: Capability


NAVIGATION: list[NavItem] = [
    NavItem("Overview", "orgs:dashboard", Capability.VIEW),
    NavItem("Markets", "market:overview", Capability.VIEW),
    NavItem("Desk", "trading:desk", Capability.VIEW),
    NavItem("Blotter", "trading:blotter-open", Capability.VIEW),
    NavItem("Treasury", "funding:home", Capability.VIEW),
    NavItem("Staking", "staking:overview", Capability.VIEW),
    NavItem("Workflows", "schedules:workflow-list", Capability.VIEW),
    NavItem("Approvals", "approvals:inbox", Capability.VIEW),
    NavItem("API keys", "vault:credential-list", Capability.VIEW),
    NavItem("Members", "orgs:member-list", Capability.MANAGE_MEMBERS),
    NavItem("Members' keys", "vault:oversight", Capability.OVERSEE_KEYS),
    NavItem("Permissions", "orgs:permission-table", Capability.MANAGE_MEMBERS),
    NavItem("Operations", "exchange:operation-list", Capability.MANAGE_OPERATIONS),
    NavItem("Audit trail", "audit:record-list", Capability.VIEW),
    NavItem("Settings", "orgs:settings", Capability.MANAGE_POLICIES),
]
