"""Onboarding tasks: they take an application's id, never its contents."""

from __future__ import annotations

from celery import shared_task

from apps.orgs.services.onboarding import onboarding_email_send


# Retried on a mail outage; a duplicate receipt or decision email harms nobody, a lost one
# leaves an applicant waiting.
@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def onboarding_email_task(application_id: int, kind: str) -> None:
    onboarding_email_send(application_id=application_id, kind=kind)
