"""The key permission check: which of Kraken's API-key permissions a stored key really has.

apps/exchange is the only caller of Kraken's private methods, so the check that asks Kraken lives
here; the vault keeps what it finds (apps.vault.probe: claiming a pending check and recording the
result, audited). The vault asks for a check through its hook (apps.vault.hooks), which
ExchangeConfig.ready() fills with `credential_check_task`, so the vault imports nothing of
exchange.

One read answers for every switch: GetApiKeyInfo (Kraken's change log, 11 March 2026) needs no
permission and lists the calling key's permissions. Where it is unavailable (an older deployment
answers "EGeneral:Unknown method", or the call fails) the key is probed, one harmless call per
permission.
"""

from __future__ import annotations

import logging
from typing import Any

from apps.kraken.client import KrakenKey, kraken_private
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
from apps.vault.models import Permission
from apps.vault.probe import ProbeFindings, credential_probe_claim, credential_probe_record
from apps.vault.services import CredentialUnavailable, KeyPurpose, credential_key_for_task

logger = logging.getLogger(__name__)

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
    if isinstance(error, KrakenError | crypto.VaultError | CredentialUnavailable):
        return str(error)[:200]
    return PROBE_UNREACHABLE.format(kind=type(error).__name__)[:200]


def credential_check(*, credential_id: int) -> dict[str, Any] | None:
    """Check a stored key's permissions with Kraken and have the vault record them. Returns the
    audit summary, or None when another worker already claimed the check (or the key is gone)."""
    if not credential_probe_claim(credential_id=credential_id):
        return None
    try:
        key = credential_key_for_task(credential_id=credential_id, purpose=KeyPurpose.PROBE)
    except (crypto.VaultError, CredentialUnavailable) as exc:
        findings = ProbeFindings(found={}, error=_short_error(exc), fatal=True)
    else:
        findings = key_permissions_read(key, credential_id=credential_id)
    return credential_probe_record(credential_id=credential_id, findings=findings)


def key_permissions_read(key: KrakenKey, *, credential_id: int) -> ProbeFindings:
    """What Kraken says `key` may do: GetApiKeyInfo, or the per-permission probe where that is
    unavailable. `credential_id` is for logs only."""
    try:
        info = kraken_private(key, KEY_INFO_METHOD, {})
    except AuthenticationError as exc:
        return ProbeFindings(found={}, error=_short_error(exc), fatal=True)
    except KrakenError as exc:
        logger.info(
            "exchange: %s unavailable for credential %s: %s",
            KEY_INFO_METHOD,
            credential_id,
            exc.code,
        )
    except Exception as exc:  # Network trouble: fall back to the per-permission probe.
        logger.warning(
            "exchange: %s for credential %s failed: %s",
            KEY_INFO_METHOD,
            credential_id,
            type(exc).__name__,
        )
    else:
        return ProbeFindings(found=_permissions_from_key_info(info), error="", fatal=False)
    return _probe_each(key, credential_id=credential_id)


def _permissions_from_key_info(info: Any) -> dict[str, bool | None]:
    """Kraken's list of the key's permissions, as {switch: granted} for every switch we know."""
    granted = {str(name) for name in (info or {}).get("permissions", [])}
    return {permission: permission in granted for permission in Permission.values}


def _probe_each(key: KrakenKey, *, credential_id: int) -> ProbeFindings:
    """The fallback: one harmless call per permission."""
    found: dict[str, bool | None] = {}
    error = ""
    for permission, method, params in PROBE_CALLS:
        try:
            kraken_private(key, method, dict(params))
        except PermissionDeniedError:
            found[permission] = False
        except AuthenticationError as exc:
            return ProbeFindings(found=found, error=_short_error(exc), fatal=True)
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
            logger.info("exchange: probe %s on credential %s: %s", method, credential_id, exc.code)
        except Exception as exc:  # Network trouble: this permission stays undetermined.
            found[permission] = None
            error = _short_error(exc)
            logger.warning(
                "exchange: probe %s on credential %s failed: %s",
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
    return ProbeFindings(found=found, error=error, fatal=False)
