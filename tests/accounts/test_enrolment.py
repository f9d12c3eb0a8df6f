"""Enrolment belongs to the session that started it, and every change to a person's second
factor is emailed to them (a Celery task, enqueued when the change commits) and audited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from apps.accounts.models import EncryptedTOTPDevice
from apps.accounts.selectors import session_fingerprint
from apps.accounts.services import CODE_WRONG
from apps.accounts.tasks import NOTICES
from apps.audit.models import AuditRecord
from tests.accounts.conftest import Person
from tests.accounts.otp import throttle_reset, totp_code
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SETUP = reverse("accounts:two-factor-setup")
CODES = reverse("accounts:recovery-codes")
DISABLE = reverse("accounts:two-factor-disable")


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Run Celery tasks in the test process (the mail goes to the locmem outbox here)."""
    from kraken_portal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def _session_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _pending(client: Client) -> EncryptedTOTPDevice:
    device: EncryptedTOTPDevice = EncryptedTOTPDevice.objects.get(
        confirmed=False, enrolment_session=session_fingerprint(client.session.session_key)
    )
    return device


def test_a_second_session_gets_its_own_secret_and_cannot_confirm_the_first() -> None:
    user = UserFactory(email="pat@example.test")
    first, second = _session_client(user), _session_client(user)
    first_key = first.get(SETUP).context["manual_key"]
    second_key = second.get(SETUP).context["manual_key"]
    assert first_key != second_key
    assert first.get(SETUP).context["manual_key"] == first_key  # a reload keeps it

    # The second session, given the first one's code, is checking its own secret.
    response = second.post(SETUP, {"code": totp_code(_pending(first))})
    assert response.context["form"].errors == {"code": [CODE_WRONG]}
    assert not EncryptedTOTPDevice.objects.filter(user=user, confirmed=True).exists()

    # The first session finishes (once the wrong code's wait is over); the other session's
    # secret is discarded.
    throttle_reset(user)
    response = first.post(SETUP, {"code": totp_code(_pending(first))})
    assert len(response.context["codes"]) == 10
    assert EncryptedTOTPDevice.objects.filter(user=user).count() == 1


def test_turning_two_factor_on_emails_the_person_once_it_commits(
    eager_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    user = UserFactory(email="pat@example.test")
    client = _session_client(user)
    client.get(SETUP)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(SETUP, {"code": totp_code(_pending(client))})
    assert mail.outbox == []  # nothing is sent before the change commits
    for callback in callbacks:
        callback()
    [message] = mail.outbox
    assert message.to == ["pat@example.test"]
    assert NOTICES["2fa_enabled"][0] in message.subject


def test_new_recovery_codes_and_turning_two_factor_off_are_emailed_and_audited(
    eager_tasks: None, django_capture_on_commit_callbacks: Any, signed_in: Client, person: Person
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        codes = signed_in.post(CODES).context["codes"]
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(DISABLE)
    subjects = [message.subject for message in mail.outbox]
    assert len(subjects) == 2
    assert NOTICES["recovery_codes_regenerated"][0] in subjects[0]
    assert NOTICES["2fa_disabled"][0] in subjects[1]
    assert all(message.to == [person.user.email] for message in mail.outbox)
    assert not any(code in message.body for message in mail.outbox for code in codes)
    actions = set(AuditRecord.objects.values_list("action", flat=True))
    assert {"auth.recovery_codes_regenerated", "auth.two_factor_disabled"} <= actions
