"""Arbitrary input never breaks a form: a field error or a redirect, never a 500."""

from __future__ import annotations

import itertools
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.orgs.models import Invitation, Membership
from apps.orgs.permissions import Role
from apps.orgs.selectors import token_hash

pytestmark = pytest.mark.django_db

OK = {200, 302, 400}
_addresses = itertools.count()
# Short and long text, any Unicode (no surrogates, which cannot be encoded in a request), NULs,
# and values of the right shape so that the rules behind the first checks get exercised too.
junk = st.one_of(
    st.text(max_size=40),
    st.text(min_size=250, max_size=3000),
    st.sampled_from(["", " ", "\x00", "US", "NY", "WA", "owner", "hedge_fund", "a@b.co"]),
    st.emails(),
)
HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fields(*names: str) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries({}, optional=dict.fromkeys(names, junk))


@HYPOTHESIS
@given(
    data=fields(
        "company_name",
        "country",
        "region",
        "first_name",
        "last_name",
        "email",
        "business_type",
        "assets_under_management",
    )
)
def test_the_onboarding_form_survives_any_input(data: dict[str, str], db: Any) -> None:
    # Each example from its own address, so the per-address limit on applications (which
    # answers before the form is validated) does not stand between the input and the form.
    client = Client(REMOTE_ADDR=f"198.51.100.{next(_addresses) % 250 + 1}")
    assert client.post(reverse("onboarding:apply"), data).status_code in OK


@HYPOTHESIS
@given(data=fields("email", "role"))
def test_the_invitation_form_survives_any_input(
    data: dict[str, str], admin: Membership, client_for: Any
) -> None:
    url = reverse("orgs:invitation-create", kwargs={"org": "acme"})
    assert client_for(admin).post(url, data).status_code in OK


@HYPOTHESIS
@given(data=fields("first_name", "last_name", "password1", "password2"), token=junk)
def test_the_invitation_acceptance_form_survives_any_input(
    data: dict[str, str], token: str, org: Any
) -> None:
    raw = secrets.token_urlsafe(32)
    Invitation.objects.filter(email="fuzz@example.test").delete()
    Invitation.objects.create(
        org=org,
        email="fuzz@example.test",
        role=Role.VIEWER,
        token_hash=token_hash(raw),
        expires_at=timezone.now() + timedelta(days=7),
    )
    client = Client()
    response = client.post(reverse("invitations:accept", kwargs={"token": raw}), data)
    assert response.status_code in OK
    # A made-up token in the path: a clear "not valid" page, or no route at all.
    path = "/invitations/" + quote(token, safe="") + "/"
    assert client.get(path).status_code in {200, 404, 410}


@HYPOTHESIS
@given(data=fields("name", "require_2fa"))
def test_the_settings_form_survives_any_input(
    data: dict[str, str], owner: Membership, client_for: Any
) -> None:
    url = reverse("orgs:settings", kwargs={"org": "acme"})
    assert client_for(owner).post(url, data).status_code in OK


@HYPOTHESIS
@given(data=fields("role"))
def test_the_role_form_survives_any_input(
    data: dict[str, str], owner: Membership, trader: Membership, client_for: Any
) -> None:
    url = reverse("orgs:member-role", kwargs={"org": "acme", "pk": trader.pk})
    assert client_for(owner).post(url, data).status_code in OK
