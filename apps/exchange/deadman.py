"""Kraken's dead man's switch (CancelAllOrdersAfter) for the apps above: apps/exchange is the
only caller of Kraken's private methods.

It is not an exchange operation: the call is idempotent (each one sets the account's timer to
`timeout` seconds from now; 0 disarms), so a lost answer is simply sent again by the next
refresh. It uses the account's designated trading key opened for the kill switch's purpose,
which allows only cancels and the reads that find orders, and serves even a key left
cancel-only.
"""

from __future__ import annotations

from typing import Any

from apps.kraken.client import kraken_private
from apps.vault.models import Credential
from apps.vault.services import KeyPurpose, credential_key_for_task

MAX_TIMEOUT = 86399  # Kraken: below a day


def cancel_all_orders_after(*, credential: Credential, timeout: int) -> dict[str, Any]:
    """Set the account's timer: Kraken cancels every open order on it `timeout` seconds from
    now unless called again (0 disarms). Returns Kraken's `currentTime`/`triggerTime`. Raises
    KrakenError, CredentialUnavailable or ValueError (timeout out of range)."""
    if not 0 <= timeout <= MAX_TIMEOUT:
        raise ValueError("timeout must be between 0 and 86399 seconds")
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.KILL_SWITCH)
    result = kraken_private(key, "CancelAllOrdersAfter", {"timeout": timeout})
    return result if isinstance(result, dict) else {}
