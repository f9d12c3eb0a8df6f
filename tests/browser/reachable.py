"""Something for every page to show, so the crawling browser tests (axe-core, 390 px) check
the pages that only exist, or only fill up, once there is data: each API key's page (live,
refused, revoked), the trail and the home page's activity with labelled details, a person's
security activity, and the onboarding review pages (an application waiting, one decided)."""

from __future__ import annotations

from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.orgs.models import Membership, OnboardingApplication
from apps.vault.models import Credential, Use
from apps.vault.services import credential_create, credential_revoke
from tests.factories import master_account
from tests.vault.conftest import new_key_pair

# Stored as a member would send them: accented names and a long company name test wrapping.
APPLICATION = {
    "country": "US",
    "region": "TX",
    "first_name": "Åsa",
    "last_name": "Lindqvist-Øberg",
    "business_type": "hedge_fund",
    "assets_under_management": "50m_250m",
}


def _key(membership: Membership, label: str) -> Credential:
    pair = new_key_pair()
    return credential_create(
        membership=membership,
        label=label,
        api_key=pair.api_key,
        secret=pair.secret,
        otp=None,
        account=master_account(membership.org),
        use=Use.TRADING,
        probe=False,
    )


def keys(membership: Membership) -> None:
    """Three keys of `membership` (live, refused, revoked: each page reads differently) and
    their records, with labelled details, on the organization's trail and its home page."""
    # One live key per use at a time: the live one comes last.
    credential_revoke(credential=_key(membership, "Old desk key"), actor=membership)
    refused = _key(membership, "Desk ETH (refused)")
    Credential.objects.filter(pk=refused.pk).update(
        status=Credential.Status.REFUSED,
        status_reason="It can withdraw funds; trading keys must not.",
        revoked_at=timezone.now(),
    )
    _key(membership, "Desk BTC")


def security_events(user: User) -> None:
    """A sign-in with a recovery code and a lockout on the person's own security activity."""
    audit_record(
        action="auth.sign_in",
        actor=user,
        detail={"second_factor": "recovery_code", "recovery_codes_left": 3},
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
    )
    audit_record(
        action="auth.locked_out",
        actor=user,
        detail={"email": user.email, "cool_off_minutes": 15},
        ip="198.51.100.23",
    )


def applications_to_review(reviewer: User) -> None:
    """One application waiting for review and one rejected with a reason (its decision table)."""
    OnboardingApplication.objects.create(
        company_name="Northwind Capital Partners Global Macro Opportunities Fund",
        email="asa@northwind.test",
        **APPLICATION,
    )
    OnboardingApplication.objects.create(
        company_name="Southwind Trading",
        email="ops@southwind.test",
        status=OnboardingApplication.Status.REJECTED,
        reviewed_at=timezone.now(),
        reviewed_by=reviewer,
        rejection_reason="We could not verify the company's registration.",
        reason_told_applicant=True,
        **APPLICATION,
    )
