"""System check: in production every Redis connection is encrypted or authenticated.

Redis carries sessions' neighbours (cache), the Celery queue (task arguments, including ids of
money operations), the channel layer (live fragments) and the Kraken client's nonces and rate
counters. A Redis reachable without a password lets anyone on its network read them, enqueue a
task or publish a fragment to every member's page; so production (REDIS_REQUIRE_SECURE, set by
the production settings) requires ``rediss://`` (TLS) or a password in each Redis URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

# The settings that hold a Redis URL; CELERY_* may name another broker, which is not checked.
REDIS_URL_SETTINGS = ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "KRAKEN_REDIS_URL")
_REDIS_SCHEMES = {"redis", "rediss", "unix", "redis+socket"}
REDIS_INSECURE = "{name} connects to Redis without TLS or a password."
REDIS_INSECURE_HINT = (
    "Use rediss://:<password>@host:6380/0 (TLS and a password), or at least "
    "redis://:<password>@host:6379/0, and set requirepass (or an ACL user) on the server."
)


def redis_url_is_secure(url: str) -> bool:
    """``rediss://`` (TLS), or a password in the URL's user info or its ``password`` query."""
    parts = urlsplit(url)
    if parts.scheme == "rediss":
        return True
    return bool(parts.password) or any(parse_qs(parts.query).get("password", []))


@register(Tags.security)
def redis_security_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not getattr(settings, "REDIS_REQUIRE_SECURE", False):
        return []
    found: list[CheckMessage] = []
    for name in REDIS_URL_SETTINGS:
        url = str(getattr(settings, name, "") or "")
        if not url or urlsplit(url).scheme not in _REDIS_SCHEMES:
            continue
        if not redis_url_is_secure(url):
            found.append(
                Error(REDIS_INSECURE.format(name=name), hint=REDIS_INSECURE_HINT, id="core.E001")
            )
    return found
