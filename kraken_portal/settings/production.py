"""Production: everything `manage.py check --deploy` asks for, on top of base."""

from __future__ import annotations

import os

from .base import *  # noqa: F403
from .base import env, env_bool

DEBUG = False
if "SECRET_KEY" not in os.environ:
    raise RuntimeError("SECRET_KEY must be set in production.")
SECRET_KEY = env("SECRET_KEY")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
