"""Vault tasks. They receive credential ids, never secrets, and return no secret either."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.vault.probe import credential_probe


@shared_task(acks_late=True, ignore_result=True)
def credential_probe_task(credential_id: int) -> dict[str, Any] | None:
    """Probe a stored key's Kraken permissions. Idempotent: the service claims the probe with
    a conditional update, so a redelivered message does nothing."""
    return credential_probe(credential_id=credential_id)
