from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.urls import reverse

from apps.accounts import views
from apps.audit.models import AuditRecord
from apps.audit.throttle import flood_keys
from tests.accounts.conftest import Person
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
WRONG = "not the password"


def _fail(client: Client, email: str, times: int) -> list[int]:
    return [
        client.post(LOGIN, {"email": email, "password": WRONG}).status_code for _ in range(times)
    ]


def test_five_wrong_passwords_lock_the_account_with_a_clear_message(
    client: Client, person: Person
) -> None:
    statuses = _fail(client, person.user.email, settings.AXES_FAILURE_LIMIT - 1)
    # The audit trail records failures from one address once a minute; let that minute pass so
    # the failure that locks the account is recorded too.
    redis.Redis.from_url(settings.REDIS_URL).delete(
        flood_keys(action="auth.sign_in_failed", source="127.0.0.1")[0]
    )
    statuses += _fail(client, person.user.email, 1)
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    # Even the right password is refused during the cool-off, with the same explanation.
    response = client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed sign-ins" in page
    assert "for 15 minutes" in page
    assert "_auth_user_id" not in client.session
    assert AuditRecord.objects.filter(
        action="auth.sign_in_failed",
        detail__locked_out=True,
        detail__suppressed=settings.AXES_FAILURE_LIMIT - 2,
    ).exists()


def test_the_lockout_counts_the_address_in_any_letter_case(client: Client, person: Person) -> None:
    _fail(client, person.user.email.upper(), settings.AXES_FAILURE_LIMIT - 1)
    assert _fail(client, person.user.email, 1) == [429]


def test_sign_in_works_again_after_the_cool_off(client: Client, person: Person) -> None:
    _fail(client, person.user.email, settings.AXES_FAILURE_LIMIT)
    # Move the failures back in time past the cool-off instead of waiting 15 minutes.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=15, seconds=1))
    response = client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:two-factor-verify"))


def test_an_administrator_reset_lifts_the_lockout(client: Client, person: Person) -> None:
    _fail(client, person.user.email, settings.AXES_FAILURE_LIMIT)
    reset(username=person.user.email)
    response = client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    assert response.status_code == 302


def test_a_lockout_of_one_account_does_not_lock_another(client: Client, person: Person) -> None:
    _fail(client, "someone-else@example.test", settings.AXES_FAILURE_LIMIT)
    response = client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    assert response.status_code == 302


def test_a_complete_sign_in_clears_earlier_failures(client: Client, person: Person) -> None:
    _fail(client, person.user.email, settings.AXES_FAILURE_LIMIT - 1)
    response = client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    client.post(response["Location"], {"code": person.code()})
    client.post(reverse("accounts:logout"))
    assert _fail(client, person.user.email, 1) == [200]
    assert (
        views.SIGN_IN_INVALID
        in client.post(LOGIN, {"email": person.user.email, "password": WRONG}).content.decode()
    )


def test_a_lockout_is_on_the_audit_trail_once_and_shows_on_the_persons_activity(
    client: Client, person: Person
) -> None:
    # The locking failure, then two more attempts during the cool-off (axes signals each).
    _fail(client, person.user.email, settings.AXES_FAILURE_LIMIT + 2)
    [record] = AuditRecord.objects.filter(action="auth.locked_out")
    assert record.actor_id == person.user.pk
    assert record.detail == {"email": person.user.email, "cool_off_minutes": 15}
    assert record.ip == "127.0.0.1"


def test_a_lockout_of_an_unknown_address_is_recorded_without_an_actor(client: Client) -> None:
    _fail(client, "nobody@example.test", settings.AXES_FAILURE_LIMIT)
    [record] = AuditRecord.objects.filter(action="auth.locked_out")
    assert record.actor_id is None
    assert record.detail["email"] == "nobody@example.test"
