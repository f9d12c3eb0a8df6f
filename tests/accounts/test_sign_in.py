from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY

from apps.accounts import views
from apps.accounts.services import CODE_WRONG, STEP_UP_SESSION_KEY
from apps.audit.models import AuditRecord
from tests.accounts.conftest import RECOVERY_CODES, Person, sign_in
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
VERIFY = reverse("accounts:two-factor-verify")
HOME = reverse("core:home")


def test_the_sign_in_page_asks_for_email_and_password(client: Client) -> None:
    page = client.get(LOGIN).content.decode()
    assert 'name="email"' in page
    assert 'type="password"' in page


def test_a_person_without_an_authenticator_is_signed_in_by_password(client: Client) -> None:
    user = UserFactory(email="sam@example.test")
    response = client.post(LOGIN, {"email": "Sam@Example.test ", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == HOME
    assert client.session["_auth_user_id"] == str(user.pk)
    record = AuditRecord.objects.get(action="auth.sign_in")
    assert record.actor_id == user.pk
    assert record.org_id is None
    assert record.detail == {"second_factor": "none"}


def test_a_password_alone_does_not_sign_in_a_person_with_an_authenticator(
    client: Client, person: Person
) -> None:
    response = client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith(VERIFY)
    assert "_auth_user_id" not in client.session
    # Not signed in: the home page still sends them to sign in.
    assert client.get(HOME)["Location"].startswith(LOGIN)


def test_the_authenticator_code_completes_the_sign_in(client: Client, person: Person) -> None:
    response = sign_in(client, person)
    assert response.status_code == 302
    assert response["Location"] == HOME
    assert client.session["_auth_user_id"] == str(person.user.pk)
    assert client.session[DEVICE_ID_SESSION_KEY] == person.device.persistent_id
    assert time.time() - client.session[STEP_UP_SESSION_KEY] < 60
    record = AuditRecord.objects.get(action="auth.sign_in")
    assert record.detail == {"second_factor": "authenticator_app"}


def test_the_sign_in_returns_to_the_page_asked_for(client: Client, person: Person) -> None:
    profile = reverse("accounts:profile")
    response = sign_in(client, person, next_url=profile)
    assert response["Location"] == profile


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"]
)
def test_the_sign_in_never_redirects_off_site(client: Client, person: Person, next_url) -> None:
    response = client.post(
        LOGIN, {"email": person.user.email, "password": PASSWORD, "next": next_url}
    )
    response = client.post(response["Location"], {"code": person.code(), "next": next_url})
    assert response["Location"] == HOME


def test_a_wrong_code_is_explained_next_to_the_field(client: Client, person: Person) -> None:
    client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    response = client.post(VERIFY, {"code": person.wrong_code()})
    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [CODE_WRONG]}
    page = response.content.decode()
    assert 'id="code-errors"' in page
    assert "_auth_user_id" not in client.session
    assert AuditRecord.objects.filter(action="auth.second_factor_failed").count() == 1


def test_a_malformed_code_is_refused_by_the_form(client: Client, person: Person) -> None:
    client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    response = client.post(VERIFY, {"code": "12ab"})
    assert response.status_code == 200
    assert "code" in response.context["form"].errors


def test_a_recovery_code_signs_in_once(client: Client, person: Person) -> None:
    client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    response = client.post(VERIFY, {"code": RECOVERY_CODES[3].upper()})
    assert response.status_code == 302
    assert client.session[DEVICE_ID_SESSION_KEY] == person.recovery.persistent_id
    assert AuditRecord.objects.get(action="auth.sign_in").detail == {
        "second_factor": "recovery_code",
        "recovery_codes_left": 9,
    }
    page = client.get(reverse("accounts:profile")).content.decode()
    assert views.RECOVERY_CODE_USED.format(left=9) in page

    second = Client()
    second.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    person.throttle_reset()
    response = second.post(VERIFY, {"code": RECOVERY_CODES[3]})
    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [CODE_WRONG]}
    assert "_auth_user_id" not in second.session


def test_the_code_step_without_a_password_step_goes_back_to_sign_in(client: Client) -> None:
    response = client.get(VERIFY)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_a_pending_sign_in_expires(client: Client, person: Person) -> None:
    client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    session = client.session
    session[views.PENDING_AT_KEY] = time.time() - views.PENDING_MAX_AGE - 1
    session.save()
    response = client.post(VERIFY, {"code": person.code()})
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session


def test_too_many_wrong_codes_end_the_pending_sign_in(client: Client, person: Person) -> None:
    client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    for attempt in range(views.PENDING_MAX_FAILURES):
        person.throttle_reset()
        response = client.post(VERIFY, {"code": person.wrong_code()})
        if attempt < views.PENDING_MAX_FAILURES - 1:
            assert response.status_code == 200
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    person.throttle_reset()
    response = client.post(VERIFY, {"code": person.code()})
    assert response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in client.session


def test_quick_retries_after_a_wrong_code_are_slowed_down(client: Client, person: Person) -> None:
    client.post(LOGIN, {"email": person.user.email, "password": PASSWORD})
    client.post(VERIFY, {"code": person.wrong_code()})
    response = client.post(VERIFY, {"code": person.code()})
    assert response.status_code == 200
    [message] = response.context["form"].errors["code"]
    assert message.startswith("Too many wrong codes. Try again in")


def test_a_wrong_password_is_refused_and_audited_without_an_organization(
    client: Client, person: Person
) -> None:
    response = client.post(LOGIN, {"email": person.user.email, "password": "nope nope nope"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [views.SIGN_IN_INVALID]
    record = AuditRecord.objects.get(action="auth.sign_in_failed")
    assert record.org_id is None
    assert record.actor_id == person.user.pk
    assert record.detail == {"email": person.user.email, "locked_out": False}
    assert "nope" not in str(record.detail)


def test_an_unknown_email_gets_the_same_answer(client: Client, db) -> None:
    response = client.post(LOGIN, {"email": "nobody@example.test", "password": "whatever123"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [views.SIGN_IN_INVALID]
    assert AuditRecord.objects.get(action="auth.sign_in_failed").actor_id is None


def test_a_signed_in_person_visiting_sign_in_goes_home(signed_in: Client) -> None:
    assert signed_in.get(LOGIN)["Location"] == HOME


def test_signing_out_ends_the_session(signed_in: Client) -> None:
    response = signed_in.post(reverse("accounts:logout"))
    assert response["Location"] == LOGIN
    assert "_auth_user_id" not in signed_in.session
    assert signed_in.get(HOME)["Location"].startswith(LOGIN)


def test_signing_out_needs_a_post(signed_in: Client) -> None:
    assert signed_in.get(reverse("accounts:logout")).status_code == 405
    assert "_auth_user_id" in signed_in.session
