from __future__ import annotations

import time
import zoneinfo
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.views import SIGNED_OUT_IDLE
from apps.core.sessions import LAST_SEEN_KEY
from tests.accounts.conftest import Person

pytestmark = pytest.mark.django_db

PROFILE = reverse("accounts:profile")
LOGIN = reverse("accounts:login")


def _idle_for(client: Client, seconds: float) -> None:
    session = client.session
    session[LAST_SEEN_KEY] = time.time() - seconds
    session.save()


def test_an_active_session_stays_signed_in(signed_in: Client) -> None:
    _idle_for(signed_in, settings.SESSION_IDLE_TIMEOUT - 60)
    assert signed_in.get(PROFILE).status_code == 200
    # The request counted as activity.
    assert time.time() - signed_in.session[LAST_SEEN_KEY] < 60


def test_an_idle_session_is_signed_out_and_told_why(signed_in: Client) -> None:
    _idle_for(signed_in, settings.SESSION_IDLE_TIMEOUT + 1)
    response = signed_in.get(PROFILE)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in signed_in.session
    assert SIGNED_OUT_IDLE in signed_in.get(response["Location"]).content.decode()
    # The notice is shown once.
    assert SIGNED_OUT_IDLE not in signed_in.get(LOGIN).content.decode()


def test_an_idle_htmx_request_moves_the_whole_page_to_sign_in(signed_in: Client) -> None:
    _idle_for(signed_in, settings.SESSION_IDLE_TIMEOUT + 1)
    response = signed_in.get(
        PROFILE, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/o/acme/"
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{LOGIN}?next=%2Fo%2Facme%2F"


def test_a_garbled_last_seen_value_signs_out_instead_of_failing(signed_in: Client) -> None:
    session = signed_in.session
    session[LAST_SEEN_KEY] = "yesterday"
    session.save()
    response = signed_in.get(PROFILE)
    assert response.status_code == 302
    assert "_auth_user_id" not in signed_in.session


def test_times_are_shown_in_the_users_time_zone(signed_in: Client, person: Person) -> None:
    person.user.time_zone = "Asia/Tokyo"
    person.user.save()
    page = signed_in.get(reverse("accounts:two-factor-setup")).content.decode()
    created = timezone.localtime(person.device.created_at, zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert f"added {created:%Y-%m-%d %H:%M} JST" in page


def test_an_unknown_stored_time_zone_falls_back_to_utc(signed_in: Client, person: Person) -> None:
    person.user.time_zone = "Mars/Olympus_Mons"
    person.user.save()
    page = signed_in.get(reverse("accounts:two-factor-setup")).content.decode()
    assert " UTC." in page


@pytest.mark.django_db(transaction=True)  # on-commit work runs, as in production
def test_signing_out_works_while_the_channel_layer_is_down(
    signed_in: Client, settings: Any
) -> None:
    # Closing the session's sockets is best effort: nothing listens on port 1.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    response = signed_in.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in signed_in.session
    assert signed_in.get(PROFILE).status_code == 302  # signed out for real
