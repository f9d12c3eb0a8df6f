"""The audit service: one function writes every audit record, inside the caller's transaction."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from apps.audit.anchors import audit_anchors_check
from apps.audit.chain import GLOBAL_CHAIN, chain_key_for, record_content, record_hash
from apps.audit.models import AuditChain, AuditRecord
from apps.audit.selectors import audit_chains_verify
from apps.core.clientip import client_ip
from apps.core.trail import Actor

__all__ = [
    "FORBIDDEN_DETAIL_WORDS",
    "GLOBAL_CHAIN",
    "audit_record",
    "chain_key_for",
    "record_content",
    "record_hash",
]

# Detail keys that could carry a secret are refused outright: an audit row is read by many and
# exported as CSV, so a secret must never get there, even by accident.
FORBIDDEN_DETAIL_WORDS = ("secret", "password", "otp", "token", "private", "passphrase")


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


def _normalized_ip(ip: str | None) -> str | None:
    """The address exactly as the database will return it, so the HMAC still matches on reading.

    PostgreSQL's inet type rewrites IPv6 addresses (lower case, zeros compressed); an unparsable
    value is dropped rather than failing the audited action.
    """
    if not ip:
        return None
    try:
        parsed = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    return clean_ipv6_address(str(parsed)) if parsed.version == 6 else str(parsed)


def _client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # The same address axes and the rate limits use (behind the configured proxies).
    return client_ip(request)


def _storable(value: Any) -> Any:
    """`value` with every NUL character replaced by U+FFFD: PostgreSQL's text and jsonb cannot
    hold NUL, and audited details carry what people typed (a refused order's fields), so a NUL
    in a form must be recorded, visibly, not turn the refusal into a database error."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def audit_record(
    *,
    action: str,
    actor: Actor = None,
    org: models.Model | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip: str | None = None,
    user_agent: str = "",
) -> AuditRecord:
    """Append one record to the organization's chain. Call it inside the change's transaction.

    `actor` is a User or a Membership (its user is taken); `org` an Organization or None.
    Other layers call it through the kernel's port, apps.core.trail.audit_record.
    """
    detail = detail or {}
    _check_detail(detail)
    user = getattr(actor, "user", actor)
    if org is None:
        org = getattr(actor, "org", None)
    org_id = getattr(org, "pk", None)
    if request is not None:
        ip = ip or _client_ip(request)
        user_agent = user_agent or request.META.get("HTTP_USER_AGENT", "")
    key = chain_key_for(org_id)
    # No savepoint of our own: if the append fails, the caller's change must not commit either,
    # so there is nothing to roll back to. Three statements per record: lock the head, insert,
    # move the head.
    with transaction.atomic(savepoint=False):
        chain, _ = AuditChain.objects.select_for_update().get_or_create(key=key)
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
            target_repr=_storable(str(target)[:200]) if target is not None else "",
            ip=_normalized_ip(ip),
            user_agent=_storable((user_agent or "")[:300]),
            detail=_storable(json.loads(json.dumps(detail, default=str))),
            prev_hash=chain.last_hash,
        )
        record.hash = record_hash(record)
        record.save(force_insert=True)
        chain.last_seq = record.seq
        chain.last_hash = record.hash
        chain.save(update_fields=["last_seq", "last_hash"])
    return record


def audit_chains_check() -> dict[str, Any]:
    """Verify every chain and append the outcome to the global chain as `audit.verify`.

    The nightly run leaves its own trace, so a reader can see when the trail was last proven
    intact, and a break is on record even if nobody reads the worker's log.
    """
    reports = audit_chains_verify()
    broken = [str(report.broken) for report in reports if report.broken is not None]
    outcome: dict[str, Any] = {
        "ok": not broken,
        "chains": len(reports),
        "records": sum(report.records for report in reports),
        "broken": broken,
    }
    if settings.AUDIT_ANCHOR_DIR:
        # The published heads too: the walk alone cannot see a chain re-sealed with the key.
        anchors = audit_anchors_check(directory=Path(settings.AUDIT_ANCHOR_DIR))
        outcome["anchors"] = anchors.checked
        outcome["anchor_mismatches"] = [str(mismatch) for mismatch in anchors.mismatches]
        outcome["ok"] = outcome["ok"] and anchors.ok
    action = "audit.verify" if outcome["ok"] else "audit.verify_failed"
    audit_record(action=action, detail=outcome)
    return outcome
