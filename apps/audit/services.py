"""The audit service: one function writes every audit record, inside the caller's transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.models import AuditChain, AuditRecord

# Detail keys that could carry a secret are refused outright: an audit row is read by many and
# exported as CSV, so a secret must never get there, even by accident.
FORBIDDEN_DETAIL_WORDS = ("secret", "password", "otp", "token", "private", "passphrase")
GLOBAL_CHAIN = "global"


def _hmac_key() -> bytes:
    key = settings.AUDIT_HMAC_KEY or ("audit:" + settings.SECRET_KEY)
    return hashlib.sha256(key.encode()).digest()


def chain_key_for(org_id: int | None) -> str:
    return f"org:{org_id}" if org_id else GLOBAL_CHAIN


def _check_detail(detail: Any, path: str = "") -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            lowered = str(key).lower()
            if any(word in lowered for word in FORBIDDEN_DETAIL_WORDS):
                raise ValueError(f"Audit detail key {path}{key!r} could hold a secret.")
            _check_detail(value, f"{path}{key}.")
    elif isinstance(detail, list):
        for item in detail:
            _check_detail(item, path)


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


def _client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    actor: Any = None,
    org: Any = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip: str | None = None,
    user_agent: str = "",
) -> AuditRecord:
    """Append one record to the organization's chain. Call it inside the change's transaction.

    `actor` is a User or a Membership (its user is taken); `org` an Organization or None.
    """
    detail = detail or {}
    _check_detail(detail)
    user = getattr(actor, "user", actor)
    if org is None and actor is not None and hasattr(actor, "org"):
        org = actor.org
    org_id = getattr(org, "pk", None)
    if request is not None:
        ip = ip or _client_ip(request)
        user_agent = user_agent or request.META.get("HTTP_USER_AGENT", "")
    key = chain_key_for(org_id)
    with transaction.atomic():
        chain, _ = AuditChain.objects.get_or_create(key=key)
        chain = AuditChain.objects.select_for_update().get(pk=chain.pk)
        record = AuditRecord(
            chain=key,
            seq=chain.last_seq + 1,
            created_at=timezone.now(),
            org_id=org_id,
            actor_id=getattr(user, "pk", None),
            actor_email=getattr(user, "email", "") or "",
            action=action,
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            target_repr=str(target)[:200] if target is not None else "",
            ip=ip,
            user_agent=(user_agent or "")[:300],
            detail=json.loads(json.dumps(detail, default=str)),
            prev_hash=chain.last_hash,
        )
        record.hash = record_hash(record)
        record.save(force_insert=True)
        chain.last_seq = record.seq
        chain.last_hash = record.hash
        chain.save(update_fields=["last_seq", "last_hash"])
    return record
