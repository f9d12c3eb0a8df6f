"""Fixtures for the accounts tests: a person with an authenticator app and recovery codes, and a
helper that computes the code their app would show."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.oath import hotp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User
from tests.factories import PASSWORD, UserFactory

RECOVERY_CODES = [f"code{n:04d}" for n in range(10)]


def totp_code(device: TOTPDevice) -> str:
    """The code an authenticator app shows now that the device has not accepted yet.

    django-otp refuses a code of a time step it has already accepted (replay protection), and
    accepts one step either side of the current one; so pick the current step, or the next one
    when the current one was used by an earlier sign-in in the same 30 seconds.
    """
    device.refresh_from_db()
    now_t = int((time.time() - device.t0) // device.step) + device.drift
    for t in (now_t, now_t + 1):
        if t > device.last_t:
            return f"{hotp(device.bin_key, t, device.digits):0{device.digits}d}"
    raise AssertionError("Both acceptable time steps were already used.")


def wrong_code(device: TOTPDevice) -> str:
    """A 6-digit code that is not valid for any step the device would accept now."""
    device.refresh_from_db()
    now_t = int((time.time() - device.t0) // device.step) + device.drift
    valid = {f"{hotp(device.bin_key, t, device.digits):06d}" for t in range(now_t - 2, now_t + 3)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)


@dataclass
class Person:
    user: User
    device: TOTPDevice
    recovery: StaticDevice
    password: str = PASSWORD

    def code(self) -> str:
        return totp_code(self.device)

    def wrong_code(self) -> str:
        return wrong_code(self.device)


@pytest.fixture
def person(db: Any) -> Person:
    """Someone with a confirmed authenticator app and ten recovery codes, in no organization."""
    user = UserFactory(email="dana@example.test")
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    recovery = StaticDevice.objects.create(user=user, name="Recovery codes", confirmed=True)
    StaticToken.objects.bulk_create(StaticToken(device=recovery, token=c) for c in RECOVERY_CODES)
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
