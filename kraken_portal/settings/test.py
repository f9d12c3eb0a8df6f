"""Tests: real PostgreSQL (DATABASE_URL) and Redis; only slow hashing is swapped for speed."""

from __future__ import annotations

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests never run collectstatic: WhiteNoise serves straight from the source folders, looked up
# per request (which also spares a warning about the missing STATIC_ROOT).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# A fixed test keyring (the second factors are sealed with it); tests of the vault replace it.
PORTAL_KEYRING = env("PORTAL_KEYRING") or "test:" + "dGVzdC1vbmx5LWtleS1mb3ItdGhlLXRlc3Qtc3VpdGU="

# A workflow action for the scheduler's tests (tests/schedules/actions.py), loaded by
# apps.schedules at ready() in every process the tests start (the Celery worker, the browser
# tests' server), as the business apps' actions are in production.
SCHEDULES_ACTION_MODULES = ["tests.schedules.actions"]
