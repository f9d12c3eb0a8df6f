"""Writes for onboarding: an institution applies, Kraken's staff approve (the organization is
created and its first owner invited) or reject with a reason. The applicant gets an email at
each step (receipt, decision), sent by a Celery task after the change commits.
"""

from __future__ import annotations

from enum import StrEnum
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import User
from apps.core.emails import email_normalize
from apps.core.trail import audit_record, audit_record_throttled
from apps.orgs.models import OnboardingApplication, Organization
from apps.orgs.permissions import Role
from apps.orgs.services.invitations import invitation_issue

SERVICE_UNAVAILABLE_REGION = (
    "Kraken Institutional is not available to businesses in Washington or New York State."
)
UNAVAILABLE_US_STATES = frozenset({"WA", "NY"})
APPLICATION_ALREADY_REVIEWED = "This application has already been reviewed."
REJECTION_REASON_REQUIRED = "Give the reason for the rejection (it goes on the audit trail)."
APPLICATION_PENDING = (
    "An application from this email address is already under review; we will be in touch."
)


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50].strip("-") or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def onboarding_apply(
    *,
    company_name: str,
    country: str,
    region: str,
    first_name: str,
    last_name: str,
    email: str,
    business_type: str,
    assets_under_management: str,
    request: HttpRequest | None = None,
) -> OnboardingApplication:
    if country != "US":
        region = ""
    if country == "US" and region in UNAVAILABLE_US_STATES:
        # Nothing is stored for an applicant we cannot serve.
        raise ValidationError(SERVICE_UNAVAILABLE_REGION)
    email = email_normalize(email)
    pending = OnboardingApplication.objects.filter(
        email__iexact=email, status=OnboardingApplication.Status.PENDING
    )
    if pending.exists():
        raise ValidationError({"email": APPLICATION_PENDING})
    application = OnboardingApplication(
        company_name=company_name,
        country=country,
        region=region,
        first_name=first_name,
        last_name=last_name,
        email=email,
        business_type=business_type,
        assets_under_management=assets_under_management,
    )
    application.full_clean()
    application.save()
    # The form is public: at most one record a minute per client address (the application
    # itself is stored either way), so a flood cannot grow the chain (apps/audit/throttle.py).
    audit_record_throttled(
        action="onboarding.apply",
        target=application,
        detail={"company": company_name, "country": country, "region": region},
        request=request,
    )
    _email_on_commit(application, OnboardingEmail.RECEIVED)
    return application


def _claim_review(*, application: OnboardingApplication, reviewer: User, status: str) -> None:
    claimed = OnboardingApplication.objects.filter(
        pk=application.pk, status=OnboardingApplication.Status.PENDING
    ).update(status=status, reviewed_at=timezone.now(), reviewed_by=reviewer)
    if claimed != 1:
        raise ValidationError(APPLICATION_ALREADY_REVIEWED)
    application.refresh_from_db()


@transaction.atomic
def onboarding_approve(
    *, application: OnboardingApplication, reviewer: User, request: HttpRequest | None = None
) -> OnboardingApplication:
    """Create the organization and invite the applicant as its owner."""
    _claim_review(
        application=application, reviewer=reviewer, status=OnboardingApplication.Status.APPROVED
    )
    org = Organization(
        name=application.company_name,
        slug=_unique_slug(application.company_name),
        country=application.country,
    )
    org.full_clean()
    org.save()
    application.org = org
    application.save(update_fields=["org"])
    audit_record(
        action="onboarding.approve",
        actor=reviewer,
        target=application,
        detail={"org_id": org.pk, "slug": org.slug},
        request=request,
    )
    audit_record(
        action="organization.create",
        actor=reviewer,
        org=org,
        target=org,
        detail={"application_id": application.pk},
        request=request,
    )
    invitation_issue(
        org=org, email=application.email, role=Role.OWNER, invited_by=reviewer, request=request
    )
    _email_on_commit(application, OnboardingEmail.APPROVED)
    return application


@transaction.atomic
def onboarding_reject(
    *,
    application: OnboardingApplication,
    reviewer: User,
    reason: str,
    tell_applicant: bool = False,
    request: HttpRequest | None = None,
) -> OnboardingApplication:
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": REJECTION_REASON_REQUIRED})
    _claim_review(
        application=application, reviewer=reviewer, status=OnboardingApplication.Status.REJECTED
    )
    application.rejection_reason = reason[:1000]
    application.reason_told_applicant = tell_applicant
    application.save(update_fields=["rejection_reason", "reason_told_applicant"])
    audit_record(
        action="onboarding.reject",
        actor=reviewer,
        target=application,
        detail={"reason": application.rejection_reason, "reason_told_applicant": tell_applicant},
        request=request,
    )
    _email_on_commit(application, OnboardingEmail.REJECTED)
    return application


# The applicant's emails. The task takes the application's id and the kind; the text is built
# in the worker from the stored application, so the message carries nothing personal.


class OnboardingEmail(StrEnum):
    RECEIVED = "received"
    APPROVED = "approved"
    REJECTED = "rejected"


EMAIL_SUBJECTS: dict[OnboardingEmail, str] = {
    OnboardingEmail.RECEIVED: "We received your application to Kraken Institutional",
    OnboardingEmail.APPROVED: "Your application to Kraken Institutional is approved",
    OnboardingEmail.REJECTED: "Your application to Kraken Institutional",
}
EMAIL_RECEIVED = (
    "Dear {first_name},\n\nThank you for applying to Kraken Institutional on behalf of "
    "{company}. Our team reviews every application and will write to you at this address "
    "with a decision.\n\nIf you did not apply, ignore this email.\n"
)
EMAIL_APPROVED = (
    "Dear {first_name},\n\nYour application for {company} is approved. A separate email "
    "brings your invitation to set up the organization's owner account; its link works once "
    "and expires in 7 days.\n"
)
EMAIL_REJECTED = (
    "Dear {first_name},\n\nThank you for your interest in Kraken Institutional. After "
    "review, we are unable to offer an account to {company} at this time.{reason}\n"
)
EMAIL_REJECTED_REASON = "\n\nThe reason: {reason}"


def _email_on_commit(application: OnboardingApplication, kind: OnboardingEmail) -> None:
    # Imported here: the task module imports this one (the task calls onboarding_email_send).
    from apps.orgs.tasks import onboarding_email_task

    transaction.on_commit(partial(onboarding_email_task.delay, application.pk, str(kind)))


def onboarding_email_send(*, application_id: int, kind: str) -> bool:
    """In the worker: email the applicant about their application. False if it is gone."""
    application = OnboardingApplication.objects.filter(pk=application_id).first()
    if application is None:
        return False
    email_kind = OnboardingEmail(kind)
    values = {"first_name": application.first_name, "company": application.company_name}
    if email_kind is OnboardingEmail.RECEIVED:
        body = EMAIL_RECEIVED.format(**values)
    elif email_kind is OnboardingEmail.APPROVED:
        body = EMAIL_APPROVED.format(**values)
    else:
        told = application.reason_told_applicant and application.rejection_reason
        reason = EMAIL_REJECTED_REASON.format(reason=application.rejection_reason) if told else ""
        body = EMAIL_REJECTED.format(**values, reason=reason)
    send_mail(EMAIL_SUBJECTS[email_kind], body, settings.DEFAULT_FROM_EMAIL, [application.email])
    return True
