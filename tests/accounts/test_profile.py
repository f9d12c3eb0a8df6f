from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.services import TIME_ZONE_UNKNOWN
from apps.accounts.views import PROFILE_SAVED
from tests.accounts.conftest import Person

pytestmark = pytest.mark.django_db

PROFILE = reverse("accounts:profile")


def test_the_profile_shows_time_zone_theme_and_two_factor_status(signed_in: Client) -> None:
    page = signed_in.get(PROFILE).content.decode()
    assert 'name="time_zone"' in page
    assert 'value="light"' in page
    assert "10 recovery codes left" in page
    assert f'href="{reverse("accounts:recovery-codes")}"' in page


def test_saving_the_profile_stores_zone_and_theme(signed_in: Client, person: Person) -> None:
    response = signed_in.post(PROFILE, {"time_zone": "Europe/Zurich", "theme": "light"})
    assert response.status_code == 302
    person.user.refresh_from_db()
    assert (person.user.time_zone, person.user.theme) == ("Europe/Zurich", "light")
    page = signed_in.get(PROFILE).content.decode()
    assert PROFILE_SAVED in page
    assert 'data-theme="light"' in page
    assert "data-theme-reset" in page


@pytest.mark.parametrize("zone", ["Mars/Base", "", "../../etc/passwd", "localtime", "x" * 500])
def test_an_unknown_time_zone_is_refused_next_to_the_field(
    signed_in: Client, person: Person, zone: str
) -> None:
    response = signed_in.post(PROFILE, {"time_zone": zone, "theme": "dark"})
    assert response.status_code == 200
    assert "time_zone" in response.context["form"].errors
    person.user.refresh_from_db()
    assert person.user.time_zone == "UTC"
    if zone:
        assert response.context["form"].errors["time_zone"] == [TIME_ZONE_UNKNOWN]


def test_an_unknown_theme_is_refused(signed_in: Client, person: Person) -> None:
    response = signed_in.post(PROFILE, {"time_zone": "UTC", "theme": "neon"})
    assert "theme" in response.context["form"].errors
    person.user.refresh_from_db()
    assert person.user.theme == "dark"


def test_a_person_without_two_factor_is_offered_set_up(db) -> None:
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    page = client.get(PROFILE).content.decode()
    assert "Set up two-factor authentication" in page
