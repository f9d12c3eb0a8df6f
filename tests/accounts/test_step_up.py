from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import reverse

from apps.accounts.models import RecoveryCode
from apps.accounts.services import CODE_WRONG, STEP_UP_SESSION_KEY
from apps.accounts.stepup import step_up_is_fresh, step_up_required
from apps.audit.models import AuditRecord
from tests.accounts.conftest import Person

pytestmark = pytest.mark.django_db

STEP_UP = reverse("accounts:step-up")
CODES = reverse("accounts:recovery-codes")
SETUP = reverse("accounts:two-factor-setup")


def _age_step_up(client: Client, seconds: float) -> None:
    """Pretend the last confirmation happened `seconds` ago."""
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time() - seconds
    session.save()


class _Request:
    """What step_up_is_fresh reads: a user and a session (the client's real session)."""

    def __init__(self, client: Client, user: Any) -> None:
        self.session = client.session
        self.user = user


def test_a_session_is_fresh_right_after_signing_in(signed_in: Client, person: Person) -> None:
    person.user.is_verified = lambda: True
    assert step_up_is_fresh(_Request(signed_in, person.user))  # type: ignore[arg-type]


def test_a_session_goes_stale_after_the_maximum_age(signed_in: Client, person: Person) -> None:
    person.user.is_verified = lambda: True
    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE - 5)
    assert step_up_is_fresh(_Request(signed_in, person.user))  # type: ignore[arg-type]
    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE + 1)
    assert not step_up_is_fresh(_Request(signed_in, person.user))  # type: ignore[arg-type]


def test_an_unverified_session_is_never_fresh(signed_in: Client, person: Person) -> None:
    person.user.is_verified = lambda: False
    assert not step_up_is_fresh(_Request(signed_in, person.user))  # type: ignore[arg-type]


def test_a_stale_session_is_asked_for_a_code_before_a_sensitive_action(
    signed_in: Client, person: Person
) -> None:
    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE + 1)
    before = set(RecoveryCode.objects.values_list("digest", flat=True))
    response = signed_in.post(CODES, HTTP_REFERER="http://testserver" + CODES)
    assert response.status_code == 302
    assert response["Location"] == f"{STEP_UP}?next={quote(CODES, safe='')}"
    assert set(RecoveryCode.objects.values_list("digest", flat=True)) == before

    page = signed_in.get(response["Location"])
    assert page.status_code == 200
    assert "Confirm it is you" in page.content.decode()

    confirmed = signed_in.post(STEP_UP, {"code": person.code(), "next": CODES})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == CODES
    assert AuditRecord.objects.filter(action="auth.step_up_confirmed").count() == 1
    assert signed_in.post(CODES).status_code == 200
    assert set(RecoveryCode.objects.values_list("digest", flat=True)) != before


def test_a_post_returns_to_the_page_it_was_sent_from(signed_in: Client) -> None:
    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE + 1)
    response = signed_in.post(
        reverse("accounts:two-factor-disable"), HTTP_REFERER="http://testserver" + SETUP
    )
    assert response["Location"] == f"{STEP_UP}?next={quote(SETUP, safe='')}"


def test_htmx_requests_are_redirected_with_hx_redirect(signed_in: Client) -> None:
    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE + 1)
    response = signed_in.post(
        CODES, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver" + CODES
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{STEP_UP}?next={quote(CODES, safe='')}"


def test_a_wrong_step_up_code_is_explained_next_to_the_field(
    signed_in: Client, person: Person
) -> None:
    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE + 1)
    response = signed_in.post(STEP_UP, {"code": person.wrong_code(), "next": CODES})
    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [CODE_WRONG]}
    assert signed_in.post(CODES).status_code == 302


def test_the_same_code_cannot_confirm_twice(signed_in: Client, person: Person) -> None:
    code = person.code()
    assert signed_in.post(STEP_UP, {"code": code}).status_code == 302
    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE + 1)
    person.throttle_reset()
    response = signed_in.post(STEP_UP, {"code": code})
    assert response.status_code == 200
    assert response.context["form"].errors == {"code": [CODE_WRONG]}


def test_step_up_without_an_authenticator_leads_to_set_up(db: Any) -> None:
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    response = client.get(STEP_UP + "?next=/x/")
    assert response["Location"] == f"{SETUP}?next=%2Fx%2F"


def test_the_decorator_lets_fresh_sessions_through(rf, signed_in: Client, person: Person) -> None:
    calls: list[str] = []

    @step_up_required
    def sensitive(request: HttpRequest) -> HttpResponse:
        calls.append("ran")
        return HttpResponse("done")

    request = rf.get("/o/acme/vault/new/")
    request.session = signed_in.session
    request.user = person.user
    person.user.is_verified = lambda: True
    assert sensitive(request).content == b"done"

    _age_step_up(signed_in, settings.STEP_UP_MAX_AGE + 1)
    request.session = signed_in.session
    response = sensitive(request)
    assert response.status_code == 302
    assert response["Location"] == f"{STEP_UP}?next=%2Fo%2Facme%2Fvault%2Fnew%2F"
    assert calls == ["ran"]
