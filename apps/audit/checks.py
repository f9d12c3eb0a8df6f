"""Deployment checks: the audit chain needs a key of its own and a place to publish its heads.

Production settings refuse to load without AUDIT_HMAC_KEY (kraken_portal/settings/production.py);
audit.W001 is what other settings modules get from `check --deploy`.
"""

from __future__ import annotations

from pathlib import Path
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
ANCHOR_DIR_MISSING = CheckWarning(
    "AUDIT_ANCHOR_DIR is not set, so audit chain heads are not published.",
    hint=(
        "Point AUDIT_ANCHOR_DIR at write-once storage: without published heads, someone with "
        "the HMAC key and the database owner's password can rewrite the trail unnoticed."
    ),
    id="audit.W002",
)
ANCHOR_DIR_NOT_A_DIRECTORY = "AUDIT_ANCHOR_DIR ({path}) is not an existing directory."


@register(Tags.security, deploy=True)
def audit_key_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [] if settings.AUDIT_HMAC_KEY else [AUDIT_KEY_MISSING]


@register(Tags.security, deploy=True)
def audit_anchor_dir_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not settings.AUDIT_ANCHOR_DIR:
        return [ANCHOR_DIR_MISSING]
    if not Path(settings.AUDIT_ANCHOR_DIR).is_dir():
        message = ANCHOR_DIR_NOT_A_DIRECTORY.format(path=settings.AUDIT_ANCHOR_DIR)
        return [CheckWarning(message, id="audit.W003")]
    return []
