"""The permission probe: which of Kraken's API-key permissions a stored key really has.

A task (apps.vault.tasks) claims a pending probe, makes one harmless call per permission with
the decrypted key, and records what it found, audited, in one transaction. Only the vault's
own services open the key (credential_key_for_task).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.trail import audit_record
from apps.kraken.client import kraken_private
from apps.kraken.errors import (
    AuthenticationError,
    KrakenError,
    NonceError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnknownOutcomeError,
)
from apps.vault import crypto
from apps.vault.models import Credential, Permission
from apps.vault.policy import assess, overprivilege_reason
from apps.vault.services import (
    _WIPED,
    CredentialUnavailable,
    KeyPurpose,
    credential_key_for_task,
)

logger = logging.getLogger(__name__)

# GetApiKeyInfo (Kraken's change log, 11 March 2026) needs no permission and lists the calling
# key's permissions, so one read answers for every switch. Where it is unavailable (an older
# deployment answers "EGeneral:Unknown method") the key is probed, one harmless call per switch.
KEY_INFO_METHOD = "GetApiKeyInfo"

# The fallback probe. "EGeneral:Permission denied" means not granted; any other answer means the
# call got past Kraken's permission check. AddOrder carries validate=true, which Kraken treats as
# validate-only (FACTS §6.4: in a form body any `validate` value means validate-only, and JSON
# honours the boolean), and the order is a post-only bid far below any market, so even a lost
# flag could not buy anything. DepositMethods and WithdrawAddresses need Query Funds as well as
# their own switch (Kraken's spec), so without Query Funds they say nothing (see below). Earn has
# no read that needs it alone (Earn/Allocations needs Query Funds, the status calls either), and
# its only discriminating calls allocate, so the fallback leaves Earn undetermined rather than
# guess.
PROBE_CALLS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (Permission.QUERY_FUNDS, "Balance", {}),
    (Permission.QUERY_OPEN, "OpenOrders", {}),
    (Permission.QUERY_CLOSED, "ClosedOrders", {}),
    (Permission.QUERY_LEDGER, "Ledgers", {}),
    (
        Permission.TRADE,
        "AddOrder",
        {
            "pair": "XBTUSD",
            "type": "buy",
            "ordertype": "limit",
            "price": "1000",
            "volume": "0.001",
            "oflags": "post",
            "validate": True,
        },
    ),
    (Permission.DEPOSIT, "DepositMethods", {"asset": "XBT"}),
    (Permission.WITHDRAW, "WithdrawAddresses", {}),
    (Permission.WEBSOCKET, "GetWebSocketsToken", {}),
)
# Probe calls that also need Query Funds: a denial means nothing when Query Funds is denied.
NEEDS_QUERY_FUNDS = frozenset({Permission.DEPOSIT, Permission.WITHDRAW})
PROBE_UNREACHABLE = "Could not reach Kraken ({kind}); try again later."


def _short_error(error: BaseException) -> str:
    """A short description of a failure that can never carry a secret.

    Kraken's own error strings (`EAPI:Invalid key`) are safe; for anything else only the
    exception's class name is kept, since its text might quote a request.
    """
    if isinstance(error, KrakenError):
        return str(error)[:200]
    if isinstance(error, crypto.VaultError | CredentialUnavailable):
        return str(error)[:200]
    return PROBE_UNREACHABLE.format(kind=type(error).__name__)[:200]


def credential_probe(*, credential_id: int) -> dict[str, Any] | None:
    """Probe a claimed credential's permissions and record them. Returns the audit summary,
    or None when another worker already claimed the probe (or the key is gone)."""
    now = timezone.now()
    claimed = Credential.objects.filter(
        pk=credential_id,
        status=Credential.Status.ACTIVE,
        probe_status=Credential.ProbeStatus.PENDING,
    ).update(probe_status=Credential.ProbeStatus.RUNNING, probe_started_at=now)
    if not claimed:
        return None
    found: dict[str, bool | None] = {}
    error = ""
    fatal = False
    try:
        key = credential_key_for_task(credential_id=credential_id, purpose=KeyPurpose.PROBE)
    except (crypto.VaultError, CredentialUnavailable) as exc:
        error, fatal = _short_error(exc), True
    else:
        try:
            found = _permissions_from_key_info(kraken_private(key, KEY_INFO_METHOD, {}))
        except AuthenticationError as exc:
            error, fatal = _short_error(exc), True
        except KrakenError as exc:
            logger.info(
                "vault: %s unavailable for credential %s: %s",
                KEY_INFO_METHOD,
                credential_id,
                exc.code,
            )
            found, error, fatal = _probe_each(key, credential_id=credential_id)
        except Exception as exc:  # Network trouble: fall back to the per-permission probe.
            logger.warning(
                "vault: %s for credential %s failed: %s",
                KEY_INFO_METHOD,
                credential_id,
                type(exc).__name__,
            )
            found, error, fatal = _probe_each(key, credential_id=credential_id)
    return _probe_record(credential_id=credential_id, found=found, error=error, fatal=fatal)


def _permissions_from_key_info(info: Any) -> dict[str, bool | None]:
    """Kraken's list of the key's permissions, as {switch: granted} for every switch we know."""
    granted = {str(name) for name in (info or {}).get("permissions", [])}
    return {permission: permission in granted for permission in Permission.values}


def _probe_each(key: Any, *, credential_id: int) -> tuple[dict[str, bool | None], str, bool]:
    """The fallback: one harmless call per permission. Returns (found, error, fatal)."""
    found: dict[str, bool | None] = {}
    error = ""
    for permission, method, params in PROBE_CALLS:
        try:
            kraken_private(key, method, dict(params))
        except PermissionDeniedError:
            found[permission] = False
        except AuthenticationError as exc:
            return found, _short_error(exc), True
        except (
            NonceError,
            RateLimitError,
            ServiceUnavailableError,
            UnknownOutcomeError,
        ) as exc:
            found[permission] = None  # Says nothing about the permission; try again later.
            error = _short_error(exc)
        except KrakenError as exc:
            # Kraken looked at the arguments (order minimum, funds, ...), so the call got
            # past its permission check, unless it did not know the method at all.
            unknown_method = exc.code.startswith("EGeneral:Unknown method")
            found[permission] = None if unknown_method else True
            logger.info("vault: probe %s on credential %s: %s", method, credential_id, exc.code)
        except Exception as exc:  # Network trouble: this permission stays undetermined.
            found[permission] = None
            error = _short_error(exc)
            logger.warning(
                "vault: probe %s on credential %s failed: %s",
                method,
                credential_id,
                type(exc).__name__,
            )
        else:
            found[permission] = True
    if found.get(Permission.QUERY_FUNDS) is False:
        for permission in NEEDS_QUERY_FUNDS:
            if found.get(permission) is False:
                found[permission] = None
    found.setdefault(Permission.EARN, None)
    return found, error, False


@transaction.atomic
def _probe_record(
    *, credential_id: int, found: dict[str, bool | None], error: str, fatal: bool
) -> dict[str, Any] | None:
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
