"""Production: everything `manage.py check --deploy` asks for, on top of base.

Required environment: SECRET_KEY (50+ random characters), DATABASE_URL (PostgreSQL),
ALLOWED_HOSTS, AUDIT_HMAC_KEY (32+ random characters), REDIS_URL (rediss:// or with a password),
and EMAIL_HOST (+ EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS) for outgoing
mail; AUDIT_ANCHOR_DIR for the daily chain anchors. TLS ends at a proxy that sets
X-Forwarded-Proto.
"""

from __future__ import annotations

import os
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured

from apps.core.redis_urls import (
    REDIS_INSECURE,
    REDIS_INSECURE_HINT,
    REDIS_URL_SETTINGS,
    insecure_redis_settings,
)

from .base import *  # noqa: F403
from .base import env, env_bool, env_int

DEBUG = False
# Marks production for code that must never run there (demo_data). A deployment's own settings
# module that imports this one carries the marker with it.
PRODUCTION = True
if "SECRET_KEY" not in os.environ:
    raise RuntimeError("SECRET_KEY must be set in production.")
SECRET_KEY = env("SECRET_KEY")
if not env("DATABASE_URL").startswith(("postgres://", "postgresql://")):
    # SQLite is a developer convenience: no row locks for the audit chain, no append-only DELETE
    # trigger, one writer at a time.
    raise RuntimeError("DATABASE_URL must point at PostgreSQL in production.")

# The audit chain's key. Refused here, at settings import, rather than by a system check: the
# server, the Celery worker and beat never run checks, and a portal that started without its own
# key would seal the trail with one derived from SECRET_KEY, so rotating SECRET_KEY later would
# make every earlier record look forged. Short keys are refused too: with a database dump an
# insider could search a small key space offline and then re-seal a rewritten chain.
AUDIT_HMAC_KEY_MIN_LENGTH = 32
AUDIT_HMAC_KEY_REQUIRED = (
    f"AUDIT_HMAC_KEY must be set in production: {AUDIT_HMAC_KEY_MIN_LENGTH}+ random characters, "
    "different from SECRET_KEY."
)
AUDIT_HMAC_KEY = env("AUDIT_HMAC_KEY")
if len(AUDIT_HMAC_KEY) < AUDIT_HMAC_KEY_MIN_LENGTH or AUDIT_HMAC_KEY == SECRET_KEY:
    raise ImproperlyConfigured(AUDIT_HMAC_KEY_REQUIRED)

# Only the host names the portal is really served under; no development defaults.
ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS").split(",") if h.strip()]

# HTTPS everywhere. The proxy in front terminates TLS and says so in X-Forwarded-Proto; the
# health check stays reachable over plain HTTP for the load balancer.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True

# Cookies only over HTTPS; the __Host- prefix also pins them to this exact host and path "/".
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"

# Real mail. A development backend set through EMAIL_BACKEND is reported by check --deploy.
EMAIL_BACKEND_PATH = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
SMTP_OPTIONS: dict[str, object] = {
    "host": env("EMAIL_HOST", "localhost"),
    "port": env_int("EMAIL_PORT", 587),
    "username": env("EMAIL_HOST_USER") or None,
    "password": env("EMAIL_HOST_PASSWORD") or None,
    "use_tls": env_bool("EMAIL_USE_TLS", True),
    "timeout": env_int("EMAIL_TIMEOUT", 10),
}
MAILER: dict[str, object] = {
    "BACKEND": EMAIL_BACKEND_PATH,
    # Other backends (console, locmem, a provider's) take none of the SMTP options.
    "OPTIONS": SMTP_OPTIONS if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend") else {},
}
MAILERS = {"default": cast(Any, MAILER)}

# No admin for 2FA devices or sign-in lockouts: deleting a device or lifting a lockout there
# would bypass the audited flows that own them.
ADMIN_HIDDEN_APPS = ["otp_totp", "otp_static", "axes"]

# Every Redis URL (REDIS_URL, CELERY_BROKER_URL, ...) must use TLS or carry a password. Refused
# here, at settings import, like AUDIT_HMAC_KEY: the server, the Celery worker and beat never run
# system checks. The check core.E001 (REDIS_REQUIRE_SECURE) still covers a deployment's settings
# module that sets a Redis URL (KRAKEN_REDIS_URL, say) after importing this one.
REDIS_REQUIRE_SECURE = True
_insecure_redis = insecure_redis_settings(
    {name: globals().get(name, "") for name in REDIS_URL_SETTINGS}
)
if _insecure_redis:
    raise ImproperlyConfigured(
        " ".join(REDIS_INSECURE.format(name=name) for name in _insecure_redis)
        + " "
        + REDIS_INSECURE_HINT
    )
