"""Background jobs of the audit app."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings

from apps.audit.anchors import audit_anchors_publish
from apps.audit.services import audit_chains_check

logger = logging.getLogger(__name__)


# Running the check twice only appends a second outcome record, so a redelivered task is
# harmless: it may be acknowledged late (see the rule in kraken_portal/celery.py).
@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def audit_verify_task() -> dict[str, Any]:
    """Recompute every audit chain (nightly, from beat) and record the outcome."""
    return audit_chains_check()


# A second run the same day finds the day's files and leaves them: harmless to redeliver.
@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def audit_anchors_publish_task() -> dict[str, Any]:
    """Publish every chain's head to AUDIT_ANCHOR_DIR (daily, from beat)."""
    if not settings.AUDIT_ANCHOR_DIR:
        logger.warning("AUDIT_ANCHOR_DIR is not set: audit chain heads are not published.")
        return {"written": 0, "already_there": 0}
    publication = audit_anchors_publish(directory=Path(settings.AUDIT_ANCHOR_DIR))
    return {"written": len(publication.written), "already_there": len(publication.already_there)}
