"""Staff review an application on its own page: country names, approval after a confirmation,
rejection with a reason, receipt and decision emails to the applicant, all audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.orgs.models import OnboardingApplication, Organization
from apps.orgs.services.onboarding import (
    EMAIL_SUBJECTS,
    REJECTION_REASON_REQUIRED,
    OnboardingEmail,
    onboarding_reject,
)
from tests.factories import UserFactory
from tests.orgs.test_onboarding import APPLY, QUEUE, application_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run Celery tasks in the test process (the mail goes to the locmem outbox here)."""
    from kraken_portal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def detail(application: OnboardingApplication) -> str:
    return reverse("onboarding:review-detail", kwargs={"pk": application.pk})


def approve(application: OnboardingApplication) -> str:
    return reverse("onboarding:review-approve", kwargs={"pk": application.pk})


def reject(application: OnboardingApplication) -> str:
    return reverse("onboarding:review-reject", kwargs={"pk": application.pk})


@pytest.fixture
def application(db: Any) -> OnboardingApplication:
    Client().post(APPLY, application_data(country="US", region="TX"))
    return OnboardingApplication.objects.get()


def test_the_applicant_gets_a_receipt_once_the_application_is_stored(
    eager_tasks, committing
) -> None:
    with committing():
        Client().post(APPLY, application_data(first_name="Åsa"))
    [receipt] = mail.outbox
    assert receipt.to == ["ada@northwind.test"]
    assert receipt.subject == EMAIL_SUBJECTS[OnboardingEmail.RECEIVED]
    assert "Dear Åsa" in receipt.body
    assert "Northwind Capital" in receipt.body


def test_the_queue_and_the_detail_page_name_countries_and_states(staff_client, application) -> None:
    queue = staff_client.get(QUEUE).content.decode()
    assert "Texas, United States" in queue
    assert f'href="{detail(application)}"' in queue
    page = staff_client.get(detail(application)).content.decode()
    assert "Texas, United States" in page
    assert ">US<" not in page
    assert "Hedge fund" in page


def test_approving_asks_for_confirmation_first(staff_client, application) -> None:
    page = staff_client.get(approve(application)).content.decode()
    assert "Approve “Northwind Capital”?" in page
    assert "invite <strong>ada@northwind.test</strong> as its owner" in page
    application.refresh_from_db()
    assert application.status == OnboardingApplication.Status.PENDING
    assert not Organization.objects.exists()


def test_an_approval_emails_the_decision_besides_the_invitation(
    staff_client, application, eager_tasks, committing
) -> None:
    with committing():
        response = staff_client.post(approve(application))
    assert response.status_code == 302
    subjects = sorted(message.subject for message in mail.outbox)
    assert EMAIL_SUBJECTS[OnboardingEmail.APPROVED] in subjects
    assert any(subject.startswith("Invitation to join Northwind Capital") for subject in subjects)
    assert all(message.to == ["ada@northwind.test"] for message in mail.outbox)


def test_a_rejection_needs_a_reason(staff_client, application) -> None:
    response = staff_client.post(reject(application), {"reason": "   "})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    application.refresh_from_db()
    assert application.status == OnboardingApplication.Status.PENDING
    assert not AuditRecord.objects.filter(action="onboarding.reject").exists()


def test_a_rejection_records_its_reason_and_keeps_it_from_the_applicant_unless_told(
    staff_client, application, eager_tasks, committing
) -> None:
    with committing():
        staff_client.post(reject(application), {"reason": "Sanctions screening hit"})
    application.refresh_from_db()
    assert application.status == OnboardingApplication.Status.REJECTED
    assert application.rejection_reason == "Sanctions screening hit"
    record = AuditRecord.objects.get(action="onboarding.reject")
    assert record.detail == {"reason": "Sanctions screening hit", "reason_told_applicant": False}
    [decision] = mail.outbox
    assert decision.subject == EMAIL_SUBJECTS[OnboardingEmail.REJECTED]
    assert "unable to offer an account to Northwind Capital" in decision.body
    assert "Sanctions" not in decision.body
    page = staff_client.get(detail(application)).content.decode()
    assert "Sanctions screening hit" in page
    assert "(not told the applicant)" in page


def test_a_reason_meant_for_the_applicant_is_in_their_email(
    staff_client, application, eager_tasks, committing
) -> None:
    with committing():
        staff_client.post(
            reject(application),
            {"reason": "We serve funds above $50M only", "tell_applicant": "on"},
        )
    [decision] = mail.outbox
    assert "The reason: We serve funds above $50M only" in decision.body


def test_the_service_refuses_a_blank_reason(application) -> None:
    with pytest.raises(ValidationError) as caught:
        onboarding_reject(application=application, reviewer=UserFactory(is_staff=True), reason="")
    assert caught.value.message_dict == {"reason": [REJECTION_REASON_REQUIRED]}


def test_review_pages_are_for_staff_only(application, client_for, viewer) -> None:
    member = client_for(viewer)
    assert member.get(detail(application)).status_code == 403
    assert member.get(approve(application)).status_code == 403
    assert member.post(reject(application), {"reason": "x"}).status_code == 403
    anonymous = Client().get(detail(application))
    assert anonymous.status_code == 302


def test_an_unknown_application_is_a_404(staff_client) -> None:
    assert (
        staff_client.get(reverse("onboarding:review-detail", kwargs={"pk": 999})).status_code == 404
    )
