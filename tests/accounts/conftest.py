"""Fixtures for the accounts tests: a person with an authenticator app and recovery codes, and a
helper that computes the code their app would show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import EncryptedTOTPDevice, RecoveryCodeDevice, User
from apps.accounts.services import recovery_codes_set, totp_device_create
from tests.accounts.otp import throttle_reset, totp_code, wrong_code
from tests.factories import PASSWORD, UserFactory

RECOVERY_CODES = [f"code{n:04d}" for n in range(10)]


@dataclass
class Person:
    user: User
    device: EncryptedTOTPDevice
    recovery: RecoveryCodeDevice
    password: str = PASSWORD

    def code(self) -> str:
        return totp_code(self.device)

    def wrong_code(self) -> str:
        return wrong_code(self.device)

    def throttle_reset(self) -> None:
        throttle_reset(self.user)


@pytest.fixture
def person(db: Any) -> Person:
    """Someone with a confirmed authenticator app and ten recovery codes, in no organization."""
    user = UserFactory(email="dana@example.test")
    device = totp_device_create(user=user, name="Authenticator app", confirmed=True)
    recovery = recovery_codes_set(user=user, codes=RECOVERY_CODES)
    return Person(user=user, device=device, recovery=recovery)


def sign_in(client: Client, person: Person, *, next_url: str = "") -> Any:
    """The real two-step sign-in; returns the response to the code step."""
    query = f"?next={next_url}" if next_url else ""
    response = client.post(
        reverse("accounts:login") + query,
        {"email": person.user.email, "password": person.password},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    assert response["Location"].startswith(reverse("accounts:two-factor-verify"))
    return client.post(response["Location"], {"code": person.code()})


@pytest.fixture
def signed_in(person: Person) -> Client:
    """A client that went through the real sign-in with password and authenticator code."""
    client = Client()
    response = sign_in(client, person)
    assert response.status_code == 302
    return client
