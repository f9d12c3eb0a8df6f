"""Vault tasks. They receive credential ids, never secrets, and return no secret either."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from apps.orgs.models import Membership

logger = logging.getLogger(__name__)

KEYS_RESTRICTED_SUBJECT = "Your Kraken API keys in {org} were restricted"
KEYS_RESTRICTED_BODY = (
    "Your access in {org} on the Kraken Institutional Portal changed, so some of your API "
    "keys were restricted:\n\n{lines}\n\nNothing else is needed from you. If you did not "
    "expect this, ask an owner of {org}.\n"
)


@shared_task(ignore_result=True)
def keys_restricted_email_task(membership_id: int, reasons: list[str]) -> None:
    """Tell a demoted or removed member which of their keys became cancel-only or were revoked,
    and why. Enqueued after the change commits; the reasons hold no secret."""
    membership = (
        Membership.all_objects.select_related("user", "org").filter(pk=membership_id).first()
    )
    if membership is None:
        return
    org = membership.org.name
    send_mail(
        KEYS_RESTRICTED_SUBJECT.format(org=org),
        KEYS_RESTRICTED_BODY.format(org=org, lines="\n".join(f"- {r}" for r in reasons)),
        settings.DEFAULT_FROM_EMAIL,
        [membership.user.email],
    )
