"""Hooks orgs offers to the layers above it, which register them in their AppConfig.ready().

- The role-grant gate: an admin granting or inviting someone to a powerful role may have to
  wait for an owner's approval. Approvals (a higher layer) decides and writes its request in
  the grant's transaction; orgs only asks, so no arrow runs up. The plain functions
  (`membership_change_role`, `invitation_issue`) stay ungated: they are what the approved
  request calls.
- Removal warnings: what removing each member would break (a policy no one could satisfy),
  shown on the members page before removing.
- The settings loosening gate: changing the reporting currency, allowing over-privileged keys
  and turning the 2FA requirement off need two owners, or a sole owner's step-up and a 24-hour
  delay (approvals' `orgs.policy_change`). orgs asks; the approved request calls
  `organization_setting_apply`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from django.http import HttpRequest

if TYPE_CHECKING:
    from apps.orgs.models import Membership, Organization


class RoleGrantGate(Protocol):
    def __call__(
        self,
        *,
        actor: Membership,
        role: str,
        member: Membership | None,
        email: str | None,
        request: HttpRequest | None,
    ) -> str | None:
        """None to let the grant happen now; otherwise the grant is held (the gate has
        recorded what it waits for) and the message says so."""
        ...


class SettingsLooseningGate(Protocol):
    def __call__(
        self,
        *,
        org: Organization,
        actor: Membership,
        field: str,
        old: Any,
        new: Any,
        stepped_up: bool,
        request: HttpRequest | None,
    ) -> str | None:
        """None to let the change happen now; otherwise it is held (the gate has recorded the
        request it waits on) and the message says what happens next. Raises ValidationError or
        PermissionDenied to refuse it."""
        ...


class RemovalWarnings(Protocol):
    def __call__(self, org: Organization) -> dict[int, list[str]]: ...


_gate: RoleGrantGate | None = None
_settings_gate: SettingsLooseningGate | None = None
_removal_warnings: list[RemovalWarnings] = []


def role_grant_gate_register(gate: RoleGrantGate) -> None:
    global _gate
    _gate = gate


def role_grant_held(
    *,
    actor: Membership,
    role: str,
    member: Membership | None,
    email: str | None,
    request: HttpRequest | None,
) -> str | None:
    if _gate is None:
        return None
    return _gate(actor=actor, role=role, member=member, email=email, request=request)


def settings_loosening_gate_register(gate: SettingsLooseningGate) -> None:
    global _settings_gate
    _settings_gate = gate


def settings_loosening_held(
    *,
    org: Organization,
    actor: Membership,
    field: str,
    old: Any,
    new: Any,
    stepped_up: bool,
    request: HttpRequest | None,
) -> str | None:
    if _settings_gate is None:
        return None
    return _settings_gate(
        org=org,
        actor=actor,
        field=field,
        old=old,
        new=new,
        stepped_up=stepped_up,
        request=request,
    )


def removal_warnings_register(provider: RemovalWarnings) -> None:
    if provider not in _removal_warnings:
        _removal_warnings.append(provider)


def removal_warnings(org: Organization) -> dict[int, list[str]]:
    """Membership id -> warnings, from every registered provider."""
    merged: dict[int, list[str]] = {}
    for provider in _removal_warnings:
        for membership_id, warnings in provider(org).items():
            merged.setdefault(membership_id, []).extend(warnings)
    return merged
