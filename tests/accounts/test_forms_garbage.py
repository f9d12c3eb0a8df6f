"""Whatever is posted, the accounts forms answer with a page or a redirect, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.accounts.forms import CodeForm, ProfileForm, SignInForm

pytestmark = pytest.mark.django_db

# Text with everything awkward: control characters, surrogates excluded (they can't be encoded).
junk = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
payloads = st.dictionaries(
    st.sampled_from(["email", "password", "code", "next", "time_zone", "theme", "junk"]),
    junk,
    max_size=6,
)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=payloads)
def test_sign_in_never_fails_on_garbage(client: Client, data: dict[str, str]) -> None:
    response = client.post(reverse("accounts:login"), data)
    assert response.status_code in {200, 302, 429}


@FUZZ
@given(
    data=payloads,
    name=st.sampled_from(
        [
            "accounts:two-factor-verify",
            "accounts:step-up",
            "accounts:profile",
            "accounts:recovery-codes",
        ]
    ),
)
def test_signed_in_forms_never_fail_on_garbage(
    signed_in: Client, data: dict[str, str], name: str
) -> None:
    response = signed_in.post(reverse(name), data)
    assert response.status_code in {200, 302}


@FUZZ
@given(data=payloads)
def test_the_forms_validate_any_input_without_raising(data: dict[str, str]) -> None:
    for form in (
        SignInForm(data),
        CodeForm(data),
        CodeForm(data, allow_recovery=False),
        ProfileForm(data),
    ):
        form.is_valid()
