"""Security notices by email: the user hears of every change to their second factor, so a
change they did not make (someone with their session) does not go unnoticed.

The task takes the user's id and the kind of notice, never a code or a secret; it is enqueued
on commit by the service that made the change (apps.accounts.services).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger(__name__)

NOTICE_FOOTER = (
    "\n\nIf this was not you, sign in, change your password and contact your organization's "
    "owner at once: someone may have access to your account.\n"
)
# kind -> (subject, first paragraph). The kinds are the services' NOTICE_* constants.
NOTICES: dict[str, tuple[str, str]] = {
    "2fa_enabled": (
        "Two-factor authentication was turned on",
        "Two-factor authentication was turned on for your Kraken Institutional Portal account, "
        "and ten recovery codes were issued.",
    ),
    "2fa_disabled": (
        "Two-factor authentication was turned off",
        "Two-factor authentication was turned off for your Kraken Institutional Portal "
        "account: its authenticator app and recovery codes no longer work.",
    ),
    "recovery_codes_regenerated": (
        "New recovery codes were generated",
        "New recovery codes were generated for your Kraken Institutional Portal account; the "
        "old ones no longer work.",
    ),
    "password_changed": (
        "Your password was changed",
        "The password of your Kraken Institutional Portal account was changed.",
    ),
    "other_sessions_signed_out": (
        "Your other sessions were signed out",
        "Every other session of your Kraken Institutional Portal account was signed out.",
    ),
}


# Sending is idempotent enough (a duplicate notice is harmless), so the task may retry.
@shared_task(
    ignore_result=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
)
def security_notice_task(user_id: int, kind: str) -> None:
    from apps.accounts.models import User

    user = User.objects.filter(pk=user_id).first()
    if user is None or kind not in NOTICES:
        logger.warning("No security notice %r for user %s", kind, user_id)
        return
    subject, body = NOTICES[kind]
    send_mail(
        f"Kraken Institutional: {subject}",
        body + NOTICE_FOOTER,
        settings.DEFAULT_FROM_EMAIL,
        [user.email],
    )


@shared_task(ignore_result=True)
def password_reset_email_task(email: str) -> None:
    """Send the reset link, if the address has an account (the request cannot tell)."""
    from apps.accounts.services import password_reset_send

    password_reset_send(email=email)
