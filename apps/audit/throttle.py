"""Audit an event at most once per window per source, counting what was left out.

Some events can be triggered by anyone, as fast as they can send requests: a failed sign-in, an
onboarding application. Recording each one would let a stranger grow the chain without limit and
make every such request queue for the chain head's row lock, which sign-ins of real users need
too. So these are recorded at most once per window (a minute) per source, usually the client's
address: the first event of a window is recorded, the rest are only counted in Redis, and the
next record carries that count (`detail["suppressed"]`). A flood costs two Redis round trips per
request and no database write.

The gate is Redis `SET NX EX`: exactly one request per window and source wins it, across every
process. If Redis is unreachable the event is recorded anyway: losing evidence is worse than a
longer chain, and Redis being down stops sign-in through the cache and sessions in any case.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.db import models
from django.http import HttpRequest

from apps.audit.models import AuditRecord
from apps.audit.services import _client_ip, audit_record
from apps.core.redis_clients import redis_client
from apps.core.trail import Actor

logger = logging.getLogger(__name__)

AUDIT_FLOOD_WINDOW = 60  # seconds
KEY_PREFIX = "portal:audit-flood:"
# A count waits this long for the next record of its source; after that it is dropped.
COUNT_TTL = 24 * 60 * 60


def flood_keys(*, action: str, source: str) -> tuple[str, str]:
    """The Redis keys of one action and source: the window's gate, and the suppressed count."""
    base = f"{KEY_PREFIX}{action}:{source}"
    return base, base + ":suppressed"


def _pass_gate(*, action: str, source: str, window: int) -> int | None:
    """None when this event falls in a window already recorded (it is counted); otherwise the
    number of events left out since the last record of this action and source."""
    gate, count = flood_keys(action=action, source=source)
    client = redis_client()
    try:
        if client.set(gate, "1", nx=True, ex=window):
            with client.pipeline(transaction=True) as pipe:
                pipe.get(count)
                pipe.delete(count)
                suppressed, _ = pipe.execute()
            return int(suppressed or 0)
        with client.pipeline(transaction=True) as pipe:
            pipe.incr(count)
            pipe.expire(count, COUNT_TTL)
            pipe.execute()
        return None
    except redis.RedisError:
        logger.warning("Audit flood gate unavailable; recording %s from %s", action, source)
        return 0


def audit_record_throttled(
    *,
    action: str,
    source: str | None = None,
    window: int = AUDIT_FLOOD_WINDOW,
    actor: Actor = None,
    org: models.Model | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditRecord | None:
    """`audit_record`, at most once per `window` seconds per `action` and `source`.

    `source` defaults to the request's client address. Returns the record, or None when the
    event was only counted. The count of events left out since the previous record of the same
    action and source goes into this record's `detail["suppressed"]` (absent when none were).
    """
    if source is None:
        source = _client_ip(request) or "unknown"
    suppressed = _pass_gate(action=action, source=source, window=window)
    if suppressed is None:
        return None
    detail = dict(detail or {})
    if suppressed:
        detail["suppressed"] = suppressed
    return audit_record(
        action=action, actor=actor, org=org, target=target, detail=detail, request=request
    )
