"""Settings for the Kraken Institutional Portal.

Every value comes from an environment variable with a safe default, so one module serves a
developer's laptop, CI and production (the healthchecks model). `production.py` and `test.py`
only tighten or relax what differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


# PostgreSQL connections come from psycopg 3's pool, one pool per process.
#
# Why: under ASGI, Django runs each request in a thread of its own, and a persistent connection
# (CONN_MAX_AGE > 0) belongs to its thread, so every request opened a connection that nothing
# returned. With 50 signed-in users a third of the page requests failed with "FATAL: sorry, too
# many clients already" (PostgreSQL's max_connections is 100). A pooled connection goes back to
# the pool when the request ends (Django closes it: CONN_MAX_AGE must be 0 with a pool), and
# when every connection is busy a request waits up to DATABASE_POOL_TIMEOUT seconds for one
# instead of failing.
#
# Sizing. Each process has its own pool, holding at least DATABASE_POOL_MIN_SIZE connections and
# at most DATABASE_POOL_MAX_SIZE; a pool grows only while more threads than it has connections
# use the database at once, so a process that does its database work in one thread never holds
# more than the minimum. The sum must stay under PostgreSQL's max_connections minus its
# superuser_reserved_connections (100 - 3 = 97 by default), with room for a second set of web
# processes during a rolling restart, for migrations and for an operator's psql:
#
#     web     WEB_CONCURRENCY processes (one per core: 2) x MAX_SIZE (10); the page
#             requests and the sockets' database calls of a process share its pool   = 20
#     worker  Celery prefork children (--concurrency 2), one task at a time each,
#             and the parent                                                        <=  3
#     beat, feeder  no database work today; the pool opens only on first use        <=  2
#     total   25, and 45 while a rolling restart runs two sets of web processes     <= 97
#
# More connections per web process would not serve more pages: a process runs Python on one
# core at a time, and its pages spend most of their time in Python, not waiting on PostgreSQL.
# Measured by bench/http_bench.py (2 shared cores, one web process, 200 signed-in users on the
# five pages): 78, 70 and 89 pages/s with pools of 4, 10 and 20, all without an error (the
# spread is the machine's noise); before the pool, 570 of 827 requests failed.
# DATABASE_POOL_MAX_SIZE=0 turns the pool off (plain connections opened and closed per
# request), for a deployment behind a pooler such as PgBouncer in transaction mode.
DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 1)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10)
DATABASE_POOL_TIMEOUT = env_float("DATABASE_POOL_TIMEOUT", 30.0)


def database_from_url(url: str) -> dict[str, object]:
    """Turn `postgres://user:pass@host:port/name` or `sqlite:///path` into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parsed.path or ":memory:"}
    if parsed.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ValueError(f"Unsupported DATABASE_URL scheme: {parsed.scheme!r}")
    options: dict[str, object] = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    if DATABASE_POOL_MAX_SIZE > 0:
        options["pool"] = {
            "min_size": min(DATABASE_POOL_MIN_SIZE, DATABASE_POOL_MAX_SIZE),
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": DATABASE_POOL_TIMEOUT,
        }
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        # Required by the pool, and right without it: a connection kept per request thread
        # is a connection leaked (see above).
        "CONN_MAX_AGE": 0,
        # The pool checks a connection before lending it, so a restarted PostgreSQL costs a
        # reconnect, not an error page.
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


SECRET_KEY = env("SECRET_KEY", "insecure-dev-key-change-me-" + "x" * 30)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
    # Django's admin with the portal's site: the portal's sign-in and verified 2FA only.
    "kraken_portal.admin_config.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # ArrayField (approval roles) and its checks.
    "channels",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "apps.core",
    "apps.accounts",
    "apps.orgs",
    "apps.audit",
    "apps.vault",
    "apps.kraken",
    "apps.market",
    "apps.exchange",
    "apps.notifications",
    "apps.approvals",
    "apps.schedules",
    "apps.trading",
    "apps.funding",
    "apps.staking",
    # The composition layer: the home page's template context and the demo_data command.
    "kraken_portal",
    # The sandbox is a separate exchange; it is installed only so `manage.py sandbox` exists.
    "apps.sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files in every mode (see STORAGES below), so turning DEBUG off breaks nothing.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "apps.accounts.middleware.IdleTimeoutMiddleware",
    "apps.accounts.middleware.TimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
    # Last, so that a view's exception becomes its error page in the request's thread.
    "kraken_portal.middleware.ErrorPageInRequestThreadMiddleware",
]

ROOT_URLCONF = "kraken_portal.urls"
ASGI_APPLICATION = "kraken_portal.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kraken_portal.context_processors.portal",
            ],
            "builtins": ["django_htmx.templatetags.django_htmx"],
        },
    }
]

DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "portal.sqlite3",
            # Several processes share the file (web, worker, beat, feeder): wait for locks
            # instead of failing, and take the write lock up front to avoid upgrade deadlocks.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
# Production requires TLS (rediss://) or a password in every Redis URL (apps/core/checks.py).
REDIS_REQUIRE_SECURE = env_bool("REDIS_REQUIRE_SECURE", False)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "portal",
    }
}
# Pub/sub layer (measured by the market team: one PUBLISH per group_send, fanned out in each
# process; ~10x the deliveries/s of the list-based RedisChannelLayer at 1,000 members). Redis
# pub/sub ignores the database number, so the prefix carries it: deployments or test runs that
# share one Redis server on different databases never receive each other's group messages.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            "prefix": "asgi.db" + (urlparse(REDIS_URL).path.strip("/") or "0"),
        },
    }
}

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesBackend",
    "apps.accounts.backends.EmailBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Sessions end after this much inactivity (IdleTimeoutMiddleware) and never outlive a browser day.
# Live market pages call their data stale when the feeder has heard nothing from Kraken (not
# even a heartbeat) for this many seconds, or a pair's book is being rebuilt.
MARKET_STALE_AFTER = env_float("MARKET_STALE_AFTER", 15.0)
# The conversion service (apps.market.conversion) refuses to value with a price older than this
# many seconds (fail closed): approvals and limits must not be judged on an old price.
MARKET_PRICE_MAX_AGE = env_float("MARKET_PRICE_MAX_AGE", 30.0)
SESSION_IDLE_TIMEOUT = env_int("SESSION_IDLE_TIMEOUT", 30 * 60)
SESSION_COOKIE_AGE = 12 * 60 * 60
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from <body hx-headers>, not the cookie.

# A sensitive action needs a TOTP confirmation no older than this (step-up "sudo mode").
STEP_UP_MAX_AGE = env_int("STEP_UP_MAX_AGE", 5 * 60)
OTP_TOTP_ISSUER = "Kraken Institutional Portal"
# How long the deployment keeps database backups: a revoked key's sealed secret is erased from
# the live database at once, and from the backups when they expire (the key's page says so).
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", 30)
# The 2FA device admins never show a device's secret key or its QR code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# App labels whose models the admin site leaves out (production: 2FA devices and lockouts).
ADMIN_HIDDEN_APPS: list[str] = []

# django-axes: five failures per account and address, then a cool-off.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"
# Axes, the sign-in throttles, the onboarding limit and the audit trail all take the client's
# address from apps.core.clientip, so a proxy is configured in one place.
AXES_CLIENT_IP_CALLABLE = "apps.core.clientip.client_ip"

# The client's address behind reverse proxies. With TRUSTED_PROXY_COUNT = 0 (the default) only
# the socket's peer (REMOTE_ADDR) counts and any X-Forwarded-For is ignored, since a client can
# write that header itself. Behind N proxies that each append the address they saw to
# CLIENT_IP_HEADER, set TRUSTED_PROXY_COUNT = N: the N-th entry from the right is the client.
CLIENT_IP_HEADER = env("CLIENT_IP_HEADER", "X-Forwarded-For")
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Per account (any address): after SIGN_IN_DELAY_AFTER failures each further attempt waits
# 2, 4, 8 ... seconds, at most SIGN_IN_DELAY_CAP; failures are forgotten SIGN_IN_DELAY_MEMORY
# seconds after the last one. A delay, not a lockout: the right password works once it passes.
SIGN_IN_DELAY_AFTER = env_int("SIGN_IN_DELAY_AFTER", 5)
SIGN_IN_DELAY_CAP = env_int("SIGN_IN_DELAY_CAP", 5 * 60)
SIGN_IN_DELAY_MEMORY = env_int("SIGN_IN_DELAY_MEMORY", 24 * 60 * 60)
# Per address (any account): this many failed sign-ins in the window, then no more attempts
# from it until the window ends.
SIGN_IN_ADDRESS_LIMIT = env_int("SIGN_IN_ADDRESS_LIMIT", 30)
SIGN_IN_ADDRESS_WINDOW = env_int("SIGN_IN_ADDRESS_WINDOW", 15 * 60)
# Per address: applications submitted to the public onboarding form in the window.
ONBOARDING_ADDRESS_LIMIT = env_int("ONBOARDING_ADDRESS_LIMIT", 10)
ONBOARDING_ADDRESS_WINDOW = env_int("ONBOARDING_ADDRESS_WINDOW", 60 * 60)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# --- Static files (WhiteNoise) -------------------------------------------------------------
# WhiteNoise serves /static/ in every mode: hashed, compressed files collected into STATIC_ROOT
# (`make run` runs collectstatic), cached for ever by browsers; with DEBUG it serves straight
# from the source folders instead, so a developer needs no collectstatic between edits.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# ------------------------------------------------------------------------------------------

MAILERS = {
    "default": {"BACKEND": env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")}
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "portal@localhost")

# Content Security Policy through Django 6's own middleware. Scripts need the per-request nonce;
# htmx is configured (meta htmx-config) so that it never needs eval or inline styles.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Celery: JSON only, bounded tasks, one visibility timeout longer than any task's hard limit so
# a late-acked task is never handed to a second worker while the first still runs it.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
_VISIBILITY_TIMEOUT = 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": _VISIBILITY_TIMEOUT}
CELERY_TASK_ACKS_LATE = False  # Only idempotent tasks opt in with acks_late=True.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_RESULT_EXPIRES = 24 * 60 * 60
CELERY_TASK_ALWAYS_EAGER = False

# Kraken endpoints. Defaults are Kraken's real ones; `make run` and the tests set the sandbox.
KRAKEN_API_URL = env("KRAKEN_API_URL", "https://api.kraken.com")
KRAKEN_WS_URL = env("KRAKEN_WS_URL", "wss://ws.kraken.com/v2")
KRAKEN_WS_AUTH_URL = env("KRAKEN_WS_AUTH_URL", "wss://ws-auth.kraken.com/v2")
KRAKEN_TIER = env("KRAKEN_TIER", "starter")
# Kraken client tuning (apps.kraken.client). Seconds unless named otherwise.
KRAKEN_HTTP_TIMEOUT = env_int("KRAKEN_HTTP_TIMEOUT", 10)  # per HTTP request
KRAKEN_READ_ATTEMPTS = env_int("KRAKEN_READ_ATTEMPTS", 4)  # tries for idempotent calls
KRAKEN_RETRY_BASE_DELAY = env_float("KRAKEN_RETRY_BASE_DELAY", 0.25)  # first back-off
KRAKEN_RETRY_MAX_DELAY = env_float("KRAKEN_RETRY_MAX_DELAY", 4.0)  # back-off cap
KRAKEN_RATE_MAX_WAIT = env_float("KRAKEN_RATE_MAX_WAIT", 45.0)  # wait for rate budget
KRAKEN_SEQUENCER_WAIT = env_float("KRAKEN_SEQUENCER_WAIT", 30.0)  # wait for the nonce lease

# Exchange operations (apps.exchange). An UNKNOWN operation becomes NOT_PLACED only after
# EXCHANGE_NOT_PLACED_MISSES looks that find nothing, each EXCHANGE_MISS_SPACING seconds after
# the last (and after the send): Kraken may take a moment to list a fresh order, withdrawal or
# ledger entry (python-kraken-sdk/KSDK: OpenOrders can briefly omit a just-placed order), so
# 3 looks over at least a minute. Lower in tests only.
EXCHANGE_NOT_PLACED_MISSES = env_int("EXCHANGE_NOT_PLACED_MISSES", 3)
EXCHANGE_MISS_SPACING = env_float("EXCHANGE_MISS_SPACING", 20.0)
# Time windows the finders match withdrawals, transfers and userref orders in (seconds of
# clock skew before the send; how long after it Kraken may timestamp the effect).
EXCHANGE_FINDER_SKEW = env_float("EXCHANGE_FINDER_SKEW", 120.0)
EXCHANGE_FINDER_WINDOW = env_float("EXCHANGE_FINDER_WINDOW", 600.0)
# Beyond the client's own waits (timeout, rate budget, sequencer): when SENDING is stale.
EXCHANGE_STALE_MARGIN = env_float("EXCHANGE_STALE_MARGIN", 30.0)
EXCHANGE_PREPARED_STALE = env_float("EXCHANGE_PREPARED_STALE", 120.0)

# Staking: how soon the portal asks Kraken again whether an Earn (de)allocation it sent is still
# pending, and how often it looks whether a bonding or unbonding lock has ended.
STAKING_POLL_SECONDS = env_float("STAKING_POLL_SECONDS", 5.0)
STAKING_LOCK_POLL_SECONDS = env_float("STAKING_LOCK_POLL_SECONDS", 300.0)

# Vault: ordered key-encryption keys, "id:base64key,id:base64key"; the first one encrypts.
PORTAL_KEYRING = env("PORTAL_KEYRING")
# Audit chain HMAC key; falls back to a key derived from SECRET_KEY.
AUDIT_HMAC_KEY = env("AUDIT_HMAC_KEY")
# Where beat publishes each audit chain's head daily (apps/audit/anchors.py); meant to be
# write-once storage. Empty: nothing is published (check --deploy warns).
AUDIT_ANCHOR_DIR = env("AUDIT_ANCHOR_DIR")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        # Refused requests (403/404) are expected traffic, and Django logs each with a full
        # traceback; server errors (5xx) are still logged.
        "django.request": {"level": "ERROR"},
    },
}

# Second-factor throttle (apps.accounts.models.SecondFactorThrottle), per user: after n wrong
# codes the next one is checked only FACTOR * 2^(n-1) seconds later, at most MAX_DELAY.
TWO_FACTOR_THROTTLE_FACTOR = env_float("TWO_FACTOR_THROTTLE_FACTOR", 1.0)
TWO_FACTOR_THROTTLE_MAX_DELAY = env_int("TWO_FACTOR_THROTTLE_MAX_DELAY", 15 * 60)

# Password reset by email: requests per client address and per email address in a window
# (counted in Redis), whether the address has an account or not. Links live PASSWORD_RESET_TIMEOUT.
PASSWORD_RESET_WINDOW = env_int("PASSWORD_RESET_WINDOW", 60 * 60)
PASSWORD_RESET_LIMIT_PER_IP = env_int("PASSWORD_RESET_LIMIT_PER_IP", 10)
PASSWORD_RESET_LIMIT_PER_ADDRESS = env_int("PASSWORD_RESET_LIMIT_PER_ADDRESS", 3)
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 60 * 60)

# Scheduled workflows (apps/schedules): a slot more than this many seconds overdue when the beat
# reaches it was missed (the beat or the database was down) and follows its workflow's catch-up
# rule; within it, the slot is simply on time.
SCHEDULES_CATCHUP_GRACE = env_int("SCHEDULES_CATCHUP_GRACE", 300)
