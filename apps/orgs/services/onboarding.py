"""Writes for onboarding: an institution applies, Kraken's staff approve (the organization is
created and its first owner invited) or reject.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
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
    return application


@transaction.atomic
def onboarding_reject(
    *, application: OnboardingApplication, reviewer: User, request: HttpRequest | None = None
) -> OnboardingApplication:
    _claim_review(
        application=application, reviewer=reviewer, status=OnboardingApplication.Status.REJECTED
    )
    audit_record(action="onboarding.reject", actor=reviewer, target=application, request=request)
    return application
