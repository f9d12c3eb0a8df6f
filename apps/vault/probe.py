"""The vault's side of the key permission check: claiming a pending check and recording what
it found, audited, in one transaction.

Asking Kraken is exchange's (apps.exchange.key_check: GetApiKeyInfo, probing where it is
unavailable): only apps/exchange calls Kraken's private methods. The vault asks for a check
through its hook (apps.vault.hooks.key_check_enqueue) and keeps the result here: the key's
permissions, its probe state, and — for a key that can move or commit funds beyond its use — the
refusal (secret destroyed) unless the organization allows over-privileged keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.trail import audit_record
from apps.vault.models import Credential
from apps.vault.policy import assess, overprivilege_reason
from apps.vault.services import _WIPED


@dataclass(frozen=True)
class ProbeFindings:
    """What a check found: {permission: granted, or None when undetermined}; a short error that
    never carries a secret; `fatal` when the key could not be checked at all (bad key, the
    vault could not open it), so its permissions are left as they were."""

    found: dict[str, bool | None] = field(default_factory=dict)
    error: str = ""
    fatal: bool = False


def credential_probe_claim(*, credential_id: int) -> bool:
    """Claim a pending check (conditional UPDATE): False when another worker has it, or the key
    is no longer active, so a redelivered message does nothing."""
    claimed = Credential.objects.filter(
        pk=credential_id,
        status=Credential.Status.ACTIVE,
        probe_status=Credential.ProbeStatus.PENDING,
    ).update(probe_status=Credential.ProbeStatus.RUNNING, probe_started_at=timezone.now())
    return bool(claimed)


@transaction.atomic
def credential_probe_record(
    *, credential_id: int, findings: ProbeFindings
) -> dict[str, Any] | None:
    """Record a claimed check's findings on the key and in the audit trail; refuse a key that
    can do dangerously more than its use. Returns the audit summary (None if not claimed)."""
    found, error, fatal = findings.found, findings.error, findings.fatal
    credential = (
        Credential.objects.select_for_update(of=("self",))
        .select_related("org")
        .filter(pk=credential_id)
        .first()
    )
    if credential is None or credential.probe_status != Credential.ProbeStatus.RUNNING:
        return None
    now = timezone.now()
    credential.probe_status = (
        Credential.ProbeStatus.FAILED if fatal else Credential.ProbeStatus.DONE
    )
    credential.last_error = error
    if not fatal:
        credential.permissions = found
        credential.permissions_checked_at = now
    update_fields = [
        "probe_status",
        "last_error",
        "permissions",
        "permissions_checked_at",
        "status_reason",
        "updated_at",
    ]
    assessment = assess(use=credential.use, permissions=credential.permissions)
    refused = False
    allowed_by_org = credential.org.allow_overprivileged_keys
    if not fatal and assessment.dangerous_excess and credential.is_active:
        # A key that can move or commit funds beyond its use is refused (its secret destroyed,
        # as on revocation) unless the organization allows over-privileged keys; either way
        # the reason is recorded on the key and in the audit trail.
        credential.status_reason = overprivilege_reason(
            use=credential.use, assessment=assessment, allowed_by_org=allowed_by_org
        )
        if not allowed_by_org:
            refused = True
            credential.status = Credential.Status.REFUSED
            credential.revoked_at = now
            for field, value in _WIPED.items():
                setattr(credential, field, value)
            update_fields += ["status", "revoked_at", *_WIPED]
    elif not fatal and credential.is_active:
        credential.status_reason = ""
    credential.save(update_fields=update_fields)
    summary: dict[str, Any] = {
        "outcome": "failed" if fatal else "checked",
        "granted": [name for name, value in found.items() if value is True],
        "denied": [name for name, value in found.items() if value is False],
        "undetermined": [name for name, value in found.items() if value is None],
        "excess": list(assessment.excess),
        "missing": list(assessment.missing),
        "error": error,
    }
    if assessment.dangerous_excess and not fatal:
        summary["overprivileged"] = "refused" if refused else "allowed by the organization"
        summary["reason"] = credential.status_reason
    audit_record(
        action="vault.credential.probe",
        org=credential.org,
        target=credential,
        detail=summary,
    )
    if refused:
        audit_record(
            action="vault.credential.refuse",
            org=credential.org,
            target=credential,
            detail={"reason": credential.status_reason, "excess": list(assessment.excess)},
        )
    return summary
