"""Background jobs of the audit app."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.audit.services import audit_chains_check


# Running the check twice only appends a second outcome record, so a redelivered task is
# harmless: it may be acknowledged late (see the rule in kraken_portal/celery.py).
@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def audit_verify_task() -> dict[str, Any]:
    """Recompute every audit chain (nightly, from beat) and record the outcome."""
    return audit_chains_check()
