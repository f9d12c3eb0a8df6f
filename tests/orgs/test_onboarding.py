from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from apps.audit.models import AuditRecord
from apps.orgs.forms import STATE_REQUIRED
from apps.orgs.models import Invitation, Membership, OnboardingApplication, Organization
from apps.orgs.permissions import Role
from apps.orgs.services import onboarding
from tests.orgs.conftest import invitation_links

pytestmark = pytest.mark.django_db

APPLY = reverse("onboarding:apply")
QUEUE = reverse("onboarding:review-queue")
PASSWORD = "a long and unusual passphrase 42"


def application_data(**overrides: str) -> dict[str, str]:
    data = {
        "company_name": "Northwind Capital",
        "country": "GB",
        "region": "",
        "first_name": "Ada",
        "last_name": "North",
        "email": "Ada@Northwind.test",
        "business_type": "hedge_fund",
        "assets_under_management": "50m_250m",
    }
    data.update(overrides)
    return data


def test_an_institution_applies_and_sees_a_confirmation(db: Any) -> None:
    response = Client().post(APPLY, application_data(), follow=True)

    assert response.redirect_chain[-1][0] == reverse("onboarding:apply-done")
    application = OnboardingApplication.objects.get()
    assert (application.company_name, application.email) == (
        "Northwind Capital",
        "ada@northwind.test",
    )
    assert application.status == OnboardingApplication.Status.PENDING
    assert AuditRecord.objects.filter(action="onboarding.apply").exists()


def test_the_form_offers_countries_states_business_types_and_aum_bands(db: Any) -> None:
    body = Client().get(APPLY).content.decode()
    assert '<option value="US">United States</option>' in body
    assert '<option value="WY">Wyoming</option>' in body
    assert "Proprietary trading firm" in body
    assert "$250M to $1B" in body


@pytest.mark.parametrize("state", ["WA", "NY"])
def test_washington_and_new_york_applicants_are_told_and_nothing_is_stored(
    state: str, db: Any
) -> None:
    response = Client().post(APPLY, application_data(country="US", region=state))

    assert response.status_code == 400
    assert escape(onboarding.SERVICE_UNAVAILABLE_REGION) in response.content.decode()
    assert not OnboardingApplication.objects.exists()
    assert not AuditRecord.objects.filter(action="onboarding.apply").exists()


def test_the_service_itself_refuses_washington_and_new_york(db: Any) -> None:
    data: dict[str, Any] = application_data(country="US", region="NY")
    with pytest.raises(ValidationError, match="not available"):
        onboarding.onboarding_apply(**data)
    assert not OnboardingApplication.objects.exists()


def test_other_us_states_are_welcome_but_the_state_is_required(db: Any) -> None:
    missing = Client().post(APPLY, application_data(country="US"))
    assert missing.status_code == 400
    assert STATE_REQUIRED in missing.content.decode()

    Client().post(APPLY, application_data(country="US", region="TX"))
    assert OnboardingApplication.objects.get().region == "TX"


def test_a_state_given_for_another_country_is_dropped(db: Any) -> None:
    Client().post(APPLY, application_data(country="DE", region="NY"))
    assert OnboardingApplication.objects.get().region == ""


def test_staff_approval_creates_the_organization_and_invites_the_applicant_as_owner(
    staff_client, committing
) -> None:
    Client().post(APPLY, application_data())
    application = OnboardingApplication.objects.get()
    assert "Northwind Capital" in staff_client.get(QUEUE).content.decode()

    with committing():
        response = staff_client.post(
            reverse("onboarding:review-approve", kwargs={"pk": application.pk})
        )

    assert response.status_code == 302
    application.refresh_from_db()
    org = Organization.objects.get(slug="northwind-capital")
    assert application.status == OnboardingApplication.Status.APPROVED
    assert application.org == org
    assert application.reviewed_by is not None
    assert Invitation.objects.get(org=org).role == Role.OWNER
    assert mail.outbox[0].to == ["ada@northwind.test"]
    assert {"onboarding.approve", "organization.create", "invitation.create"} <= set(
        AuditRecord.objects.values_list("action", flat=True)
    )

    # The applicant follows the link, creates an account and owns the new organization.
    [(path, _token)] = invitation_links()
    Client().post(
        path,
        {"first_name": "Ada", "last_name": "North", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert Membership.objects.get(org=org).role == Role.OWNER


def test_an_application_is_reviewed_only_once(staff_client, committing) -> None:
    Client().post(APPLY, application_data())
    application = OnboardingApplication.objects.get()
    approve = reverse("onboarding:review-approve", kwargs={"pk": application.pk})
    with committing():
        staff_client.post(approve)
        again = staff_client.post(approve, follow=True)
        rejected = staff_client.post(
            reverse("onboarding:review-reject", kwargs={"pk": application.pk}),
            {"reason": "Changed our mind"},
            follow=True,
        )

    assert Organization.objects.filter(name="Northwind Capital").count() == 1
    for response in (again, rejected):
        messages = [str(m) for m in response.context["messages"]]
        assert onboarding.APPLICATION_ALREADY_REVIEWED in messages
    assert len(mail.outbox) == 1


def test_two_companies_with_the_same_name_get_distinct_addresses(staff_client, committing) -> None:
    Client().post(APPLY, application_data())
    Client().post(APPLY, application_data(email="other@northwind.test"))
    with committing():
        for application in OnboardingApplication.objects.all():
            staff_client.post(reverse("onboarding:review-approve", kwargs={"pk": application.pk}))

    slugs = sorted(Organization.objects.values_list("slug", flat=True))
    assert slugs == ["northwind-capital", "northwind-capital-2"]


def test_a_rejected_application_creates_nothing(staff_client) -> None:
    Client().post(APPLY, application_data())
    application = OnboardingApplication.objects.get()

    staff_client.post(
        reverse("onboarding:review-reject", kwargs={"pk": application.pk}),
        {"reason": "Outside our risk appetite"},
    )

    application.refresh_from_db()
    assert application.status == OnboardingApplication.Status.REJECTED
    assert not Organization.objects.exists()
    assert not mail.outbox
    assert "Rejected" in staff_client.get(QUEUE).content.decode()


def test_a_second_application_while_the_first_is_pending_is_refused(db: Any) -> None:
    Client().post(APPLY, application_data())
    again = Client().post(APPLY, application_data(email="ADA@northwind.test"))

    assert again.status_code == 400
    assert escape(onboarding.APPLICATION_PENDING) in again.content.decode()
    assert OnboardingApplication.objects.count() == 1
