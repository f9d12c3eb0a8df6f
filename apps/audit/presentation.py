"""How a record's `detail` reads to a person: labelled fields, not JSON.

A small registry: labels for the keys the apps write (the same key means the same thing in
every action), readable values for the few coded ones, and a title for the security events.
Anything not registered still reads well enough: `recovery_codes_left` becomes "Recovery codes
left", booleans become yes/no, lists are joined. The CSV keeps the raw JSON (a machine reads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EMPTY = "—"

# Key -> label. One place, so "reason" or "excess" reads the same in every action.
DETAIL_LABELS: dict[str, str] = {
    "application_id": "Application",
    "cool_off_minutes": "Locked for (minutes)",
    "denied": "Not granted",
    "email": "Email",
    "error": "Error",
    "excess": "Beyond its use",
    "filters": "Filters",
    "granted": "Granted",
    "id": "Id",
    "locked_out": "Locked out",
    "missing": "Missing for its use",
    "org_id": "Organization",
    "outcome": "Outcome",
    "overprivileged": "Over-privileged",
    "purpose": "During",
    "reason": "Reason",
    "recovery_codes": "Recovery codes issued",
    "recovery_codes_left": "Recovery codes left",
    "region": "Region",
    "role": "Role",
    "second_factor": "Second factor",
    "sessions": "Sessions ended",
    "slug": "Address",
    "suppressed": "Similar events not recorded separately",
    "undetermined": "Could not check",
    "use": "Use",
}

# Key -> {coded value: readable value}.
DETAIL_VALUES: dict[str, dict[str, str]] = {
    "second_factor": {
        "authenticator_app": "authenticator app",
        "recovery_code": "recovery code",
        "none": "none (no 2FA set up)",
    },
    "purpose": {"sign_in": "sign-in", "step_up": "confirmation of a sensitive action"},
}

# The actions, as a reader would name them (the code stays beside the title, for filtering).
ACTION_TITLES: dict[str, str] = {
    "audit.export": "Audit trail exported",
    "invitation.create": "Invitation sent",
    "invitation.resend": "Invitation sent again",
    "invitation.revoke": "Invitation withdrawn",
    "membership.join": "Joined the organization",
    "membership.remove": "Member removed",
    "membership.role_change": "Role changed",
    "onboarding.apply": "Onboarding application received",
    "onboarding.approve": "Onboarding application approved",
    "onboarding.reject": "Onboarding application rejected",
    "organization.create": "Organization created",
    "organization.settings": "Settings changed",
    "user.create": "Account created",
    "vault.credential.create": "API key added",
    "vault.credential.probe": "API key tested",
    "vault.credential.refuse": "API key refused",
    "vault.credential.revoke": "API key revoked",
    "vault.credential.delete": "API key deleted",
    "vault.credential.share": "API key sharing changed",
    "vault.credential.cancel_only": "API key restricted to cancelling",
    "auth.sign_in": "Signed in",
    "auth.sign_in_failed": "Failed sign-in",
    "auth.locked_out": "Sign-in locked after repeated failures",
    "auth.second_factor_failed": "Wrong two-factor code",
    "auth.two_factor_enrolled": "Two-factor authentication turned on",
    "auth.two_factor_disabled": "Two-factor authentication turned off",
    "auth.recovery_code_used": "Recovery code used",
    "auth.recovery_codes_regenerated": "New recovery codes generated",
    "auth.step_up_confirmed": "Sensitive action confirmed with 2FA",
    "auth.password_changed": "Password changed",
    "auth.password_reset_requested": "Password reset requested",
    "auth.password_reset_completed": "Password reset by email",
    "auth.other_sessions_signed_out": "Other sessions signed out",
}


@dataclass(frozen=True)
class DetailField:
    label: str
    value: str


def _label(key: str) -> str:
    return DETAIL_LABELS.get(key) or key.replace("_", " ").strip().capitalize() or key


def _value(key: str, value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return DETAIL_VALUES.get(key, {}).get(value, value)
    if isinstance(value, list):
        return ", ".join(_value(key, item) for item in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{_label(str(k))}: {_value(str(k), v)}" for k, v in value.items())
    return str(value)


def detail_fields(detail: Any) -> list[DetailField]:
    """The detail as (label, value) pairs, in the order the app wrote them."""
    if not isinstance(detail, Mapping):
        return [] if detail in (None, "", []) else [DetailField("Detail", _value("", detail))]
    return [DetailField(_label(str(key)), _value(str(key), value)) for key, value in detail.items()]


def action_title(action: str) -> str:
    """A readable name for the action, or "" when only its code is known."""
    return ACTION_TITLES.get(action, "")
