"""The hash chain itself: which chain a record belongs to and the HMAC that seals it.

Kept apart from services (writes) and selectors (reads) because both need it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings

from apps.audit.models import AuditRecord

GLOBAL_CHAIN = "global"


def _hmac_key() -> bytes:
    key = settings.AUDIT_HMAC_KEY or ("audit:" + settings.SECRET_KEY)
    return hashlib.sha256(key.encode()).digest()


def chain_key_for(org_id: int | None) -> str:
    return f"org:{org_id}" if org_id else GLOBAL_CHAIN


def record_content(record: AuditRecord) -> dict[str, Any]:
    """The fields the HMAC covers, in a canonical form."""
    return {
        "chain": record.chain,
        "seq": record.seq,
        "created_at": record.created_at.isoformat(),
        "org_id": record.org_id,
        "actor_id": record.actor_id,
        "actor_email": record.actor_email,
        "action": record.action,
        "target_type": record.target_type,
        "target_id": record.target_id,
        "target_repr": record.target_repr,
        "ip": record.ip,
        "user_agent": record.user_agent,
        "detail": record.detail,
        "prev_hash": record.prev_hash,
    }


def record_hash(record: AuditRecord) -> str:
    payload = json.dumps(record_content(record), sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(_hmac_key(), payload.encode(), hashlib.sha256).hexdigest()
