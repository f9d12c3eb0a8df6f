"""System check: in production every Redis connection is encrypted or authenticated.

Redis carries sessions' neighbours (cache), the Celery queue (task arguments, including ids of
money operations), the channel layer (live fragments) and the Kraken client's nonces and rate
counters. A Redis reachable without a password lets anyone on its network read them, enqueue a
task or publish a fragment to every member's page; so production (REDIS_REQUIRE_SECURE, set by
the production settings) requires ``rediss://`` (TLS) or a password in each Redis URL.

The production settings already refuse such a URL at import (so the server, the worker and beat
do not start either); the check stays for a deployment's own settings module that sets a Redis
URL after importing them, and reports the rule from ``manage.py check``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

from apps.core.redis_urls import (
    REDIS_INSECURE,
    REDIS_INSECURE_HINT,
    REDIS_URL_SETTINGS,
    insecure_redis_settings,
    redis_url_is_secure,
)

__all__ = ["REDIS_URL_SETTINGS", "redis_security_check", "redis_url_is_secure"]


@register(Tags.security)
def redis_security_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not getattr(settings, "REDIS_REQUIRE_SECURE", False):
        return []
    values = {name: getattr(settings, name, "") for name in REDIS_URL_SETTINGS}
    return [
        Error(REDIS_INSECURE.format(name=name), hint=REDIS_INSECURE_HINT, id="core.E001")
        for name in insecure_redis_settings(values)
    ]
