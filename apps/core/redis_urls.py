"""Which Redis URLs production accepts: TLS (``rediss://``) or a password.

Pure functions with no Django import, so the production settings can refuse an insecure URL at
import (the server, the Celery worker and beat never run system checks), and the system check
core.E001 (apps/core/checks.py) can report the same rule from ``manage.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

# The settings that hold a Redis URL; CELERY_* may name another broker, which is not checked.
REDIS_URL_SETTINGS = ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "KRAKEN_REDIS_URL")
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+socket"})
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


def insecure_redis_settings(values: Mapping[str, object]) -> list[str]:
    """The names among REDIS_URL_SETTINGS whose value is a Redis URL without TLS or a password
    (unset ones, and URLs of other brokers, are not this rule's business)."""
    found = []
    for name in REDIS_URL_SETTINGS:
        url = str(values.get(name) or "")
        if url and urlsplit(url).scheme in REDIS_SCHEMES and not redis_url_is_secure(url):
            found.append(name)
    return found
