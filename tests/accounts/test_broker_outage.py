"""A broker outage after a security change commits is logged, not turned into a 500: the change
has happened, and what follows it in the request (showing the new recovery codes, keeping this
session signed in, closing sockets that no longer qualify) must happen too. The security
notices are emailed by Celery tasks enqueued on commit; here nothing listens where the broker
should be, and the commit hooks really run (a transactional test, not captured callbacks)."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async
from django.test import Client, RequestFactory
from django.urls import reverse

from apps.accounts.models import EncryptedTOTPDevice
from apps.accounts.selectors import session_fingerprint
from apps.accounts.services import STEP_UP_SESSION_KEY, two_factor_disable
from apps.core.realtime import CLOSE_REAUTHORISE
from apps.orgs.models import Membership
from tests.accounts.otp import totp_code
from tests.conftest import verified_client
from tests.factories import PASSWORD, UserFactory
from tests.sockets import close_code, open_probe

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("broker_unreachable"),
]

SETUP = reverse("accounts:two-factor-setup")
CHANGE = reverse("accounts:password-change")
PROFILE = reverse("accounts:profile")
NEW_PASSWORD = "a different and long passphrase 7"


def test_enrolment_still_shows_the_recovery_codes() -> None:
    user = UserFactory(email="pat@example.test")
    client = Client()
    client.force_login(user)
    client.get(SETUP)
    device = EncryptedTOTPDevice.objects.get(
        user=user, enrolment_session=session_fingerprint(client.session.session_key)
    )

    response = client.post(SETUP, {"code": totp_code(device)})

    assert response.status_code == 200
    assert len(response.context["codes"]) == 10
    assert EncryptedTOTPDevice.objects.get(user=user).confirmed


def test_a_password_change_keeps_this_session_signed_in() -> None:
    user = UserFactory(email="pat@example.test")
    client = verified_client(user)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()  # a step-up just now
    session.save()

    response = client.post(
        CHANGE,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert (response.status_code, response["Location"]) == (302, PROFILE)
    assert client.get(PROFILE).status_code == 200


@pytest.mark.usefixtures("socket_db_connections")
async def test_disabling_2fa_still_closes_the_users_sockets(trader: Membership) -> None:
    client = await database_sync_to_async(verified_client)(trader.user)
    socket = await open_probe(trader, client)

    request = RequestFactory().post("/accounts/two-factor/disable/")
    await database_sync_to_async(two_factor_disable)(user=trader.user, request=request)

    assert await close_code(socket) == CLOSE_REAUTHORISE
