"""Deployment check: the audit chain needs a key of its own."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

AUDIT_KEY_MISSING = CheckWarning(
    "AUDIT_HMAC_KEY is not set, so the audit chain's key derives from SECRET_KEY.",
    hint=(
        "Set AUDIT_HMAC_KEY to a long random value and never rotate it with SECRET_KEY: "
        "after a SECRET_KEY rotation `manage.py audit_verify` would report every earlier "
        "record as broken."
    ),
    id="audit.W001",
)


@register(Tags.security, deploy=True)
def audit_key_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [] if settings.AUDIT_HMAC_KEY else [AUDIT_KEY_MISSING]
